"""A chain of 20 Docker functions (the ``sflow-busybox`` image, ``DUMMY true``: its entrypoint
runs ``true``) over IP chaining on 3 local nodes, beside ``docker run --rm`` of the same image and
command started by a user, measured in the same run (before and after the chain).

Printed: sflow's wall time per function (plan handed over → last result back, / 20) and the median
``docker run --rm sflow-busybox true``. Target: ≤ 1.2 × ``docker run --rm``. Needs a Docker engine
and the sample images (``bash dockerfiles/build.sh sflow-busybox``).

    .venv/bin/python benchmarks/docker_chain.py [--n 20] [--json OUT]
"""

from __future__ import annotations

import statistics
import subprocess
import time

from ip_common import run_job
from report import emit, load, parser

from sflow.model import Job, OutValue, Task, TaskId

IMAGE = "sflow-busybox"


def docker_chain(n: int) -> Job:
    return Job(5, tuple(
        Task(TaskId(i), 1.0, "DUMMY true", docker_image=IMAGE,
             out_value=OutValue("x", 0.0, (TaskId(i + 1),)) if i < n else None)
        for i in range(1, n + 1)
    ))


def docker_run(n: int) -> list[float]:
    out = []
    for _ in range(n):
        began = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", IMAGE, "true"], check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - began)
    return out


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--n", type=int, default=20)
    args = p.parse_args()
    docker_run(2)  # warm the engine
    before = docker_run(args.n // 2)
    out = run_job(docker_chain(args.n), nodes=3, vcpus_per_node=1, place=lambda t: ((t - 1) % 3, 0))
    after = docker_run(args.n - args.n // 2)
    peer = statistics.median(before + after)
    per = out.wall / args.n
    if any(not r.where.startswith("docker:") for r in out.trace.tasks):
        raise SystemExit("some functions did not run in Docker")
    print(f"chain of {args.n} Docker functions ({IMAGE}, DUMMY true) on 3 nodes; load {load()['loadavg_1m']:.2f}")
    print(f"  sflow: wall {out.wall:.2f} s = {per * 1000:.0f} ms per function")
    print(f"  docker run --rm {IMAGE} true: median {peer * 1000:.0f} ms "
          f"(before {statistics.median(before) * 1000:.0f}, after {statistics.median(after) * 1000:.0f})")
    print(f"  ratio {per / peer:.2f} (target <= 1.2)")
    emit(args, "docker_chain", {"n": args.n, "wall_s": out.wall, "per_function_ms": per * 1000,
                                "docker_run_ms": peer * 1000, "ratio": per / peer,
                                "peak_rss_mb": list(out.peak_rss_mb)})


if __name__ == "__main__":
    main()
