"""Whole-process time of commands a user types, beside the interpreter's own start (``python -c
pass``) measured in the same run: ``sflow --help``, ``sflow validate`` of the samples, and
``sflow schedule -a heft -o mapping.json`` of random layered DAGs (as in sched_speed.py) of
4,000 tasks on 32 vCPUs and 100,000 tasks on 64 vCPUs, the mapping written.

Targets: --help and validate ≤ 0.3 s; schedule 4,000 × 32 ≤ 0.6 s, 100,000 × 64 ≤ 6 s.

Beside each wall time, the user + system CPU time the command's process took (its median over
the same runs): on a machine that other work loads, wall time grows with the load while CPU time
stays close to what a quiet machine would show; the load average is printed with the figures.

    .venv/bin/python benchmarks/cli_speed.py [--repeat 5] [--skip-large] [--json OUT]
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import emit, load, parser
from sched_speed import make_environment, make_job

from sflow.jsonio import environment_to_dict, job_to_dict

REPO = Path(__file__).resolve().parents[1]
SFLOW = [sys.executable, "-m", "sflow"]


# As installed: bytecode cached (pip compiles it at install time), so not recompiled each run.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str], repeat: int) -> tuple[float, float]:
    """The median wall time and the median user + system CPU time of ``argv`` run ``repeat``
    times (it must succeed), after one run that is not timed (it writes the bytecode caches a
    fresh checkout lacks)."""
    subprocess.run(argv, check=True, cwd=REPO, stdout=subprocess.DEVNULL, env=ENV)
    times, cpu = [], []
    for _ in range(repeat):
        used = _children_cpu()
        began = time.perf_counter()
        subprocess.run(argv, check=True, cwd=REPO, stdout=subprocess.DEVNULL, env=ENV)
        times.append(time.perf_counter() - began)
        cpu.append(_children_cpu() - used)
    return statistics.median(times), statistics.median(cpu)


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--skip-large", action="store_true", help="skip the 100,000-task schedule")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="sflow-bench-cli-") as tmp:
        sizes = [(4000, 32, 0.6)] + ([] if args.skip_large else [(100_000, 64, 6.0)])
        files = {}
        for tasks, vcpus, _ in sizes:
            env, job = Path(tmp, f"env{vcpus}.json"), Path(tmp, f"job{tasks}.json")
            env.write_text(json.dumps(environment_to_dict(make_environment(vcpus, 1))))
            job.write_text(json.dumps(job_to_dict(make_job(tasks, alpha=1.0, out_degree=3.0, ccr=1.0, seed=1))))
            files[tasks] = (env, job)
        rows: list[tuple[str, tuple[float, float], float]] = [
            ("python -c pass (the floor)", timed([sys.executable, "-c", "pass"], args.repeat), 0.0),
            ("sflow --help", timed([*SFLOW, "--help"], args.repeat), 0.3),
            ("sflow validate envs/local.json jobs/ffmpeg.json",
             timed([*SFLOW, "validate", "envs/local.json", "jobs/ffmpeg.json"], args.repeat), 0.3),
            ("sflow validate envs/multi-host.json jobs/fork-join.json",
             timed([*SFLOW, "validate", "envs/multi-host.json", "jobs/fork-join.json"], args.repeat), 0.3),
        ]
        for tasks, vcpus, target in sizes:
            env, job = files[tasks]
            out = Path(tmp, f"mapping{tasks}.json")
            rows.append((f"sflow schedule -a heft, {tasks:,} tasks x {vcpus} vCPUs, -o mapping",
                         timed([*SFLOW, "schedule", str(env), str(job), "-a", "heft", "-o", str(out)],
                               args.repeat if tasks < 10_000 else max(1, args.repeat // 2)), target))
    print(f"whole-process wall time and user+sys CPU time, medians of {args.repeat}; "
          f"load {load()['loadavg_1m']:.2f} on {load()['cpus']} CPUs")
    for label, (seconds, cpu), target in rows:
        goal = f"(target <= {target:g} s)" if target else ""
        print(f"  {label:<62} {seconds:7.3f} s wall {cpu:7.3f} s CPU {goal}")
    emit(args, "cli_speed", {"repeat": args.repeat,
                             "commands": {label: {"seconds": s, "cpu_seconds": c, "target_s": t or None}
                                          for label, (s, c), t in rows}})


if __name__ == "__main__":
    main()
