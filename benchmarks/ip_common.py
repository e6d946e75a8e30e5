"""Shared by the IP-chaining benchmarks: run one job on a fresh local cluster (real node processes
on loopback) with an explicit placement, and report the trace and each node's peak memory."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import defer

from sflow.delegator.ip import DispatchOptions, IpDispatch
from sflow.delegator.local import LocalCluster
from sflow.delegator.plan import TaskPlacement, build_plan
from sflow.delegator.trace import Trace
from sflow.errors import ExecutionError
from sflow.model import Job, TaskId
from sflow.model.infra import VcpuId
from sflow.node.blocking import run_until
from sflow.secret import generate_secret, read_secret


@dataclass(frozen=True, slots=True)
class Outcome:
    trace: Trace
    wall: float
    #: peak resident memory of each node process (VmHWM), in MB
    peak_rss_mb: tuple[float, ...]
    #: CPU seconds (user + system) each node process spent from handing the plan over to the end
    #: (its own threads; not the functions it ran)
    cpu_s: tuple[float, ...] = ()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fixed(job: Job, live: frozenset[str]) -> Mapping[TaskId, TaskPlacement]:
    """A benchmark's placement is fixed: a lost node fails the run instead of re-planning it."""
    raise ExecutionError("a benchmark does not re-plan a lost node")


async def ip_run(
    reactor: Any,
    job: Job,
    nodes: int,
    vcpus_per_node: int,
    place: Callable[[TaskId], tuple[int, int]],
    chunk_size: int = 262144,
    sealed: bool = True,
) -> Outcome:
    """Run ``job`` on a fresh local cluster under the running reactor; ``place(task) -> (node
    index, vCPU index)``. The clock runs from handing the plan over until the trace is complete.
    ``sealed``: security.channel_encryption on the nodes and the delegator."""
    with tempfile.TemporaryDirectory(prefix="sflow-bench-") as tmp:
        base = Path(tmp)
        secret_file = generate_secret(base / "secret")
        secret = read_secret(secret_file)
        setting = {"SFLOW_SECURITY_CHANNEL_ENCRYPTION": str(sealed).lower()}
        cluster = LocalCluster(reactor, ["127.0.0.1:0"] * nodes, base / "nodes", secret_file, None, vcpus_per_node,
                               node_env=[setting] * nodes)
        try:
            addresses = await cluster.start()
            placements = {}
            for t in job.by_id:
                n, k = place(t)
                placements[t] = TaskPlacement(addresses[n], VcpuId(f"0^{n}^0^0^{k}"), k)
            plan = build_plan(job, placements, job.order, secrets.token_hex(4))
            options = DispatchOptions(outdir=base / "out", algorithm="fixed", schedule=None, chunk_size=chunk_size,
                                      sealed=sealed)
            cpu0 = [cpu_seconds(pid) for pid in cluster.pids]
            t0 = time.perf_counter()
            try:
                trace = await IpDispatch(reactor, secret, plan, options, job=job, order=job.order, placer=_fixed).run()
            except Exception:
                _show_node_trouble(base / "nodes")  # the logs go with the temporary directory
                raise
            wall = time.perf_counter() - t0
            cpu = tuple(cpu_seconds(pid) - c for pid, c in zip(cluster.pids, cpu0))
            return Outcome(trace, wall, tuple(peak_rss_mb(pid) for pid in cluster.pids), cpu)
        finally:
            await cluster.stop()


def _show_node_trouble(logs: Path, lines: int = 30) -> None:
    """Print to stderr the end of each node's log: what a failed run's nodes said, before their
    directory is removed."""
    for path in sorted(logs.glob("node-*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- the end of {path.name} ---", *tail, sep="\n", file=sys.stderr)


def run_job(*args: Any, **kwargs: Any) -> Outcome:
    """:func:`ip_run` (same arguments, without the reactor) in a reactor of its own: once per
    process, as a reactor cannot be restarted."""
    return run_until(lambda reactor: defer.Deferred.fromCoroutine(ip_run(reactor, *args, **kwargs)))
