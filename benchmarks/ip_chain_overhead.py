"""IP chaining, per function: a chain of 200 no-op (``true``) functions across 3 nodes, each hop
crossing to the next node (a ``$V^`` value carries the dependency).

Printed: the wall time per function (from handing the plan to the nodes until the last result is
back, / 200: process starts, messages, logging, everything sflow does), beside the bare-process
floor measured in the same run (``/bin/sh -c true`` started with ``subprocess.run``).

    .venv/bin/python benchmarks/ip_chain_overhead.py [--n 200] [--json OUT]
"""

from __future__ import annotations

import statistics

from ip_common import run_job
from report import bare_process, emit, load, parser
from workloads import noop_chain


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--n", type=int, default=200)
    args = p.parse_args()
    n = args.n
    floor = statistics.median(bare_process(100))
    out = run_job(noop_chain(n), nodes=3, vcpus_per_node=1, place=lambda t: ((t - 1) % 3, 0))
    per = out.wall / n
    print(f"chain of {n} no-op functions on 3 nodes (every hop crosses nodes); load {load()['loadavg_1m']:.2f}")
    print(f"  wall {out.wall:.3f} s = {per * 1000:.2f} ms per function "
          f"({per / floor:.1f} x a bare /bin/sh -c true, {floor * 1000:.2f} ms in this run)")
    print(f"  node peak RSS (MB): {', '.join(f'{m:.0f}' for m in out.peak_rss_mb)}")
    emit(args, "ip_chain_overhead", {"n": n, "wall_s": out.wall, "per_function_ms": per * 1000,
                                     "bare_ms": floor * 1000, "ratio_to_bare": per / floor,
                                     "peak_rss_mb": list(out.peak_rss_mb)})


if __name__ == "__main__":
    main()
