"""The cached second run of a job as a fraction of its first run, in ``icn`` and ``auto`` modes
(default: the ffmpeg sample job; target ≤ 5 %). The second run computes nothing: its END results
come from the nodes' content stores.

    .venv/bin/python benchmarks/sfc_cache.py [JOB.json] [--json OUT]
"""

from __future__ import annotations

from pathlib import Path

from report import emit, parser
from sfc_common import Session, run_sessions

from sflow.jsonio import load_job

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = parser(__doc__)
    p.add_argument("job", nargs="?", default=str(REPO / "jobs" / "ffmpeg.json"))
    args = p.parse_args()
    path = args.job
    figures: dict[str, dict[str, float]] = {}
    job = load_job(path)
    order = {t: i for i, t in enumerate(job.order)}
    modes = ("icn", "auto")
    sessions = run_sessions([Session(mode, [job, job], 3, lambda t: order[t] % 3) for mode in modes])
    print(f"{path}: {len(job.tasks)} functions on 3 nodes, run twice")
    for mode, (first, second) in zip(modes, sessions):
        executed = [r.task for r in second.trace.tasks if r.where.startswith("executed")]
        print(f"{mode}: first run {first.wall:.3f} s, second run {second.wall:.3f} s "
              f"= {100 * second.wall / first.wall:.1f} % of the first (target <= 5 %); "
              f"functions executed in the second run: {executed or 'none'}")
        figures[mode] = {"first_s": first.wall, "second_s": second.wall, "ratio": second.wall / first.wall,
                         "executed_in_second": len(executed)}
    emit(args, "sfc_cache", {"job": path, "modes": figures})


if __name__ == "__main__":
    main()
