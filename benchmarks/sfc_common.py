"""Shared by the ICN-chaining benchmarks: run jobs in ``icn`` or ``auto`` mode on a fresh local
cluster (real ``sflow node --mode …`` processes on loopback), one after another on the same nodes
(so that later runs can be answered from the caches), and report each run's trace."""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import defer, task

from ip_common import peak_rss_mb

from sflow.config import Config
from sflow.delegator.icn import icn_dispatch
from sflow.delegator.local import LocalCluster
from sflow.delegator.plan import TaskPlacement, build_plan
from sflow.delegator.trace import Trace
from sflow.model import Job, TaskId
from sflow.model.infra import VcpuId
from sflow.node.blocking import run_until
from sflow.secret import generate_secret, read_secret


@dataclass(frozen=True, slots=True)
class Run:
    trace: Trace
    wall: float
    #: peak resident memory of each node process so far (VmHWM), in MB
    peak_rss_mb: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Session:
    """Jobs run in order on one fresh cluster; ``place(task) -> node index`` (icn mode; in auto
    mode only END placements matter, as tie-breakers)."""

    mode: str
    jobs: Sequence[Job]
    nodes: int
    place: Callable[[TaskId], int]
    vcpus_per_node: int = 1


async def icn_session(reactor: Any, base: Path, s: Session) -> list[Run]:
    """Run a session's jobs on a fresh cluster under the running reactor, in ``base``."""
    secret_file = generate_secret(base / "secret")
    secret = read_secret(secret_file)
    config = Config()
    cluster = LocalCluster(reactor, ["127.0.0.1:0"] * s.nodes, base / "nodes", secret_file, None,
                           s.vcpus_per_node, s.mode)
    runs: list[Run] = []
    try:
        addresses = await cluster.start()
        if s.mode == "auto":
            # Let the nodes hear each other's hellos first.
            await task.deferLater(reactor, 3 * config.icn.hello_interval)
        for i, job in enumerate(s.jobs):
            placements = {t: TaskPlacement(addresses[s.place(t)], VcpuId(f"0^{s.place(t)}^0^0^0"), 0)
                          for t in job.by_id}
            plan = build_plan(job, placements, job.order, secrets.token_hex(4))
            t0 = time.perf_counter()
            trace = await icn_dispatch(reactor, secret, job, plan, None, "fixed", config, base / f"out{i}",
                                       s.mode, list(addresses))
            wall = time.perf_counter() - t0
            runs.append(Run(trace, wall, tuple(peak_rss_mb(pid) for pid in cluster.pids)))
    finally:
        await cluster.stop()
    return runs


def run_sessions(sessions: Sequence[Session]) -> list[list[Run]]:
    """Each session's runs (one reactor for all: it cannot be restarted)."""
    with tempfile.TemporaryDirectory(prefix="sflow-bench-icn-") as tmp:
        results: list[list[Run]] = []

        async def everything(reactor: Any) -> None:
            for index, s in enumerate(sessions):
                where = Path(tmp) / f"session{index}"
                where.mkdir()
                results.append(await icn_session(reactor, where, s))

        run_until(lambda reactor: defer.Deferred.fromCoroutine(everything(reactor)))
        return results
