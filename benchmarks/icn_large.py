"""One large result between two nodes in icn mode: throughput beside a plain file copy, and each
node's peak memory.

Function 1 on node 0 writes SIZE MB; function 2 on node 1 takes it as its input (``wc -c``). The
result goes into node 0's store from the output file, is served from that file segment by
segment, and is written into node 1's store as the segments arrive, then into function 2's
working directory. Figures: the time from function 1's end to function 2's start (all that:
bundle, store, transfer, spool, copy into the working directory) as MB/s, beside ``cp`` of a file
of the same size on the same disk (measured in the same run); node peak RSS (VmHWM).

Target: peak RSS < 200 MB per node, whatever the size.

    .venv/bin/python benchmarks/icn_large.py [--size-mb 1024] [--json OUT]
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from report import emit, load, parser, timed
from sfc_common import Session, run_sessions

from sflow.model import Job, OutFile, Task, TaskId


def copy_floor(size_mb: int) -> float:
    """Seconds to copy a SIZE MB file with ``shutil.copyfile`` (the plain file copy)."""
    with tempfile.TemporaryDirectory(prefix="sflow-bench-copy-") as tmp:
        src, dst = Path(tmp) / "a", Path(tmp) / "b"
        with src.open("wb") as f:
            block = b"\0" * (1 << 20)
            for _ in range(size_mb):
                f.write(block)
        return timed(lambda: shutil.copyfile(src, dst))


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--size-mb", type=int, default=1024)
    args = p.parse_args()
    size_mb = args.size_mb
    job = Job(9, (
        Task(TaskId(1), 1.0, f"head -c {size_mb}M /dev/zero > big.bin", out_files=(OutFile("big.bin", size_mb, (TaskId(2),)),)),
        Task(TaskId(2), 1.0, "wc -c < $F^1 > n.txt", out_files=(OutFile("n.txt", 0.0, ()),)),
    ))
    (run,) = run_sessions([Session("icn", [job], 2, lambda t: int(t) - 1)])[0]
    floor = copy_floor(size_mb)
    tasks = {t.task: t for t in run.trace.tasks}
    moved = tasks[2].start - tasks[1].finish
    print(f"{size_mb} MB from node 0 to node 1 (icn): function 1 end to function 2 start {moved:.2f} s = "
          f"{size_mb / moved:.0f} MB/s; plain file copy {floor:.2f} s = {size_mb / floor:.0f} MB/s "
          f"(x{moved / floor:.1f})")
    print(f"  node peak RSS (MB): {', '.join(f'{m:.0f}' for m in run.peak_rss_mb)} (target < 200 MB)")
    print(f"  job wall {run.wall:.2f} s, makespan {run.trace.makespan:.2f} s; load {load()['loadavg_1m']:.2f} "
          "(figures measured under that load)")
    emit(args, "icn_large", {"mb": size_mb, "seconds": moved, "mb_per_s": size_mb / moved, "copy_seconds": floor,
                             "copy_mb_per_s": size_mb / floor, "peak_rss_mb": list(run.peak_rss_mb),
                             "wall": run.wall})


if __name__ == "__main__":
    main()
