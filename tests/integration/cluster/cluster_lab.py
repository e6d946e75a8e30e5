"""What the multi-host tests share besides fixtures: the lab as a cluster (inventories of its
hosts) and the CLI runner's type."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netns import USER, Lab, LabHost, sflow_processes, wait_for

LAB_HOSTS = 5
NO_SSHD = (3,)  # h3 has an address but no sshd, so SSH to it is refused
NO_VENV_PACKAGE = (1,)  # h1 is Debian without python3-venv (no ensurepip): deploy must not need it
MINIMAL_PYTHON = (4,)  # h4 has a bare python3-minimal (no venv module): deploy says what to install
NODE_PORT = 7070
HOST_DIR = "sflow"  # relative to the user's home, as a user would write it

Cli = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True, slots=True)
class LabCluster:
    lab: Lab
    work: Path  # the delegator side's directory
    secret: Path
    inventory: Path  # TOML: h0-h2, key login

    @property
    def hosts(self) -> list[LabHost]:
        """The hosts a deploy succeeds on (h0-h2)."""
        return [h for h in self.lab.hosts if h.has_sshd and h.has_venv_module]

    @property
    def refusing(self) -> LabHost:
        return next(h for h in self.lab.hosts if not h.has_sshd)

    @property
    def minimal(self) -> LabHost:
        return next(h for h in self.lab.hosts if not h.has_venv_module)

    def write_inventory(self, name: str, hosts: list[LabHost]) -> Path:
        path = self.work / name
        path.write_text(
            "".join(
                f'[[host]]\naddress = "{h.address}"\nuser = "{USER}"\nkey_file = "{self.lab.client_key}"\ndir = "{HOST_DIR}"\n\n'
                for h in hosts
            ),
            encoding="utf-8",
        )
        return path


def lab_environment(hosts: list[LabHost], vcpus: int = 2, mips: int = 2000) -> dict[str, Any]:
    """An environment of ``hosts``: one VM per host with ``vcpus`` vCPUs of ``mips``, the node port in
    its address; vCPU k of host i is ``0^i^0^0^k``."""
    host_list = []
    for i, h in enumerate(hosts):
        vcpu_list = [{"vcpu_id": f"0^{i}^0^0^{k}"} for k in range(vcpus)]
        host_list.append({
            "host_id": f"h{i}", "name": f"h{i}", "ip": h.address, "ram": 4096, "bw": 100,
            "cpu_list": [{"cpu_id": f"h{i}/cpu0", "mips": mips,
                          "core_list": [{"core_id": f"h{i}/core0", "maxusage": 100, "vcpu_list": vcpu_list}]}],
            "vm_list": [{"vm_id": f"h{i}", "ram": 4096, "ip": f"{h.address}:{NODE_PORT}", "vcpu_list": vcpu_list}],
        })
    return {"dc_list": [{"dc_id": 0, "bw": 125, "host_list": host_list}]}


def host_rows(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    """A ``sflow cluster … --json`` answer by host."""
    return {row["host"]: row for row in json.loads(done.stdout)}


def stop_all(cli: Cli, cluster: LabCluster) -> None:
    """``sflow cluster stop``, and wait until no sflow process is left on the hosts."""
    done = cli("cluster", "stop", str(cluster.inventory), "--grace", "5", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(lambda: not sflow_processes(cluster.hosts), 10, "every sflow node gone")
