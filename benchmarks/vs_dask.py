"""sflow beside dask.distributed, in one run: a chain of 200 no-op functions over 3 nodes and a
fork–join of 1,000 no-op functions over 3 nodes × 2 vCPUs, with the bare-process floor.

Dask: a ``LocalCluster`` of 3 worker processes × 1 thread; each function runs the same shell
command (``/bin/sh -c true``) through ``subprocess.run``, its dependency passed as an argument.
sflow: a fresh local cluster of 3 real ``sflow node`` processes per mode (``ip``, ``icn``,
``auto``); in ``ip`` and ``icn`` every hop of the chain crosses nodes (placed round-robin), in
``auto`` the nodes place the functions. In the fork–join the join has 998 inputs: in ``icn`` and ``auto``
its description is installed in parts. Both clusters are up before the clock starts; the figure
is the wall time from handing the job over until its last result is back (for sflow: connecting to
the nodes, sending the plans or installing the functions, running, collecting the results),
divided by the number of functions. Targets: chain ≤ 0.5 × Dask per function in every mode;
fork–join makespan ≤ Dask's. Needs ``pip install -e '.[bench]'``.

With ``--rounds N`` the whole comparison (Dask, then each mode of sflow) runs N times, one round
after another, and each figure is the median of its N walls (the ratios are of the medians; the
range of each is printed beside it): on a machine whose speed drifts, each round puts Dask and
sflow side by side in the same few seconds.

    .venv/bin/python benchmarks/vs_dask.py [--chain 200] [--fork 1000] [--modes ip icn auto] [--rounds 1]
        [--json OUT]
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from ip_common import ip_run
from report import BARE, bare_process, emit, load, parser
from sfc_common import Session, icn_session
from twisted.internet import defer, threads
from workloads import fork_join, noop_chain

from sflow.node.blocking import run_until


def shell_true(*_dependencies: Any) -> int:
    """What each Dask task does: the same function as sflow's, started as a process."""
    return subprocess.run(BARE, check=True).returncode


def dask_figures(chain: int, fork: int) -> dict[str, float]:
    from dask.distributed import Client, LocalCluster

    # (silence_logs: a worker's heartbeat that meets the scheduler closing printed a traceback at
    # the end, which a reader took for a failed run; a task's error still reaches the client)
    with LocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        client.gather([client.submit(shell_true, i, pure=False) for i in range(30)])  # warm the workers
        began = time.perf_counter()
        future = client.submit(shell_true, pure=False)
        for _ in range(chain - 1):
            future = client.submit(shell_true, future, pure=False)
        future.result()
        chain_wall = time.perf_counter() - began

        began = time.perf_counter()
        start = client.submit(shell_true, pure=False)
        middle = [client.submit(shell_true, start, pure=False) for _ in range(fork - 2)]
        client.submit(shell_true, *middle, pure=False).result()
        fork_wall = time.perf_counter() - began
    return {"chain_wall_s": chain_wall, "fork_join_wall_s": fork_wall}


def figures(modes: list[str], chain: int, fork: int, rounds: int
            ) -> tuple[list[dict[str, float]], list[dict[str, dict[str, float]]]]:
    """Dask's chain and fork-join walls, and each mode's, for each round (one reactor for all: it
    cannot be restarted; Dask runs in a thread meanwhile, the reactor idle)."""
    dask: list[dict[str, float]] = []
    sflow: list[dict[str, dict[str, float]]] = []

    async def everything(reactor: Any) -> None:
        for _ in range(rounds):
            dask.append(await threads.deferToThread(dask_figures, chain, fork))
            sflow.append(await sflow_round(reactor, modes, chain, fork))

    run_until(lambda reactor: defer.Deferred.fromCoroutine(everything(reactor)))
    return dask, sflow


async def sflow_round(reactor: Any, modes: list[str], chain: int, fork: int) -> dict[str, dict[str, float]]:
    """Each mode's chain and fork-join walls, once."""
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="sflow-bench-vs-dask-") as tmp:
        for mode in modes:
            if mode == "ip":
                c = await ip_run(reactor, noop_chain(chain), 3, 1, lambda t: ((t - 1) % 3, 0))
                f = await ip_run(reactor, fork_join(fork), 3, 2, lambda t: (t % 6 // 2, t % 2))
                out[mode] = {"chain_wall_s": c.wall, "fork_join_wall_s": f.wall, "chain_nodes_used": 3,
                             "peak_rss_mb": max(c.peak_rss_mb + f.peak_rss_mb)}
                continue
            where = Path(tmp) / mode
            for sub in ("chain", "fork"):
                (where / sub).mkdir(parents=True)
            (c,) = await icn_session(reactor, where / "chain",
                                     Session(mode, [noop_chain(chain)], 3, lambda t: (t - 1) % 3))
            (f,) = await icn_session(reactor, where / "fork",
                                     Session(mode, [fork_join(fork)], 3, lambda t: t % 3, vcpus_per_node=2))
            executed = {r.node for r in c.trace.tasks if r.where.startswith("executed")}
            ran = sum(1 for r in f.trace.tasks if r.where.startswith("executed"))
            if ran != fork:
                raise SystemExit(f"{mode}: the fork-join executed {ran} of {fork} functions")
            out[mode] = {"chain_wall_s": c.wall, "fork_join_wall_s": f.wall, "chain_nodes_used": len(executed),
                         "peak_rss_mb": max(c.peak_rss_mb + f.peak_rss_mb)}
    return out


def _median(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds (peak RSS: its largest)."""
    return {key: (max if key == "peak_rss_mb" else statistics.median)([r[key] for r in rounds]) for key in rounds[0]}


def _spread(values: list[float], scale: float, unit: str) -> str:
    """The range of a figure over the rounds, when there was more than one."""
    if len(values) < 2:
        return ""
    digits = 3 if unit == "s" else 2
    return f"  (rounds {min(values) * scale:.{digits}f}–{max(values) * scale:.{digits}f} {unit})"


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--chain", type=int, default=200)
    p.add_argument("--fork", type=int, default=1000)
    p.add_argument("--modes", nargs="+", default=["ip", "icn", "auto"], choices=["ip", "icn", "auto"])
    p.add_argument("--rounds", type=int, default=1, help="run the whole comparison this many times; medians")
    args = p.parse_args()
    load_before = load()["loadavg_1m"]
    floor = statistics.median(bare_process(100))
    dask_rounds, sflow_rounds = figures(args.modes, args.chain, args.fork, max(1, args.rounds))
    floor_after = statistics.median(bare_process(100))
    dask = _median(dask_rounds)
    sflow = {mode: _median([r[mode] for r in sflow_rounds]) for mode in args.modes}

    dask_chain = dask["chain_wall_s"] / args.chain
    print(f"load {load_before:.2f} -> {load()['loadavg_1m']:.2f} on {load()['cpus']} CPUs; "
          f"bare /bin/sh -c true (subprocess.run): {floor * 1000:.2f} ms before, {floor_after * 1000:.2f} ms after")
    if len(dask_rounds) > 1:
        print(f"medians of {len(dask_rounds)} rounds (each: Dask, then sflow {', '.join(args.modes)})")
    print(f"chain of {args.chain} no-op functions over 3 nodes, wall per function (target: sflow <= 0.5 x Dask)")
    chains = [r["chain_wall_s"] for r in dask_rounds]
    print(f"  {'dask.distributed':<18} {dask_chain * 1000:7.2f} ms" + _spread(chains, 1000 / args.chain, "ms"))
    for mode, fig in sflow.items():
        per = fig["chain_wall_s"] / args.chain
        chains = [r[mode]["chain_wall_s"] for r in sflow_rounds]
        print(f"  {'sflow ' + mode:<18} {per * 1000:7.2f} ms  = {per / dask_chain:.2f} x Dask, {per / floor:.1f} x bare"
              + _spread(chains, 1000 / args.chain, "ms"))
    print(f"fork-join of {args.fork} no-op functions, 3 nodes x 2 vCPUs (Dask: 3 workers x 1 thread), "
          f"makespan (target: sflow <= Dask)")
    forks = [r["fork_join_wall_s"] for r in dask_rounds]
    print(f"  {'dask.distributed':<18} {dask['fork_join_wall_s']:7.3f} s" + _spread(forks, 1, "s"))
    for mode, fig in sflow.items():
        ratio = fig["fork_join_wall_s"] / dask["fork_join_wall_s"]
        forks = [r[mode]["fork_join_wall_s"] for r in sflow_rounds]
        print(f"  {'sflow ' + mode:<18} {fig['fork_join_wall_s']:7.3f} s  = {ratio:.2f} x Dask" + _spread(forks, 1, "s"))
    rss = ", ".join(f"{m} {fig['peak_rss_mb']:.0f}" for m, fig in sflow.items())
    print(f"node peak RSS (MB): {rss} (target < 150)")
    emit(args, "vs_dask", {
        "bare_ms": floor * 1000, "bare_after_ms": floor_after * 1000, "chain": args.chain, "fork": args.fork,
        "rounds": len(dask_rounds), "dask": dask, "sflow": sflow, "dask_rounds": dask_rounds, "sflow_rounds": sflow_rounds,
        "chain_ratio_to_dask": {m: f["chain_wall_s"] / dask["chain_wall_s"] for m, f in sflow.items()},
        "fork_join_ratio_to_dask": {m: f["fork_join_wall_s"] / dask["fork_join_wall_s"] for m, f in sflow.items()},
    })


if __name__ == "__main__":
    main()
