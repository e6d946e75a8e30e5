"""DESIGN.md's boundary: the pure core imports no I/O library and reads no clock."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "sflow"

FORBIDDEN = {"twisted", "socket", "subprocess", "docker", "paramiko", "time", "asyncio", "threading", "select", "ftplib"}

# The pure core: models, JSON I/O, schedulers, the ICN codec/tables/forwarder/strategies, the node's
# task state machine and command expansion, the delegator's plan. Everything else is the I/O shell.
CORE = [
    "errors.py",
    "jsonio.py",
    "model/*.py",
    "sched/*.py",
    "icn/*.py",
    "icn/strategy/*.py",
    "node/state.py",
    "node/command.py",
    "node/readiness.py",
    "delegator/plan.py",
    "sfc/names.py",
    "sfc/bundle.py",
    "sfc/producer.py",
    "sfc/auto.py",
]
SHELL = {"sched/cli.py", "sched/gantt.py", "icn/cli.py", "icn/app.py", "icn/server.py", "icn/management_client.py"}


def core_files() -> list[Path]:
    files: set[Path] = set()
    for pattern in CORE:
        files.update(PACKAGE.glob(pattern))
    return sorted(f for f in files if f.relative_to(PACKAGE).as_posix() not in SHELL)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def clock_reads(path: Path) -> list[str]:
    text = path.read_text()
    return [c for c in ("datetime.now(", "datetime.utcnow(", "date.today(") if c in text]


def test_core_is_pure() -> None:
    files = core_files()
    assert len(files) >= 6
    offences = []
    for f in files:
        bad = imported_modules(f) & FORBIDDEN
        if bad:
            offences.append(f"{f.relative_to(PACKAGE)} imports {sorted(bad)}")
        for c in clock_reads(f):
            offences.append(f"{f.relative_to(PACKAGE)} reads the clock with {c}")
    assert not offences, "\n".join(offences)


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    import socket\n    from twisted.internet import reactor\n")
    assert imported_modules(f) & FORBIDDEN == {"socket", "twisted"}
