"""Predicted vs real makespan of the sample jobs, before and after one calibrating run.

For each job, with the real CLI on a local cluster (``sflow run``, ``--nodes`` nodes on loopback,
three by default):

0. with ``--warmup N``, N runs first that only warm the machine's caches up (ffmpeg's libraries,
   Docker's image layers): the first run on a cold machine is slower than the ones after it;
1. ``sflow run JOB -a ALG`` (``--calibrating-runs`` times, default once): the prediction comes
   from workload / MIPS and the declared sizes;
2. ``sflow calibrate OUT/trace.json... --job JOB -o costs.json``: the costs those runs measured
   (several runs: the median of each function's times);
3. ``sflow run JOB -a ALG --costs costs.json`` (repeated ``--after`` times): the prediction comes
   from the measured costs; each run has new node ports, so the costs are matched to the new
   nodes by their vCPU ids.

Printed per run: the predicted makespan (``predicted_makespan`` of the trace, the schedule's), the
real one (from the delegator's "start" to the last function's end, as the trace records it) and
the error ``(predicted − real) / real``. The machine may be shared: real makespans of short jobs
move with its load, so the table also gives the load average at the start and end.

    .venv/bin/python benchmarks/calibration.py
    .venv/bin/python benchmarks/calibration.py --jobs text-chain fork-join --after 5 -a best
    .venv/bin/python benchmarks/calibration.py --skip-docker      # not ffmpeg-docker
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sflow.delegator.trace import load_trace

REPO = Path(__file__).resolve().parents[1]
JOBS = ("text-chain", "fork-join", "ffmpeg", "ffmpeg-docker")


def sflow(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "sflow", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"sflow {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")


def run(job: Path, out: Path, algorithm: str, costs: Path | None, nodes: int) -> tuple[float, float]:
    extra = ["--costs", str(costs)] if costs is not None else []
    sflow("run", str(job), "-o", str(out), "-a", algorithm, "--nodes", str(nodes), *extra)
    trace = load_trace(out / "trace.json")
    if trace.predicted_makespan is None:
        raise SystemExit(f"{out / 'trace.json'}: no prediction")
    return trace.predicted_makespan, trace.makespan


def row(job: str, label: str, predicted: float, real: float) -> float:
    error = (predicted - real) / real if real > 0 else float("inf")
    print(f"{job:<14} {label:<16} {predicted:>12.3f} {real:>10.3f} {error:>+9.1%}", flush=True)
    return error


@dataclass(frozen=True, slots=True)
class Summary:
    job: str
    before: float
    after: list[float]
    #: the calibrated prediction (the same for every run after: same costs, same schedule)
    predicted: float
    reals: list[float]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", nargs="+", default=list(JOBS), choices=JOBS)
    ap.add_argument("--skip-docker", action="store_true", help="leave out ffmpeg-docker")
    ap.add_argument("-a", "--algorithm", default="heft")
    ap.add_argument("--after", type=int, default=3, help="runs with the costs after the calibrating one")
    ap.add_argument("--warmup", type=int, default=0, help="uncounted runs before the calibrating one")
    ap.add_argument("--calibrating-runs", type=int, default=1,
                    help="uncalibrated runs whose traces are calibrated together (the median of each function)")
    ap.add_argument("--nodes", type=int, default=3, help="local nodes (sflow run --nodes; each gets "
                    "cpu_count / nodes vCPUs, at least one: more nodes than cores run functions side by side "
                    "on a shared core, which the costs measured alone do not know)")
    ap.add_argument("--workdir", help="keep outputs here (default: a temporary directory)")
    args = ap.parse_args(argv)
    jobs = [j for j in args.jobs if not (args.skip_docker and j == "ffmpeg-docker")]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs; "
          f"{args.nodes} local nodes, -a {args.algorithm}")
    print(f"{'job':<14} {'run':<16} {'predicted s':>12} {'real s':>10} {'error':>9}")
    summary: list[Summary] = []
    with tempfile.TemporaryDirectory(prefix="sflow-calibration-") as tmp:
        base = Path(args.workdir) if args.workdir else Path(tmp)
        for name in jobs:
            job = REPO / "jobs" / f"{name}.json"
            for k in range(args.warmup):
                predicted, real = run(job, base / name / f"warmup{k}", args.algorithm, None, args.nodes)
                row(name, f"warm-up #{k + 1}", predicted, real)
            traces, errors, reals = [], [], []
            for k in range(args.calibrating_runs):
                out = base / name / f"calibrating{k}"
                predicted, real = run(job, out, args.algorithm, None, args.nodes)
                errors.append(row(name, f"uncalibrated #{k + 1}", predicted, real))
                reals.append(real)
                traces.append(str(out / "trace.json"))
            before = statistics.median(errors)
            costs = base / name / "costs.json"
            sflow("calibrate", *traces, "--job", str(job), "-o", str(costs))
            after = []
            for k in range(1, args.after + 1):
                predicted, real = run(job, base / name / f"run{k}", args.algorithm, costs, args.nodes)
                after.append(row(name, f"calibrated #{k}", predicted, real))
                reals.append(real)
            summary.append(Summary(name, before, after, predicted, reals))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    # The floor: how much the real makespan of one job moves from run to run on this machine now.
    print(f"{'job':<14} {'error before':>13} {'median |error| after':>21} {'worst |error| after':>20} "
          f"{'after vs median real':>21} {'real spread':>12}")
    for s in summary:
        median_real = statistics.median(s.reals)
        spread = (max(s.reals) - min(s.reals)) / median_real
        print(f"{s.job:<14} {s.before:>+13.1%} {statistics.median(abs(e) for e in s.after):>21.1%} "
              f"{max(abs(e) for e in s.after):>20.1%} {(s.predicted - median_real) / median_real:>+21.1%} "
              f"{spread:>12.1%}")
    print("real spread = (slowest − fastest real makespan) / median over this job's runs: what a perfect "
          "prediction would still miss by on this machine now")
    return 0


if __name__ == "__main__":
    sys.exit(main())
