"""One large file between two nodes over loopback: throughput and each node's peak memory.

Targets: >= 300 MB/s, peak RSS < 150 MB per node whatever the file size.

    .venv/bin/python benchmarks/ip_transfer.py [--size-mb 1024] [--chunk 262144] [--json OUT]
"""

from __future__ import annotations

from ip_common import run_job
from report import emit, load, parser

from sflow.model import Job, OutFile, Task, TaskId


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--size-mb", type=int, default=1024)
    p.add_argument("--chunk", type=int, default=262144)
    args = p.parse_args()
    size_mb, chunk = args.size_mb, args.chunk
    job = Job(
        3,
        (
            Task(TaskId(1), 1.0, f"head -c {size_mb}M /dev/zero > big.bin", out_files=(OutFile("big.bin", size_mb, (TaskId(2),)),)),
            Task(TaskId(2), 1.0, "wc -c < $F^1 > n.txt", out_files=(OutFile("n.txt", 0.0, ()),)),
        ),
    )
    out = run_job(job, nodes=2, vcpus_per_node=1, place=lambda t: (t - 1, 0), chunk_size=chunk)
    (transfer,) = out.trace.transfers
    seconds = transfer.finish - transfer.start
    mb = transfer.bytes / 2**20
    print(f"{mb:.0f} MB from node 0 to node 1 in {seconds:.2f} s: {mb / seconds:.0f} MB/s (target >= 300 MB/s)")
    print(f"  chunk {chunk} bytes; SHA-256 checked on arrival; written to a temp name, then renamed")
    print(f"  node peak RSS (MB): {', '.join(f'{m:.0f}' for m in out.peak_rss_mb)} (target < 150 MB)")
    print(f"  job makespan {out.trace.makespan:.2f} s; load {load()['loadavg_1m']:.2f}")
    emit(args, "ip_transfer", {"mb": mb, "seconds": seconds, "mb_per_s": mb / seconds, "chunk": chunk,
                               "peak_rss_mb": list(out.peak_rss_mb)})


if __name__ == "__main__":
    main()
