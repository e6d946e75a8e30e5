"""ICN chaining, per function: a chain of 200 no-op (``true``) functions on 3 nodes, in ``icn``
mode (every hop crosses nodes) and in ``auto`` mode (the nodes place the functions).

Printed: the wall time per function (from installing the functions and asking for the END result
until it is back, / 200: everything sflow does included), beside the bare-process floor measured
in the same run (``/bin/sh -c true`` started with ``subprocess.run``).

    .venv/bin/python benchmarks/sfc_chain_overhead.py [--n 200] [--json OUT]
"""

from __future__ import annotations

import statistics

from report import bare_process, emit, load, parser
from sfc_common import Session, run_sessions
from workloads import noop_chain


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--n", type=int, default=200)
    args = p.parse_args()
    n = args.n
    modes = ("icn", "auto")
    floor = statistics.median(bare_process(100))
    sessions = run_sessions([Session(mode, [noop_chain(n)], 3, lambda t: (t - 1) % 3) for mode in modes])
    figures = {"n": n, "bare_ms": floor * 1000, "modes": {}}
    print(f"load {load()['loadavg_1m']:.2f}; bare /bin/sh -c true {floor * 1000:.2f} ms in this run")
    for mode, (run,) in zip(modes, sessions):
        executed = [r for r in run.trace.tasks if r.where.startswith("executed")]
        where = "every hop crosses nodes" if mode == "icn" else f"on {len({r.node for r in executed})} node(s)"
        per = run.wall / n
        print(f"{mode}: chain of {n} no-op functions on 3 nodes ({where}); {len(executed)} executed")
        print(f"  wall {run.wall:.3f} s = {per * 1000:.2f} ms per function ({per / floor:.1f} x bare); "
              f"node peak RSS (MB): {', '.join(f'{m:.0f}' for m in run.peak_rss_mb)}")
        figures["modes"][mode] = {"wall_s": run.wall, "per_function_ms": per * 1000, "ratio_to_bare": per / floor,
                                  "executed": len(executed), "peak_rss_mb": list(run.peak_rss_mb)}
    emit(args, "sfc_chain_overhead", figures)


if __name__ == "__main__":
    main()
