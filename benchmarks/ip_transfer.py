"""One large file between two nodes over loopback: throughput and each node's peak memory, with the
channels sealed (AES-256-GCM, the default) and in clear (security.channel_encryption = false),
measured in the same process one after the other.

Targets: >= 250 MB/s sealed (>= 300 MB/s in clear), peak RSS < 150 MB per node whatever the file size.

    .venv/bin/python benchmarks/ip_transfer.py [--size-mb 1024] [--chunk 262144] [--only sealed|clear] [--json OUT]
"""

from __future__ import annotations

from typing import Any

from ip_common import Outcome, ip_run
from report import emit, load, parser
from twisted.internet import defer

from sflow.model import Job, OutFile, Task, TaskId
from sflow.node.blocking import run_until


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--size-mb", type=int, default=1024)
    p.add_argument("--chunk", type=int, default=262144)
    p.add_argument("--only", choices=("sealed", "clear"), help="measure one of the two")
    args = p.parse_args()
    size_mb, chunk = args.size_mb, args.chunk
    job = Job(
        3,
        (
            Task(TaskId(1), 1.0, f"head -c {size_mb}M /dev/zero > big.bin", out_files=(OutFile("big.bin", size_mb, (TaskId(2),)),)),
            Task(TaskId(2), 1.0, "wc -c < $F^1 > n.txt", out_files=(OutFile("n.txt", 0.0, ()),)),
        ),
    )
    kinds = [args.only] if args.only else ["clear", "sealed"]

    async def measure(reactor: Any) -> dict[str, Outcome]:
        return {
            kind: await ip_run(reactor, job, nodes=2, vcpus_per_node=1, place=lambda t: (t - 1, 0), chunk_size=chunk,
                               sealed=kind == "sealed")
            for kind in kinds
        }

    outcomes = run_until(lambda reactor: defer.Deferred.fromCoroutine(measure(reactor)))
    figures: dict[str, Any] = {"chunk": chunk}
    for kind, out in outcomes.items():
        (transfer,) = out.trace.transfers
        seconds = transfer.finish - transfer.start
        mb = transfer.bytes / 2**20
        target = 250 if kind == "sealed" else 300
        print(f"{kind:>6}: {mb:.0f} MB from node 0 to node 1 in {seconds:.2f} s: {mb / seconds:.0f} MB/s "
              f"(target >= {target} MB/s); node peak RSS (MB): {', '.join(f'{m:.0f}' for m in out.peak_rss_mb)} "
              f"(target < 150 MB); job makespan {out.trace.makespan:.2f} s; node CPU (s): "
              f"{', '.join(f'{c:.2f}' for c in out.cpu_s)} (sender, receiver; whole job)")
        figures[kind] = {"mb": mb, "seconds": seconds, "mb_per_s": mb / seconds, "peak_rss_mb": list(out.peak_rss_mb),
                         "node_cpu_s": list(out.cpu_s)}
    if len(outcomes) == 2:
        print(f"  sealed / clear throughput: {figures['sealed']['mb_per_s'] / figures['clear']['mb_per_s']:.2f}")
    print(f"  chunk {chunk} bytes; checked on arrival (sealed: every frame authenticated; clear: SHA-256); "
          f"written to a temp name, fsynced once, then renamed; "
          f"load {load()['loadavg_1m']:.2f}")
    emit(args, "ip_transfer", figures)


if __name__ == "__main__":
    main()
