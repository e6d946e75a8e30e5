"""Per-function overhead of ICN chaining: a chain of 200 no-op (``true``) functions on 3 nodes, in
``icn`` mode (every hop crosses nodes) and in ``auto`` mode (the nodes place the functions).

Overhead per function = (real makespan − sum of the functions' own run times) / 200; target ≤ 10 ms.

    .venv/bin/python benchmarks/sfc_chain_overhead.py [N]
"""

from __future__ import annotations

import sys

from sfc_common import Session, run_sessions
from workloads import noop_chain


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    modes = ("icn", "auto")
    sessions = run_sessions([Session(mode, [noop_chain(n)], 3, lambda t: (t - 1) % 3) for mode in modes])
    for mode, (run,) in zip(modes, sessions):
        executed = [r for r in run.trace.tasks if r.where.startswith("executed")]
        busy = sum(r.finish - r.start for r in executed)
        overhead = (run.trace.makespan - busy) / n
        where = "every hop crosses nodes" if mode == "icn" else f"on {len({r.node for r in executed})} node(s)"
        print(f"{mode}: chain of {n} no-op functions on 3 nodes ({where}); {len(executed)} executed")
        print(f"  makespan {run.trace.makespan:.3f} s, sum of function run times {busy:.3f} s")
        print(f"  overhead per function {overhead * 1000:.2f} ms (target <= 10 ms)")


if __name__ == "__main__":
    main()
