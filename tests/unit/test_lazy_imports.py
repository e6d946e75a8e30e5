"""Commands import only what they need: ``sflow --help`` and ``sflow validate`` load none of the
heavy libraries (networking, SSH, Docker, plotting, graphs, arrays), so that they start in a blink
and a new import at module level cannot silently bring the cost back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("twisted", "paramiko", "docker", "matplotlib", "networkx", "numpy", "cryptography", "rich")

_PROBE = """
import json, sys
from sflow.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exc:
    status = exc.code
print(json.dumps({"status": status, "modules": sorted({m.split(".")[0] for m in sys.modules})}), file=sys.stderr)
"""


def _loaded(*argv: str) -> tuple[int, set[str]]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, cwd=REPO, timeout=120)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return report["status"], set(report["modules"])


@pytest.mark.parametrize("argv", [
    ("--help",),
    ("validate", "envs/local.json", "jobs/ffmpeg.json"),
    ("validate", "envs/multi-host.json", "jobs/fork-join.json"),
    ("schedule", "--help"),
    ("delegate", "--help"),
    ("cluster", "--help"),
])
def test_light_commands_import_no_heavy_library(argv: tuple[str, ...]) -> None:
    status, modules = _loaded(*argv)
    assert status in (0, None), argv
    assert not modules & set(HEAVY), f"sflow {' '.join(argv)} imported {sorted(modules & set(HEAVY))}"


def test_the_probe_sees_heavy_imports() -> None:
    # The same probe on a command that needs numpy reports it (the check above can fail).
    status, modules = _loaded("schedule", "envs/local.json", "jobs/text-chain.json", "-a", "heft")
    assert status == 0 and "numpy" in modules
