"""What the multi-host tests share besides fixtures: the lab as a cluster (inventories of its
hosts) and the CLI runner's type."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from netns import Lab, LabHost

REPO = Path(__file__).resolve().parents[3]
LAB_HOSTS = 4  # h0-h2 run sshd; h3 has an address but no sshd, so SSH to it is refused
NO_SSHD = (3,)
NODE_PORT = 7070

Cli = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True, slots=True)
class LabCluster:
    lab: Lab
    work: Path  # the delegator side's directory
    secret: Path
    inventory: Path  # TOML: h0-h2

    @property
    def hosts(self) -> list[LabHost]:
        return [h for h in self.lab.hosts if h.has_sshd]

    @property
    def refusing(self) -> LabHost:
        return next(h for h in self.lab.hosts if not h.has_sshd)

    def write_inventory(self, name: str, hosts: list[LabHost]) -> Path:
        path = self.work / name
        path.write_text(
            "".join(
                f'[[host]]\naddress = "{h.address}"\nuser = "root"\nkey_file = "{self.lab.client_key}"\n'
                f'dir = "{h.sflow_dir}"\npython = "{sys.executable}"\n\n'
                for h in hosts
            ),
            encoding="utf-8",
        )
        return path
