"""A 1,000-function fork–join over IP chaining: one START, 998 parallel no-op functions, one join,
on 3 local nodes with 2 vCPUs each (placed round-robin).

    .venv/bin/python benchmarks/ip_fork_join.py [N]
"""

from __future__ import annotations

import sys

from ip_common import run_job

from sflow.model import Job, OutValue, Task, TaskId


def fork_join(n: int) -> Job:
    middle = range(2, n)
    tasks = [Task(TaskId(1), 1.0, "true", out_value=OutValue("go", 0.0, tuple(TaskId(i) for i in middle)))]
    tasks += [Task(TaskId(i), 1.0, "true", out_value=OutValue("ok", 0.0, (TaskId(n),))) for i in middle]
    tasks.append(Task(TaskId(n), 1.0, "true"))
    return Job(2, tuple(tasks))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    nodes, vcpus = 3, 2
    slots = nodes * vcpus
    out = run_job(fork_join(n), nodes=nodes, vcpus_per_node=vcpus, place=lambda t: (t % slots // vcpus, t % vcpus))
    busy = sum(r.finish - r.start for r in out.trace.tasks)
    ideal = busy / slots
    print(f"fork-join of {n} no-op functions on {nodes} nodes x {vcpus} vCPUs")
    print(f"  makespan {out.trace.makespan:.3f} s (wall {out.wall:.3f} s incl. plan dispatch)")
    print(f"  {n / out.trace.makespan:.0f} functions/s; sum of run times {busy:.3f} s, /{slots} vCPUs = {ideal:.3f} s")
    print(f"  node peak RSS (MB): {', '.join(f'{m:.0f}' for m in out.peak_rss_mb)}")


if __name__ == "__main__":
    main()
