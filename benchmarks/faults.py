"""Faults injected into real node processes mid-job, each repeated N times, in every mode:
a node SIGKILLed, SIGSTOPped (silent, its connections open), killed and restarted; a full disk
on a node (a small tmpfs); the delegator killed. Prints, per fault and mode, the runs tried and
the runs that finished with output byte-identical to the same commands run by the shell (for the
faults after which a job must fail or be dropped: the runs that did so as they must), and the
failover time: from a node's death (its SIGKILL; or its SIGSTOP, then found silent) to the start
of its function on another node.

The nodes run with a short heartbeat (0.5 s x 3); the fault machinery is the tests'
(tests/integration/fault_lab.py). Figures measured under the machine's load (printed).

    .venv/bin/python benchmarks/faults.py [--runs 3] [--json OUT]
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for where in ("tests/integration", "tests/integration/ip", "tests/integration/sfc"):
    sys.path.insert(0, str(REPO / where))

import ip_cluster  # noqa: E402
import sfc_cluster  # noqa: E402
from fault_lab import (  # noqa: E402
    FAST,
    FULL_DISK_JOB,
    KILL,
    PY,
    RESTART,
    STOP,
    kill_delegator_mid_job,
    marker_job,
    reference,
    run_on_full_disk,
    run_with_fault,
    small_tmpfs,
)
from report import emit, load, parser  # noqa: E402

from sflow.delegator.local import free_ports  # noqa: E402
from sflow.secret import generate_secret  # noqa: E402

PLACES = {1: 0, 2: 1, 3: 2, 4: 1, 5: 0}
MODES = ("ip", "icn", "auto")


class Cluster:
    """Three nodes of one mode, kept across runs (a node hit is started again for the next)."""

    def __init__(self, base: Path, secret: Path, mode: str) -> None:
        self.base, self.secret, self.mode = base, secret, mode
        if mode == "ip":
            self.nodes: list[Any] = [ip_cluster.start_node(base, i, secret, settings=FAST) for i in range(3)]
        elif mode == "icn":
            self.nodes = [sfc_cluster.start_node(base, i, secret, "icn", settings=FAST) for i in range(3)]
        else:
            hello = free_ports(3, socket.SOCK_DGRAM)
            self.nodes = [sfc_cluster.start_node(base, i, secret, "auto", hello_port=hello[i], settings=FAST,
                                                 neighbours=tuple(p for j, p in enumerate(hello) if j != i))
                          for i in range(3)]

    def restart(self, i: int) -> None:
        node = self.nodes[i]
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGCONT)
            node.proc.kill()
            node.proc.wait()
        if self.mode == "ip":
            self.nodes[i] = ip_cluster.start_node(self.base, i, self.secret, listen=node.address, settings=FAST,
                                                  workdir=node.workdir)
        else:
            self.nodes[i] = sfc_cluster.restart(node)

    def argv(self, job: dict[str, Any], name: str) -> tuple[list[str], Path]:
        mod = ip_cluster if self.mode == "ip" else sfc_cluster
        env = mod.write_env(self.base / "env.json", self.nodes)
        out = self.base / f"out-{name}"
        argv = [PY, "-m", "sflow", "delegate", str(env), str(mod.write_job(self.base / f"{name}.json", job)),
                "--mode", self.mode, "-o", str(out), "--secret-file", str(self.secret), "--timeout", "180"]
        if self.mode == "ip":
            where = {t: (n, 0) for t, n in PLACES.items()}
            argv += ["--mapping", str(ip_cluster.write_mapping(self.base / f"{name}-m.json", job, self.nodes, where))]
        elif self.mode == "icn":
            argv += ["--mapping", str(sfc_cluster.write_mapping(self.base / f"{name}-m.json", job, self.nodes, PLACES))]
        return argv, out

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGCONT)
                node.proc.terminate()
                node.proc.wait(20)


def node_faults(base: Path, secret: Path, mode: str, runs: int, expected: bytes,
                rows: list[dict[str, Any]], counter: Callable[[], int]) -> None:
    cluster = Cluster(base / mode, secret, mode)
    try:
        for fault in (KILL, STOP, RESTART):
            ok, failovers = 0, []
            for _ in range(runs):
                n = counter()
                marker = f"3.{n:04d}7"  # a new job each time: nothing of it is cached anywhere
                argv, out = cluster.argv(marker_job(marker, 100 + n), f"{fault}-{n}")
                outcome = run_with_fault(argv, cluster.nodes, marker, fault, out / "out.txt", expected,
                                         restart=cluster.restart)
                ok += outcome.identical
                if not outcome.identical:
                    print(f"  [{mode} {fault}] exit {outcome.code}: {outcome.stderr.strip()[-300:]}", file=sys.stderr)
                if fault in (KILL, STOP) and outcome.failover is not None:
                    failovers.append(outcome.failover)
                if fault != RESTART:
                    cluster.restart(outcome.victim)  # three nodes again for the next run
            rows.append({"fault": {KILL: "node SIGKILLed mid-job", STOP: "node SIGSTOPped mid-job",
                                   RESTART: "node restarted mid-job"}[fault], "mode": mode, "tried": runs,
                         "identical": ok, "failover": failovers})
    finally:
        cluster.stop()


def ip_only_faults(base: Path, secret: Path, runs: int, rows: list[dict[str, Any]],
                   counter: Callable[[], int]) -> None:
    cluster = Cluster(base / "ip-delegator", secret, "ip")
    took = []
    try:
        for _ in range(runs):
            n = counter()
            marker = f"9.{n:04d}3"
            argv, _ = cluster.argv(marker_job(marker, 100 + n), f"delegator-{n}")
            took.append(kill_delegator_mid_job(argv, [node.workdir for node in cluster.nodes], marker, 30))
    finally:
        cluster.stop()
    done = [t for t in took if t is not None]
    rows.append({"fault": "delegator SIGKILLed", "mode": "ip", "tried": runs, "identical": None,
                 "as_expected": len(done), "detail": f"nodes dropped the job in at most {max(done, default=0):.2f} s"})
    if os.geteuid() != 0:
        return
    clean = 0
    for i in range(runs):
        where = base / f"disk{i}"
        where.mkdir()
        with small_tmpfs(where / "small") as small:
            nodes = [ip_cluster.start_node(where, 0, secret), ip_cluster.start_node(where, 1, secret, workdir=small / "w")]
            try:
                env = ip_cluster.write_env(where / "env.json", nodes)
                mapping = ip_cluster.write_mapping(where / "m.json", FULL_DISK_JOB, nodes, {1: (0, 0), 2: (1, 0)})
                argv = [PY, "-m", "sflow", "delegate", str(env), str(ip_cluster.write_job(where / "j.json", FULL_DISK_JOB)),
                        "--mapping", str(mapping), "-o", str(where / "out"), "--secret-file", str(secret)]
                outcome = run_on_full_disk(argv, where / "out" / "n.txt", small / "w")
                clean += outcome.clear and outcome.clean
            finally:
                for node in nodes:
                    ip_cluster.stop_node(node)
    rows.append({"fault": "full disk (1 MB tmpfs)", "mode": "ip", "tried": runs, "identical": None,
                 "as_expected": clean, "detail": "failed with a clear error, nothing partial kept"})


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=3, help="runs of each fault in each mode (default 3)")
    p.add_argument("--modes", default=",".join(MODES), help="modes, comma-separated (default ip,icn,auto)")
    args = p.parse_args()
    rows: list[dict[str, Any]] = []
    count = iter(range(1, 10_000))
    with tempfile.TemporaryDirectory(prefix="sflow-bench-faults-") as tmp:
        base = Path(tmp)
        secret = generate_secret(base / "secret")
        expected = reference(base)
        for mode in args.modes.split(","):
            node_faults(base, secret, mode, args.runs, expected, rows, lambda: next(count))
        ip_only_faults(base, secret, args.runs, rows, lambda: next(count))
    print(f"{'fault':26} {'mode':5} {'tried':>5}  finished, byte-identical output")
    for r in rows:
        if r["identical"] is not None:
            print(f"{r['fault']:26} {r['mode']:5} {r['tried']:>5}  {r['identical']}")
        else:
            print(f"{r['fault']:26} {r['mode']:5} {r['tried']:>5}  - (as it must: {r['as_expected']}; {r['detail']})")
    print("failover: from the fault to the node's function started on another node (median, max; s):")
    for r in rows:
        if r.get("failover"):
            f = r["failover"]
            print(f"  {r['fault']:26} {r['mode']:5} {statistics.median(f):.2f}, {max(f):.2f}  ({len(f)} runs)")
    print(f"load {load()['loadavg_1m']:.2f} (figures measured under that load; heartbeat 0.5 s x 3)")
    emit(args, "faults", {"rows": rows})


if __name__ == "__main__":
    main()
