"""A 1,000-function fork–join over IP chaining: one START, 998 parallel no-op functions, one join,
on 3 local nodes with 2 vCPUs each (placed round-robin).

Printed: the wall time (plan handed over → last result back) and per function, beside the
bare-process floor measured in the same run.

    .venv/bin/python benchmarks/ip_fork_join.py [--n 1000] [--json OUT]
"""

from __future__ import annotations

import statistics

from ip_common import run_job
from report import bare_process, emit, load, parser
from workloads import fork_join


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--n", type=int, default=1000)
    args = p.parse_args()
    n = args.n
    nodes, vcpus = 3, 2
    slots = nodes * vcpus
    floor = statistics.median(bare_process(100))
    out = run_job(fork_join(n), nodes=nodes, vcpus_per_node=vcpus, place=lambda t: (t % slots // vcpus, t % vcpus))
    per = out.wall / n
    print(f"fork-join of {n} no-op functions on {nodes} nodes x {vcpus} vCPUs; load {load()['loadavg_1m']:.2f}")
    print(f"  wall {out.wall:.3f} s = {n / out.wall:.0f} functions/s = {per * 1000:.2f} ms per function "
          f"(bare /bin/sh -c true {floor * 1000:.2f} ms in this run)")
    print(f"  node peak RSS (MB): {', '.join(f'{m:.0f}' for m in out.peak_rss_mb)}")
    emit(args, "ip_fork_join", {"n": n, "wall_s": out.wall, "per_function_ms": per * 1000, "bare_ms": floor * 1000,
                                "peak_rss_mb": list(out.peak_rss_mb)})


if __name__ == "__main__":
    main()
