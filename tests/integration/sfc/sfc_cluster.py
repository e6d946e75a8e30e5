"""Real ``sflow node --mode icn|auto`` processes on loopback for the ICN-chaining integration tests."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fault_lab import wait_for

from sflow.delegator.local import local_environment
from sflow.jsonio import environment_to_dict
from sflow.node.readiness import parse_readiness

PY = sys.executable
REPO = Path(__file__).resolve().parents[3]
VCPUS = 2


@dataclass
class IcnNode:
    index: int
    argv: list[str]
    proc: subprocess.Popen[str]
    address: str
    icn: str
    log: Path
    #: further ``SFLOW_*`` variables it was started with (a restart keeps them)
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def icn_port(self) -> int:
        return int(self.icn.rsplit(":", 1)[1])


def start_node(base: Path, index: int, secret_file: Path, mode: str, *, port: int = 0, icn_port: int = 0,
               hello_port: int | None = None, neighbours: tuple[int, ...] = (), timeout: float = 20.0,
               settings: Mapping[str, str] | None = None) -> IcnNode:
    argv = [PY, "-m", "sflow", "node", "--listen", f"127.0.0.1:{port}", "--workdir", str(base / f"node{index}"),
            "--secret-file", str(secret_file), "--log-file", str(base / f"node{index}.log"), "--mode", mode,
            "--icn-listen", f"127.0.0.1:{icn_port}", "--result-store", str(base / f"results{index}")]
    if hello_port is not None:
        argv += ["--hello-port", str(hello_port)]
    for n in neighbours:
        argv += ["--neighbour", f"127.0.0.1:{n}"]
    return _spawn(argv, index, base / f"node{index}.log", timeout, settings or {})


def restart(node: IcnNode, timeout: float = 20.0) -> IcnNode:
    """The same node again (same ports, directories and result store)."""
    argv = list(node.argv)
    argv[argv.index("--listen") + 1] = node.address
    argv[argv.index("--icn-listen") + 1] = node.icn
    return _spawn(argv, node.index, node.log, timeout, node.settings)


def _spawn(argv: list[str], index: int, log: Path, timeout: float, settings: Mapping[str, str]) -> IcnNode:
    env = dict(os.environ, SFLOW_NODE_VCPUS=str(VCPUS), SFLOW_ICN_HELLO_INTERVAL="0.2", PYTHONPATH=str(REPO), **settings)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not sel.select(remaining):
            proc.kill()
            raise AssertionError(f"node {index} printed no readiness line within {timeout} s")
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"node {index} exited: {log.read_text() if log.exists() else ''}")
        ready = parse_readiness(line)
        if ready is not None and ready.icn is not None:
            return IcnNode(index, argv, proc, ready.listen, ready.icn, log, dict(settings))


def stop(node: IcnNode, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
    if node.proc.poll() is None:
        node.proc.send_signal(sig)
    return node.proc.wait(timeout)


def write_env(path: Path, nodes: list[IcnNode]) -> Path:
    path.write_text(json.dumps(environment_to_dict(local_environment([n.address for n in nodes], VCPUS))))
    return path


def write_job(path: Path, job: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(job))
    return path


def write_mapping(path: Path, job: Mapping[str, Any], nodes: list[IcnNode], where: Mapping[int, int]) -> Path:
    """A mapping file placing task id → node index (vCPU 0 there)."""
    tasks = []
    for t in job["task_list"]:
        n = where[t["task_id"]]
        tasks.append({**t, "ip": nodes[n].address, "vm_id": f"node{n}", "vcpu_id": f"0^{n}^0^0^0"})
    path.write_text(json.dumps({"job_id": job["job_id"], "task_list": tasks}))
    return path


def sflow(*args: str, timeout: float = 90.0, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "sflow", *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})))


def delegate(env: Path, job: Path, out: Path, mode: str, *extra: str, timeout: float = 90.0,
             job_timeout: float = 60.0) -> dict[str, Any]:
    """Run ``sflow delegate`` and return its trace (fails with the delegator's stderr)."""
    result = sflow("delegate", str(env), str(job), "--mode", mode, "-o", str(out), *extra, timeout=timeout,
                   env={"SFLOW_DELEGATOR_JOB_TIMEOUT": str(job_timeout)})
    assert result.returncode == 0, result.stderr + result.stdout
    trace: dict[str, Any] = json.loads((out / "trace.json").read_text())
    return trace


def ran(trace: Mapping[str, Any]) -> dict[int, str]:
    """Task id → "executed" / "cache hit" / "not needed"."""
    return {t["task"]: t["where"].split(" (")[0] for t in trace["tasks"]}


def node_status(node: IcnNode, secret_file: Path) -> dict[str, Any]:
    result = sflow("status", "--connect", node.address, "--json", "--secret-file", str(secret_file), timeout=20)
    assert result.returncode == 0, result.stderr
    status: dict[str, Any] = json.loads(result.stdout)
    return status
