"""What an experiment costs beyond its jobs, and what a large emulated one costs in all.

1. Per run, outside the job: a one-function job (``true``) on three local nodes, run ``--runs``
   times by ``sflow experiment run``; each run's wall time split into starting the nodes, the job
   (its makespan), the rest of the dispatch (scheduling, status queries before and after, the
   job's start and results), stopping the nodes, and recording (the experiment's time outside its
   runs). The peer, measured in the same run of this script: the same job run as many times by
   ``sflow run`` from a shell loop (what experiments were before `sflow experiment`).
2. ``experiments/scale.toml`` (20 emulated nodes, 99 functions, ip/icn/auto): wall time of the
   whole matrix and the peak resident memory of everything it runs together (the experiment, its
   20 nodes and their functions; sampled every 0.2 s from /proc), beside each run's makespan.

    .venv/bin/python benchmarks/experiment_overhead.py [--runs N] [--skip-scale]

The machine may be shared: figures are noisy; compare the ratio to the peer.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sflow.experiment.procstat import usage

REPO = Path(__file__).resolve().parents[1]


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFLOW_")}
    env["SFLOW_SECURITY_SECRET_FILE"] = str(tmp / "absent.secret")
    return env


def per_run(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="sflow-bench-") as name:
        tmp = Path(name)
        job = tmp / "noop.json"
        job.write_text(json.dumps({"job_id": 7, "task_list": [{"task_id": 1, "workload": 1, "cmd": "true"}]}))
        spec = tmp / "noop.toml"
        spec.write_text(f'[cluster]\nnodes = 3\n[matrix]\njobs = ["{job}"]\nrepetitions = {runs}\n')
        began = time.monotonic()
        subprocess.run([sys.executable, "-m", "sflow", "experiment", "run", str(spec), "-o", str(tmp / "out")],
                       env=_env(tmp), check=True, capture_output=True)
        total = time.monotonic() - began
        with sqlite3.connect(tmp / "out" / "results.sqlite") as db:
            rows = list(db.execute("SELECT wall_s, setup_s, teardown_s, makespan_s FROM runs WHERE status = 'ok'"))
        assert len(rows) == runs, rows
        wall = statistics.median(r[0] for r in rows)
        setup = statistics.median(r[1] for r in rows)
        teardown = statistics.median(r[2] for r in rows)
        makespan = statistics.median(r[3] for r in rows)
        outside = (total - sum(r[0] for r in rows)) / runs  # interpreter start, session, recording
        peer = []
        for _ in range(runs):
            t = time.monotonic()
            subprocess.run([sys.executable, "-m", "sflow", "run", str(job), "--nodes", "3", "-o", str(tmp / "peer")],
                           env=_env(tmp), check=True, capture_output=True)
            peer.append(time.monotonic() - t)
        per = total / runs
        print(f"per-run cost of `sflow experiment run` ({runs} runs of a one-function job on 3 local nodes), medians:")
        rest = statistics.median(r[0] - r[1] - r[2] - r[3] for r in rows)
        print(f"  run wall {wall:.3f} s: start nodes {setup:.3f} s, job {makespan:.3f} s, scheduling, dispatch, "
              f"status and samples {rest:.3f} s, stop nodes {teardown:.3f} s")
        print(f"  outside the runs (interpreter, session, recording), per run: {outside:.3f} s")
        print(f"  all in, per run: {per:.3f} s;  peer: `sflow run` per run {statistics.median(peer):.3f} s "
              f"(ratio {per / statistics.median(peer):.2f})")


class PeakMemory(threading.Thread):
    """The largest total RSS of a process tree, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kb = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            u = usage(self.pid)
            if u is not None:
                self.peak_kb = max(self.peak_kb, u.rss_kb + u.children_rss_kb)


def scale() -> None:
    with tempfile.TemporaryDirectory(prefix="sflow-bench-") as name:
        tmp = Path(name)
        began = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "sflow", "experiment", "run",
                                 str(REPO / "experiments" / "scale.toml"), "-o", str(tmp / "out")], env=_env(tmp),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = PeakMemory(proc.pid)
        peak.start()
        proc.wait()
        peak.done.set()
        wall = time.monotonic() - began
        with sqlite3.connect(tmp / "out" / "results.sqlite") as db:
            rows = list(db.execute("SELECT mode, status, makespan_s, predicted_s, wall_s, setup_s, teardown_s FROM runs"))
        print(f"experiments/scale.toml (20 emulated nodes, 99 functions): {wall:.1f} s wall for {len(rows)} runs, "
              f"peak memory of everything together {peak.peak_kb / 1024:.0f} MiB")
        for mode, status, makespan, predicted, run_wall, setup, teardown in rows:
            pred = f", predicted {predicted:.2f} s" if predicted is not None else ""
            span = f"makespan {makespan:.2f} s{pred}" if makespan is not None else "no makespan"
            print(f"  {mode}: {status}, {span}; run wall {run_wall:.1f} s (start 20 nodes {setup:.1f} s, "
                  f"stop {teardown:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    per_run(args.runs)
    if not args.skip_scale:
        scale()


if __name__ == "__main__":
    main()
