"""How fast the schedulers are, and how much memory they take, on large random DAGs.

Random layered DAGs as in Topcuoglu et al. 2002 (§5.1): v tasks in about sqrt(v)/alpha levels,
each task with ``--out-degree`` edges into the next level on average, computation costs drawn
around a mean, and data sizes chosen so that the communication-to-computation ratio is ``--ccr``.
The environment: 16 vCPUs (4 hosts × 4, one DC) or 64 vCPUs (2 DCs × 4 hosts × 8), 1000–4000 MIPS.

Each (size, vCPUs, algorithm) runs in its own subprocess so that its peak RSS is honest; the
figures printed are the time to build the Problem, the time to schedule, and the peak RSS.

    .venv/bin/python benchmarks/sched_speed.py                      # 1k, 10k, 100k × 16, 64
    .venv/bin/python benchmarks/sched_speed.py --sizes 10000 --vcpus 64 --algorithms heft peft
    .venv/bin/python benchmarks/sched_speed.py --skip-slow         # not the slowest ones at 100k

``--skip-slow`` skips the slowest algorithms (SLOW) at sizes ≥ ``--slow-limit``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import subprocess
import sys
import time
from typing import Any

from sflow.jsonio import environment_from_dict
from sflow.model.infra import Environment
from sflow.model.workflow import Job, OutFile, Task, TaskId
from sflow.sched.problem import Problem
from sflow.sched.registry import get_scheduler, names

SLOW = ("sf-cuv", "cpop", "peft")
MEAN_WORK = 10_000.0  # MI
HOST_BW = 125.0  # MB/s


def make_environment(vcpus: int, seed: int) -> Environment:
    rng = random.Random(seed)
    layout = {16: (1, 4, 4), 64: (2, 4, 8)}.get(vcpus)
    if layout is None:
        dcs, hosts, per = 1, max(1, vcpus // 8), 8
        per = math.ceil(vcpus / hosts)
    else:
        dcs, hosts, per = layout
    dc_list = []
    for d in range(dcs):
        host_list = []
        for h in range(hosts):
            hid = f"{d}^{h}"
            vids = [f"{hid}^0^{k}^0" for k in range(per)]
            host_list.append({
                "host_id": hid, "bw": HOST_BW,
                "cpu_list": [{"cpu_id": f"{hid}^0", "mips": 1000, "core_list": [
                    {"core_id": f"{hid}^0^{k}", "maxusage": 100,
                     "vcpu_list": [{"vcpu_id": v, "mips": rng.choice([1000, 2000, 3000, 4000])}]}
                    for k, v in enumerate(vids)]}],
                "vm_list": [{"vm_id": f"vm{d}.{h}", "ip": f"10.{d}.{h}.1", "vcpu_list": [{"vcpu_id": v} for v in vids]}],
            })
        dc_list.append({"dc_id": d, "bw": HOST_BW / 2, "host_list": host_list})
    return environment_from_dict({"dc_list": dc_list}, "<bench env>")


def make_job(v: int, *, alpha: float, out_degree: float, ccr: float, seed: int) -> Job:
    rng = random.Random(seed)
    height = max(1, round(math.sqrt(v) / alpha))
    levels: list[list[int]] = [[] for _ in range(height)]
    for t in range(1, v + 1):
        levels[t - 1 if t <= height else rng.randrange(height)].append(t)
    levels = [lvl for lvl in levels if lvl]
    # Mean transfer time per edge = ccr × mean execution time at the mean speed (2500 MIPS).
    mean_size = ccr * (MEAN_WORK / 2500.0) * HOST_BW
    out: dict[int, dict[int, float]] = {t: {} for t in range(1, v + 1)}
    for upper, lower in zip(levels, levels[1:]):
        has_pred: set[int] = set()
        for t in upper:
            for _ in range(max(1, round(rng.expovariate(1 / out_degree)))):
                d = rng.choice(lower)
                out[t][d] = rng.uniform(0.5, 1.5) * mean_size
                has_pred.add(d)
        for d in lower:
            if d not in has_pred:
                out[rng.choice(upper)][d] = rng.uniform(0.5, 1.5) * mean_size
    tasks = tuple(
        Task(
            id=TaskId(t),
            workload=rng.uniform(0.1, 1.9) * MEAN_WORK,
            cmd="true",
            out_files=tuple(OutFile(f"./o{t}_{d}", s, (TaskId(d),)) for d, s in out[t].items()),
        )
        for t in range(1, v + 1)
    )
    return Job(1, tasks)


def run_one(size: int, vcpus: int, algorithm: str, args: argparse.Namespace) -> dict[str, Any]:
    env = make_environment(vcpus, args.seed)
    job = make_job(size, alpha=args.alpha, out_degree=args.out_degree, ccr=args.ccr, seed=args.seed)
    began = time.perf_counter()
    problem = Problem.from_env_job(env, job, "<bench env>")
    built = time.perf_counter() - began
    scheduler = get_scheduler(algorithm, args.seed)
    began = time.perf_counter()
    schedule = scheduler.schedule(problem)
    elapsed = time.perf_counter() - began
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "size": size, "vcpus": vcpus, "algorithm": algorithm, "edges": len(job.edges),
        "build_s": built, "schedule_s": elapsed, "peak_mb": peak_mb, "makespan": schedule.makespan,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--vcpus", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--algorithms", nargs="+", default=list(names()))
    ap.add_argument("--alpha", type=float, default=1.0, help="shape: about sqrt(v)/alpha levels")
    ap.add_argument("--out-degree", type=float, default=3.0)
    ap.add_argument("--ccr", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-slow", action="store_true", help=f"skip {', '.join(SLOW)} from --slow-limit tasks on")
    ap.add_argument("--slow-limit", type=int, default=100_000)
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    ap.add_argument("--one", nargs=3, metavar=("SIZE", "VCPUS", "ALGORITHM"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        size, vcpus, algorithm = args.one
        print(json.dumps(run_one(int(size), int(vcpus), algorithm, args)))
        return 0
    common = ["--alpha", str(args.alpha), "--out-degree", str(args.out_degree), "--ccr", str(args.ccr),
              "--seed", str(args.seed)]
    rows: list[dict[str, Any]] = []
    print(f"{'tasks':>7} {'vCPUs':>5} {'edges':>7} {'algorithm':<12} {'build s':>8} {'schedule s':>10} "
          f"{'peak MB':>8} {'makespan':>10}")
    for size in args.sizes:
        for vcpus in args.vcpus:
            for algorithm in args.algorithms:
                if args.skip_slow and algorithm in SLOW and size >= args.slow_limit:
                    print(f"{size:>7} {vcpus:>5} {'':>7} {algorithm:<12} skipped (--skip-slow)")
                    continue
                proc = subprocess.run(
                    [sys.executable, __file__, "--one", str(size), str(vcpus), algorithm, *common],
                    capture_output=True, text=True, check=False,
                )
                if proc.returncode != 0:
                    print(f"{size:>7} {vcpus:>5} {'':>7} {algorithm:<12} FAILED: {proc.stderr.strip()[-300:]}")
                    continue
                r = json.loads(proc.stdout)
                rows.append(r)
                print(f"{size:>7} {vcpus:>5} {r['edges']:>7} {algorithm:<12} {r['build_s']:>8.3f} "
                      f"{r['schedule_s']:>10.3f} {r['peak_mb']:>8.0f} {r['makespan']:>10.1f}", flush=True)
    if args.json:
        from report import emit

        emit(args, "sched_speed", {"runs": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
