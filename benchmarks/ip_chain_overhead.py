"""Per-function overhead of IP chaining: a chain of 200 no-op (``true``) functions across 3 nodes,
each hop crossing to the next node (a ``$V^`` value carries the dependency).

Overhead per function = (real makespan − sum of the functions' own run times) / 200; target ≤ 5 ms.

    .venv/bin/python benchmarks/ip_chain_overhead.py [N]
"""

from __future__ import annotations

import sys

from ip_common import run_job
from workloads import noop_chain


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    out = run_job(noop_chain(n), nodes=3, vcpus_per_node=1, place=lambda t: ((t - 1) % 3, 0))
    busy = sum(r.finish - r.start for r in out.trace.tasks)
    overhead = (out.trace.makespan - busy) / n
    print(f"chain of {n} no-op functions on 3 nodes (every hop crosses nodes)")
    print(f"  makespan {out.trace.makespan:.3f} s, sum of function run times {busy:.3f} s")
    print(f"  overhead per function {overhead * 1000:.2f} ms (target <= 5 ms)")
    print(f"  mean function run time {busy / n * 1000:.2f} ms (process start of /bin/sh -c true)")
    print(f"  node peak RSS (MB): {', '.join(f'{m:.0f}' for m in out.peak_rss_mb)}")


if __name__ == "__main__":
    main()
