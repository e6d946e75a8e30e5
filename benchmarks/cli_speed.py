"""Whole-process time of commands a user types, beside the interpreter's own start (``python -c
pass``) measured in the same run: ``sflow --help``, ``sflow validate`` of the samples, and
``sflow schedule -a heft -o mapping.json`` of random layered DAGs (as in sched_speed.py) of
4,000 tasks on 32 vCPUs and 100,000 tasks on 64 vCPUs, the mapping written.

Targets: --help and validate ≤ 0.3 s; schedule 4,000 × 32 ≤ 0.6 s, 100,000 × 64 ≤ 6 s.

    .venv/bin/python benchmarks/cli_speed.py [--repeat 5] [--skip-large] [--json OUT]
"""

from __future__ import annotations

import json
import os
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


def timed(argv: list[str], repeat: int) -> float:
    """The median wall time of ``argv`` run ``repeat`` times (it must succeed), after one run
    that is not timed (it writes the bytecode caches a fresh checkout lacks)."""
    subprocess.run(argv, check=True, cwd=REPO, stdout=subprocess.DEVNULL, env=ENV)
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run(argv, check=True, cwd=REPO, stdout=subprocess.DEVNULL, env=ENV)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


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
        rows: list[tuple[str, float, float]] = [
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
    print(f"whole-process wall time, median of {args.repeat}; load {load()['loadavg_1m']:.2f} on {load()['cpus']} CPUs")
    for label, seconds, target in rows:
        goal = f"(target <= {target:g} s)" if target else ""
        print(f"  {label:<62} {seconds:7.3f} s {goal}")
    emit(args, "cli_speed", {"repeat": args.repeat,
                             "commands": {label: {"seconds": s, "target_s": t or None} for label, s, t in rows}})


if __name__ == "__main__":
    main()
