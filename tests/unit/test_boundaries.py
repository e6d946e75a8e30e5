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
    "node/liveness.py",
    "delegator/recovery.py",
    "delegator/placing.py",
    "node/command.py",
    "node/readiness.py",
    "delegator/plan.py",
    "node/plan.py",
    "sfc/names.py",
    "sfc/bundle.py",
    "sfc/producer.py",
    "sfc/auto.py",
    "sfc/slots.py",
    "sfc/identity.py",
    "sfc/placer.py",
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


# ---------------------------------------------------------------------------------------------
# Layers (DESIGN.md): model → jsonio/config → sched, icn, node → sfc → delegator, cluster →
# experiment → CLI modules (an experiment runs jobs through the delegator's library call, so it
# sits just above it). A module imports only from lower layers (or its own package); no library
# module imports a CLI module.

LAYERS: dict[str, int] = {
    "errors": 0,
    "model": 0,
    "durable": 0,
    "proctree": 0,
    "forked": 0,
    "deferred_log": 0,
    "jsonio": 1,
    "config": 1,
    "secret": 1,
    "ssh": 1,
    "sched": 2,
    "icn": 2,
    "node": 2,
    "wfcommons": 2,
    "sfc": 3,
    "delegator": 4,
    "cluster": 4,
    "experiment": 5,
}
CLI_LAYER = 6


def _unit(module: str) -> tuple[str, int]:
    """``sflow.node.server`` → ("node", 2); CLI modules (``cli.py``, ``*_cli.py``, ``__main__``) are
    the top layer whatever their package."""
    parts = module.split(".")[1:] or ["__init__"]
    leaf = parts[-1]
    if leaf in ("cli", "__main__") or leaf.endswith("_cli"):
        return ".".join(parts), CLI_LAYER
    top = parts[0]
    if top == "__init__":
        return "sflow", 0
    if top not in LAYERS:
        raise AssertionError(f"module sflow.{'.'.join(parts)} belongs to no layer: add its package to LAYERS")
    return top, LAYERS[top]


def _module_name(path: Path, package: Path) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] + ["__init__"] if len(parts) == 1 else parts[:-1]
    return ".".join(parts)


def sflow_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("sflow."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("sflow."):
            out.add(node.module)
    return out


def layer_offences(package: Path) -> list[str]:
    offences = []
    for f in sorted(package.rglob("*.py")):
        unit, rank = _unit(_module_name(f, package))
        for target in sorted(sflow_imports(f)):
            t_unit, t_rank = _unit(target)
            same_package = unit.split(".")[0] == t_unit.split(".")[0] and rank == t_rank
            if t_rank > rank or (t_rank == rank and not same_package and rank != CLI_LAYER):
                offences.append(f"{f.relative_to(package.parent)} (layer {rank}) imports {target} (layer {t_rank})")
    return offences


def test_layers_import_only_downward() -> None:
    offences = layer_offences(PACKAGE)
    assert not offences, "\n".join(offences)


def test_layer_checker_catches_an_upward_import(tmp_path: Path) -> None:
    pkg = tmp_path / "sflow"
    (pkg / "node").mkdir(parents=True)
    (pkg / "node" / "state.py").write_text("from sflow.delegator.plan import JobPlan\nfrom sflow.model import Job\n")
    (pkg / "delegator").mkdir()
    (pkg / "delegator" / "icn.py").write_text("from sflow.node.cli import query_status\n")
    (pkg / "icn").mkdir()
    (pkg / "icn" / "pit.py").write_text("from sflow.node.state import JobState\n")
    offences = layer_offences(pkg)
    assert len(offences) == 3, offences
    assert any("node/state.py (layer 2) imports sflow.delegator.plan (layer 4)" in o for o in offences)
    assert any("delegator/icn.py (layer 4) imports sflow.node.cli (layer 6)" in o for o in offences)
    assert any("icn/pit.py (layer 2) imports sflow.node.state (layer 2)" in o for o in offences)
