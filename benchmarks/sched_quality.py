"""Schedule quality side by side: every algorithm, and ``best`` against HEFT, per instance.

Instances:

* random layered DAGs (the generator of ``sched_speed.py``: Topcuoglu et al. 2002, §5.1) of 50 to
  1,000 tasks with communication-to-computation ratios 0.1, 1 and 5 (and 10 on some), shapes from
  long (alpha 0.5) to wide (alpha 2), on 16 heterogeneous vCPUs (4 hosts) and, for a few, 64 vCPUs
  (2 DCs);
* WfCommons workflows — Montage, Epigenomics, 1000Genome, Seismology, Blast, Cycles, SoyKB and
  SRASearch, 100 to 500 tasks (each recipe's smallest is 50 to 200) — made
  by the recipes of the ``wfcommons`` package (``pip install wfcommons``, a benchmark-only extra:
  ``pip install -e '.[bench]'``; seeded, so the same instances every time) as WfFormat files, and
  imported with the real ``sflow import wfcommons``; each on the 16-vCPU environment with a fast
  (125 MB/s) and a slow (5 MB/s) network. Without the package they are left out, with a note.

For each instance: every registered algorithm's makespan, then ``best``'s (with ``--budget-s``,
timed with the wall clock), its gain over HEFT ``(HEFT − best) / HEFT``, the gain over the best
single algorithm, HEFT over a lower bound (the larger of the critical path at the fastest speeds and
all the work spread evenly over the vCPUs: how much room there was at most) and ``best``'s time. The summary
gives the mean and worst gain, how far the best single algorithm is from the per-instance best,
and the time ``best`` took against its budget. HEFT runs in the same process just before: the
machine's load affects both alike (the figures are makespans, which do not depend on the load;
``best``'s time and so how far its search got do).

    .venv/bin/python benchmarks/sched_quality.py
    .venv/bin/python benchmarks/sched_quality.py --budget-s 0.5 --no-wfcommons
    .venv/bin/python benchmarks/sched_quality.py --quick          # the small half, for a first look
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sched_speed import make_environment, make_job  # noqa: E402

from sflow.jsonio import environment_from_dict, environment_to_dict, load_job  # noqa: E402
from sflow.model.infra import Environment  # noqa: E402
from sflow.model.workflow import Job  # noqa: E402
from sflow.sched.best import Best  # noqa: E402
from sflow.sched.costs import critical_path_lower_bound  # noqa: E402
from sflow.sched.problem import Problem  # noqa: E402
from sflow.sched.registry import get_scheduler, names  # noqa: E402
from sflow.sched.validate import validate_schedule  # noqa: E402

# (tasks, ccr, alpha, vcpus)
RANDOM = [
    (50, 0.1, 1.0, 16), (50, 1.0, 0.5, 16), (50, 5.0, 2.0, 16),
    (100, 0.1, 2.0, 16), (100, 1.0, 1.0, 16), (100, 5.0, 0.5, 16), (100, 10.0, 1.0, 16),
    (200, 0.1, 0.5, 16), (200, 1.0, 2.0, 16), (200, 5.0, 1.0, 16),
    (500, 0.1, 1.0, 16), (500, 1.0, 0.5, 16), (500, 5.0, 2.0, 16), (500, 10.0, 1.0, 16),
    (1000, 0.1, 2.0, 16), (1000, 1.0, 1.0, 16), (1000, 5.0, 0.5, 16),
    (200, 1.0, 1.0, 64), (500, 5.0, 1.0, 64), (1000, 1.0, 1.0, 64),
]
# (recipe class name, tasks)
WFCOMMONS = [
    ("MontageRecipe", 100), ("MontageRecipe", 500), ("EpigenomicsRecipe", 100), ("EpigenomicsRecipe", 500),
    ("GenomeRecipe", 100), ("GenomeRecipe", 500), ("SeismologyRecipe", 200), ("BlastRecipe", 100),
    ("CyclesRecipe", 100), ("SoykbRecipe", 200), ("SrasearchRecipe", 100),
]
NETWORKS = {"fast": 125.0, "slow": 5.0}


@dataclass(frozen=True, slots=True)
class Instance:
    name: str
    env: Environment
    job: Job


def with_bandwidth(env: Environment, bw: float) -> Environment:
    data = environment_to_dict(env)
    for dc in data["dc_list"]:
        dc["bw"] = bw / 2
        for host in dc["host_list"]:
            host["bw"] = bw
    return environment_from_dict(data, f"<env {bw} MB/s>")


def random_instances(quick: bool) -> Iterator[Instance]:
    for k, (size, ccr, alpha, vcpus) in enumerate(RANDOM):
        if quick and size > 200:
            continue
        yield Instance(f"random n={size} ccr={ccr:g} a={alpha:g} m={vcpus}", make_environment(vcpus, k + 1),
                       make_job(size, alpha=alpha, out_degree=3.0, ccr=ccr, seed=k + 1))


def wfcommons_instances(workdir: Path, quick: bool) -> Iterator[Instance]:
    import numpy as np
    from wfcommons import WorkflowGenerator
    from wfcommons.wfchef import recipes

    env = make_environment(16, 1)
    for k, (recipe_name, size) in enumerate(WFCOMMONS):
        if quick and size > 200:
            continue
        random.seed(k)
        np.random.seed(k)
        recipe = getattr(recipes, recipe_name).from_num_tasks(size)
        workflow = WorkflowGenerator(recipe).build_workflow()
        instance = workdir / f"{recipe_name}-{size}.json"
        workflow.write_json(instance)
        job_file = workdir / f"{recipe_name}-{size}-job.json"
        subprocess.run([sys.executable, "-m", "sflow", "import", "wfcommons", str(instance), "-o", str(job_file)],
                       check=True, capture_output=True)
        job = load_job(job_file)
        label = recipe_name.removesuffix("Recipe")
        for net, bw in NETWORKS.items():
            yield Instance(f"{label} n={len(job.tasks)} {net}", with_bandwidth(env, bw), job)


SHORT = {"sf-cuv": "sfcuv", "hclustering": "hclust", "coordvnf": "coord", "heft-ready": "hready",
         "round-robin": "rr", "fastest": "fast"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-s", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="only instances of at most 200 tasks")
    ap.add_argument("--no-wfcommons", action="store_true")
    args = ap.parse_args(argv)
    others = [n for n in names() if n != Best.name]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs; "
          f"best --budget-s {args.budget_s:g} --seed {args.seed}")
    header = f"{'instance':<34}" + "".join(f"{SHORT.get(n, n):>10}" for n in others)
    print(header + f"{'best':>10} {'vs HEFT':>8} {'vs top':>7} {'HEFT/LB':>8} {'best s':>7} {'from':<18}")
    gains: list[float] = []
    families: dict[str, list[float]] = {}
    tops: list[float] = []
    single: dict[str, list[float]] = {n: [] for n in others}
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="sflow-quality-") as tmp:
        instances: Iterator[Instance] = random_instances(args.quick)
        if not args.no_wfcommons:
            try:
                import wfcommons  # noqa: F401
            except ImportError:
                print("note: the wfcommons package is not installed (pip install -e '.[bench]'): "
                      "WfCommons instances left out")
            else:
                instances = (i for gen in (instances, wfcommons_instances(Path(tmp), args.quick)) for i in gen)
        for inst in instances:
            problem = Problem.from_env_job(inst.env, inst.job)
            makespans = {}
            for name in others:
                schedule = get_scheduler(name, args.seed).schedule(problem)
                validate_schedule(problem, schedule)
                makespans[name] = schedule.makespan
            scheduler = get_scheduler(Best.name, args.seed, budget_s=args.budget_s, clock=time.perf_counter)
            assert isinstance(scheduler, Best)
            began = time.perf_counter()
            report = scheduler.run(problem)
            elapsed = time.perf_counter() - began
            validate_schedule(problem, report.schedule)
            best = report.schedule.makespan
            top = min(makespans.values())
            # No schedule beats the critical path at the fastest speeds, nor all the work spread evenly.
            bound = max(critical_path_lower_bound(problem), float(problem.exec_time.min(axis=1).sum()) / problem.n_procs)
            headroom = makespans["heft"] / bound if bound > 0 else 1.0
            gain = (makespans["heft"] - best) / makespans["heft"]
            gains.append(gain)
            families.setdefault("random" if inst.name.startswith("random") else "WfCommons", []).append(gain)
            tops.append((top - best) / top)
            times.append(elapsed)
            for name, m in makespans.items():
                single[name].append(m / min(top, best) - 1)
            print(f"{inst.name:<34}" + "".join(f"{makespans[n]:>10.4g}" for n in others)
                  + f"{best:>10.4g} {gain:>+8.1%} {(top - best) / top:>+7.1%} {headroom:>8.2f} {elapsed:>7.2f} "
                  f"{report.start_from:<18}",
                  flush=True)
    print()
    print(f"instances: {len(gains)}; best vs HEFT: mean {statistics.mean(gains):+.2%}, median "
          f"{statistics.median(gains):+.2%}, worst {min(gains):+.2%}, best {max(gains):+.2%}; "
          f"better on {sum(g > 1e-9 for g in gains)}, equal on {sum(abs(g) <= 1e-9 for g in gains)}, "
          f"worse on {sum(g < -1e-9 for g in gains)}")
    for family, values in families.items():
        print(f"  {family}: {len(values)} instances, mean {statistics.mean(values):+.2%}, worst {min(values):+.2%}")
    print(f"best vs the per-instance best single algorithm: mean {statistics.mean(tops):+.2%}, worst {min(tops):+.2%}")
    print("each algorithm above the per-instance best (mean / worst): " + ", ".join(
        f"{n} {statistics.mean(v):.1%}/{max(v):.0%}" for n, v in single.items()))
    print(f"best's time: mean {statistics.mean(times):.3f} s, max {max(times):.3f} s for a budget of "
          f"{args.budget_s:g} s ({sum(t > args.budget_s for t in times)} over)")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
