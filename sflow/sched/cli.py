"""``sflow schedule``, ``sflow simulate`` and ``sflow import wfcommons``.

This is the I/O shell around the pure schedulers: it reads files and the configuration, times the
runs (the only clock reads of scheduling), prints summaries and writes mappings and charts.
"""

from __future__ import annotations

import argparse
import gc
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sflow.config import Config, add_config_argument, config_from_args
from sflow.errors import InputError
from sflow.sched.registry import get_scheduler, names

# The schedulers' numpy and rich's tables are imported by the commands that use them, so that
# ``sflow --help`` and ``sflow validate`` start in a blink.
if TYPE_CHECKING:
    from sflow.model.infra import Environment
    from sflow.model.schedule import Schedule, ScheduleColumns
    from sflow.sched.problem import Problem
    from sflow.model.costs import MeasuredCosts
    from sflow.sched.base import Scheduler
    from sflow.sched.simulate import Measures

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    known = ", ".join(names())
    p = sub.add_parser(
        "schedule",
        help="map a job's functions to vCPUs",
        description=f"Schedule JOB on ENV. Algorithms: {known}.",
    )
    p.add_argument("env", metavar="ENV", help="environment JSON")
    p.add_argument("job", metavar="JOB", help="workflow job JSON")
    p.add_argument(
        "-a", "--algorithm", metavar="NAME", default=None,
        help="scheduling algorithm (default: scheduler.algorithm from the configuration, sf-cuv)",
    )
    p.add_argument("-o", "--output", metavar="MAPPING", help="write the mapping JSON here")
    p.add_argument("--gantt", metavar="CHART", help="draw a Gantt chart (.png, .svg or .pdf)")
    p.add_argument("--seed", type=int, default=None, help="seed for randomised algorithms (default: scheduler.seed)")
    p.add_argument("--compare", action="store_true", help="run every algorithm and print a comparison table")
    add_cost_arguments(p)
    add_config_argument(p)
    p.set_defaults(func=_schedule, exit_at_once=True)

    s = sub.add_parser(
        "simulate",
        help="replay a mapping and report makespan, SLR, speedup and utilisation",
        description="Replay MAPPING's placement on ENV: times are recomputed by list scheduling, "
        "tasks taken in the order of the mapping's start times (ascending id when it has none).",
    )
    s.add_argument("env", metavar="ENV", help="environment JSON")
    s.add_argument("mapping", metavar="MAPPING", help="mapping JSON (from sflow schedule or the original's schedgen)")
    s.add_argument("--gantt", metavar="CHART", help="draw a Gantt chart of the replay")
    add_cost_arguments(s, budget=False)
    add_config_argument(s)
    s.set_defaults(func=_simulate, exit_at_once=True)

    i = sub.add_parser("import", help="convert a workflow from another system into a job JSON")
    isub = i.add_subparsers(dest="import_format", metavar="FORMAT", title="formats", required=True)
    w = isub.add_parser(
        "wfcommons",
        help="a WfCommons instance (WfFormat 1.4 or 1.5)",
        description="Convert a WfCommons instance into a job JSON: workload = runtimeInSeconds × the "
        "reference MIPS; edges carry the files a parent writes and a child reads (MB = bytes / 10^6); "
        "cmd is the placeholder 'true <task name>', which does nothing.",
    )
    w.add_argument("instance", metavar="INSTANCE", help="WfCommons instance JSON")
    w.add_argument("-o", "--output", metavar="JOB", required=True, help="job JSON to write")
    w.add_argument(
        "--reference-mips", type=float, default=None, metavar="N",
        help="speed that reproduces the recorded runtimes (default: 1000)",
    )
    w.set_defaults(func=_import_wfcommons)


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.6g}"


def add_cost_arguments(p: argparse.ArgumentParser, *, budget: bool = True) -> None:
    """``--costs`` (and ``--budget-s``) for every command that schedules or simulates."""
    p.add_argument(
        "--costs", metavar="COSTS",
        help="costs measured on earlier runs (from `sflow calibrate`); default: scheduler.costs, "
        "else workload / MIPS and the environment's bandwidths",
    )
    if budget:
        p.add_argument(
            "--budget-s", type=float, default=None, metavar="S",
            help="seconds -a best may take (default: scheduler.budget_s, 1)",
        )


def costs_from(args: argparse.Namespace, config: Config) -> MeasuredCosts | None:
    """The costs file named by ``--costs`` or ``scheduler.costs``, loaded (None: no costs)."""
    path = getattr(args, "costs", None) or config.scheduler.costs
    if not path:
        return None
    from sflow.jsonio import load_costs

    return load_costs(Path(path).expanduser())


def scheduler_from(args: argparse.Namespace, config: Config, name: str | None = None) -> Scheduler:
    """The scheduler ``-a`` (or ``name``, or scheduler.algorithm) names, with the seed and, for
    ``best``, the budget and the clock."""
    seed = args.seed if getattr(args, "seed", None) is not None else config.scheduler.seed
    budget = args.budget_s if getattr(args, "budget_s", None) is not None else config.scheduler.budget_s
    algorithm = name or getattr(args, "algorithm", None) or config.scheduler.algorithm
    return get_scheduler(algorithm, seed, budget_s=budget, clock=time.perf_counter)


def _load(args: argparse.Namespace, costs: MeasuredCosts | None) -> tuple[Environment, Problem, Any]:
    from sflow.jsonio import load_environment, load_job
    from sflow.sched.problem import Problem

    env = load_environment(args.env)
    job = load_job(args.job)
    return env, Problem.from_env_job(env, job, name=args.env, costs=costs), job


def _batch() -> None:
    """A one-shot command over a large job makes millions of small objects and no garbage cycles
    that matter before it exits: the cyclic collector would rescan them all again and again (it
    took more than half the time of ``sflow schedule`` on 100,000 tasks)."""
    gc.disable()


#: from how many tasks ``schedule -o`` formats the mapping in a forked child (below, the fork
#: would cost more than it saves)
_FORK_TASKS = 20_000


def _schedule(args: argparse.Namespace) -> int:
    _batch()
    config = config_from_args(args)
    costs = costs_from(args, config)
    if args.compare:
        if args.output or args.gantt or args.algorithm:
            raise InputError("<flag>", "--compare", "runs every algorithm; it takes no -a, -o or --gantt")
        _, problem, _ = _load(args, costs)
        return _compare(problem, args, config)
    from sflow.forked import Pending
    from sflow.jsonio import mapping_json, mapping_opened, write_mapping
    from sflow.model.schedule import Schedule
    from sflow.sched.simulate import measure
    from sflow.sched.validate import validate_schedule

    scheduler = scheduler_from(args, config)
    env, problem, job = _load(args, costs)
    # Most of writing a large mapping is formatting it: done on the other CPU, the tasks' lines
    # while this process schedules, the rest once it hands the schedule over and goes on to check
    # and measure it.
    text: Pending[list[str], ScheduleColumns] | None = None
    if args.output and len(job.tasks) >= _FORK_TASKS:
        text = Pending(lambda: mapping_opened(job),
                       lambda opened, columns: mapping_json(job, env, Schedule.from_columns(columns), opened))
    try:
        began = time.perf_counter()
        schedule = scheduler.schedule(problem)
        elapsed = time.perf_counter() - began
        if text is not None:
            text.give(schedule.columns())
        validate_schedule((env, job), schedule, costs)
        m = measure(problem, schedule)
    except BaseException:
        if text is not None:
            text.cancel()
        raise
    log.info("scheduled algorithm=%s tasks=%d seconds=%.3f", schedule.algorithm, problem.n_tasks, elapsed)
    if args.output:
        write_mapping(args.output, job, env, schedule, text.result if text is not None else None)
    if args.gantt:
        _chart(problem, schedule, args.gantt)
    print(f"algorithm: {m.algorithm}")
    print(f"makespan:  {_fmt(m.makespan)} s")
    print(f"SLR:       {_fmt(m.slr)}")
    print(f"speedup:   {_fmt(m.speedup)}")
    print(f"vCPUs:     {len(m.utilisation)} of {problem.n_procs} used")
    print(f"hosts:     {len(m.hosts)} ({', '.join(m.hosts)})")
    print(f"time:      {elapsed:.3f} s to schedule")
    if costs is not None:
        print(f"costs:     measured ({_measured_share(env, job, costs)}); the rest from workload / MIPS")
    if args.output:
        print(f"mapping:   {args.output}")
    _retain(args, env, job, problem, schedule)
    return 0


def _retain(args: argparse.Namespace, *made: object) -> None:
    """Keep what the command made until the process exits (``exit_at_once``: it ends without
    freeing them; called from Python code, they go with ``args``)."""
    args.retained = made


def _measured_share(env: Environment, job: Any, costs: MeasuredCosts) -> str:
    from sflow.model.costs import CostModel

    model = CostModel(env, job, costs)
    measured = sum(1 for t in job.tasks if model.is_measured(t.id))
    return f"{measured} of {len(job.tasks)} functions"


def _compare(problem: Problem, args: argparse.Namespace, config: Config) -> int:
    from rich.console import Console
    from rich.table import Table

    from sflow.sched.simulate import measure
    from sflow.sched.validate import validate_schedule

    table = Table(title=f"{problem.n_tasks} tasks on {problem.n_procs} vCPUs")
    for col in ("algorithm", "makespan (s)", "SLR", "speedup", "vCPUs", "time (ms)"):
        table.add_column(col, justify="left" if col == "algorithm" else "right")
    for name in names():
        scheduler = scheduler_from(args, config, name)
        began = time.perf_counter()
        schedule = scheduler.schedule(problem)
        elapsed = time.perf_counter() - began
        validate_schedule(problem, schedule)
        m = measure(problem, schedule)
        table.add_row(name, _fmt(m.makespan), _fmt(m.slr), _fmt(m.speedup), str(len(m.utilisation)),
                      f"{elapsed * 1000:.1f}")
    Console(width=120).print(table)
    return 0


def _chart(problem: Problem, schedule: Schedule, path: str) -> None:
    from sflow.sched.gantt import draw_gantt, schedule_chart

    bars, transfers = schedule_chart(problem, schedule)
    draw_gantt(bars, transfers, path, title=f"{schedule.algorithm}: makespan {_fmt(schedule.makespan)} s")


def _report(m: Measures, problem: Problem) -> None:
    from rich.console import Console
    from rich.table import Table

    print(f"algorithm: {m.algorithm}")
    print(f"makespan:  {_fmt(m.makespan)} s  (lower bound {_fmt(m.lower_bound)} s)")
    print(f"SLR:       {_fmt(m.slr)}")
    print(f"speedup:   {_fmt(m.speedup)}  (sequential on the fastest vCPU: {_fmt(m.sequential)} s)")
    print(f"hosts:     {len(m.hosts)} ({', '.join(m.hosts)})")
    table = Table(title="utilisation")
    table.add_column("vCPU")
    table.add_column("host")
    table.add_column("busy / makespan", justify="right")
    host_of = dict(zip(problem.proc_ids, problem.hosts))
    for vcpu, u in m.utilisation.items():
        table.add_row(vcpu, host_of[vcpu], f"{u:.1%}")
    Console(width=100).print(table)


def _simulate(args: argparse.Namespace) -> int:
    _batch()
    from sflow.jsonio import load_environment, load_mapping
    from sflow.sched.problem import Problem
    from sflow.sched.simulate import measure, replay, replay_schedule
    from sflow.sched.validate import validate_schedule

    config = config_from_args(args)
    costs = costs_from(args, config)
    env = load_environment(args.env)
    mapping = load_mapping(args.mapping)
    problem = Problem.from_env_job(env, mapping.job, name=args.env, costs=costs)
    placement = {t: p.vcpu_id for t, p in mapping.placements.items()}
    for t, p in sorted(mapping.placements.items()):
        if p.vcpu_id in env.vm_of_vcpu and env.vm_of_vcpu[p.vcpu_id] != p.vm_id:
            print(f"note: task {t}: the mapping puts vCPU {p.vcpu_id} in VM {p.vm_id}, "
                  f"the environment in VM {env.vm_of_vcpu[p.vcpu_id]}; the environment is used")
    recorded = mapping.schedule
    schedule = replay_schedule(problem, recorded) if recorded is not None else replay(problem, placement)
    validate_schedule((env, mapping.job), schedule, costs)
    if recorded is not None and abs(recorded.makespan - schedule.makespan) > 1e-6 * max(1.0, schedule.makespan):
        print(f"note: the mapping records makespan {_fmt(recorded.makespan)} s; the replay gives {_fmt(schedule.makespan)} s")
    _report(measure(problem, schedule), problem)
    if args.gantt:
        _chart(problem, schedule, args.gantt)
    _retain(args, env, mapping, problem, schedule)
    return 0


def _import_wfcommons(args: argparse.Namespace) -> int:
    from sflow.jsonio import write_json
    from sflow.wfcommons import DEFAULT_REFERENCE_MIPS, load_instance

    mips = args.reference_mips if args.reference_mips is not None else DEFAULT_REFERENCE_MIPS
    job = load_instance(args.instance, mips)
    write_json(args.output, job)
    edges = sum(
        len(f["dest_task_id"]) for t in job["task_list"] for f in t.get("out_file_list", [])
    ) + sum(len(t["out_value"]["dest_task_id"]) for t in job["task_list"] if "out_value" in t)
    print(f"{args.instance}: {len(job['task_list'])} tasks, {edges} file or control dependencies -> {args.output}")
    print(f"workload = runtimeInSeconds x {mips:g} MIPS; cmd is the placeholder 'true <task name>'")
    return 0
