"""``sflow delegate`` (run a job on running nodes), ``sflow run`` (the same on a local cluster it
starts itself) and ``sflow gantt`` (draw a run's trace)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sflow.config import MODES, Config, add_config_argument, add_secret_argument, config_from_args, secret_overrides
from sflow.errors import InputError, SflowError
from sflow.sched.cli import add_cost_arguments, costs_from, scheduler_from
from sflow.secret import generate_secret, read_secret

# The readers, plans, Twisted, rich and the dispatchers are imported by the commands that run
# them, so that ``sflow --help`` and the other commands start without them.
if TYPE_CHECKING:
    from twisted.internet import defer

    from sflow.delegator.run import Prepared
    from sflow.delegator.trace import Trace
    from sflow.model.infra import Environment
    from sflow.model.workflow import Job

log = logging.getLogger(__name__)

DEFAULT_LOCAL_NODES = 3


def register(sub: Any) -> None:
    d = sub.add_parser("delegate", help="run a job on running nodes (schedule, dispatch, collect results)")
    d.add_argument("env", metavar="ENV", help="environment JSON (the nodes are its VMs' addresses)")
    d.add_argument("job", metavar="JOB", help="workflow job JSON")
    _common(d)
    d.add_argument("--mapping", metavar="MAPPING", help="use this mapping (from `sflow schedule -o`) instead of scheduling")
    d.set_defaults(func=_delegate)

    r = sub.add_parser("run", help="run a job on this machine: start local nodes, run it, stop them")
    r.add_argument("job", metavar="JOB", help="workflow job JSON")
    r.add_argument("--env", metavar="ENV", help="environment (default: generated for this machine)")
    r.add_argument("--nodes", type=int, default=None, metavar="N",
                   help=f"local nodes to start (default {DEFAULT_LOCAL_NODES}); not with --env, whose VMs are the nodes")
    _common(r)
    r.set_defaults(func=_run)

    c = sub.add_parser(
        "calibrate",
        help="measure costs from run traces for the schedulers and the simulator (--costs)",
        description="Read traces of real runs (trace.json of sflow run / sflow delegate) and write the "
        "costs they measured: per function and host the execution times, per output file its size, "
        "per host pair the latency and bandwidth of transfers (a least-squares line), per host the "
        "hand-off latency. Give each trace's job file with --job so that a renumbered or regenerated "
        "job still matches its functions (by command and image); without it they match by job and task id.",
    )
    c.add_argument("traces", metavar="TRACE", nargs="+", help="trace.json of a run")
    c.add_argument("--job", metavar="JOB", action="append", default=[],
                   help="the job file a trace ran (matched by job_id; repeat for several jobs)")
    c.add_argument("-o", "--output", metavar="COSTS", required=True, help="costs file to write")
    c.set_defaults(func=_calibrate)

    g = sub.add_parser("gantt", help="draw a Gantt chart of a real run from its trace.json")
    g.add_argument("trace", metavar="TRACE", help="trace.json written by sflow delegate / sflow run")
    g.add_argument("-o", "--output", metavar="CHART", required=True, help="chart file (.png, .svg or .pdf)")
    g.set_defaults(func=_gantt)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=MODES, default="ip", help="chaining mode (default: ip)")
    p.add_argument("-a", "--algorithm", metavar="NAME", help="scheduling algorithm (default: scheduler.algorithm)")
    p.add_argument("-o", "--output", metavar="OUTDIR", help="directory for results and trace.json (default: delegator.outdir)")
    p.add_argument("--keep-workdirs", action="store_true", help="leave the job's working directories on the nodes")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="fail the job if it has not finished after this long (default: delegator.job_timeout, "
                        "a day; 0: no deadline)")
    add_cost_arguments(p)
    add_config_argument(p)
    add_secret_argument(p)


# ---------------------------------------------------------------------------------------------
# Preparing and running with progress, and the summary


def _prepare(env: Environment, job: Job, config: Config, args: argparse.Namespace, env_name: str) -> Prepared:
    """Schedule ``job`` with the algorithm, seed, budget and costs of ``args`` and ``config``."""
    from sflow.delegator.run import prepare
    from sflow.sched.problem import Problem

    costs = costs_from(args, config)
    problem = Problem.from_env_job(env, job, name=env_name, costs=costs)
    return prepare(env, job, config, None, env_name, problem, scheduler_from(args, config), costs)


def _settings(args: argparse.Namespace) -> Config:
    """The settings with the flags of ``delegate`` and ``run`` applied (--secret-file, --timeout)."""
    overrides: dict[str, dict[str, Any]] = dict(secret_overrides(args))
    if getattr(args, "timeout", None) is not None:
        if args.timeout < 0:
            raise InputError("<flag>", "--timeout", f"must be 0 (no deadline) or more seconds, found {args.timeout:g}")
        overrides["delegator"] = {"job_timeout": args.timeout}
    return config_from_args(args, overrides)


def _dispatch(reactor: Any, secret: bytes, prepared: Prepared, config: Config, outdir: Path, keep: bool,
              display: Display, job: Job, env: Environment, mode: str = "ip",
              nodes: list[str] | None = None) -> defer.Deferred[Trace]:
    from sflow.delegator.run import RunOptions, dispatch

    return dispatch(reactor, secret, prepared, job, env, config, RunOptions(mode, outdir, keep), display.progress,
                    nodes, display.notice)


@dataclass(frozen=True, slots=True)
class Display:
    """What a running job shows: ``progress(event, task)`` (started, done, again) and
    ``notice(line)`` (a node lost and what was re-planned, a retry)."""

    progress: Callable[[str, int], None]
    notice: Callable[[str], None]


def _with_progress(total: int, body: Callable[[Display], Trace]) -> Trace:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        done_bar = bar.add_task("functions done", total=total)
        running_bar = bar.add_task("functions started", total=total)
        started: set[int] = set()
        done: set[int] = set()

        def update(event: str, task: int) -> None:
            if event == "started":
                started.add(task)
            elif event == "done":
                done.add(task)
            elif event == "again":  # its run was lost, or failed: it starts again
                started.discard(task)
                done.discard(task)
            bar.update(running_bar, completed=len(started))
            bar.update(done_bar, completed=len(done))

        def notice(line: str) -> None:
            err.print(f"sflow: {line}", markup=False, highlight=False, soft_wrap=True)

        return body(Display(update, notice))


def _report(trace: Trace, outdir: Path) -> None:
    from rich.console import Console

    from sflow.delegator.trace import makespan_line, summary_table

    path = _save_trace(trace, outdir)
    Console().print(summary_table(trace))  # the terminal's width; 80 columns when not a terminal
    print(makespan_line(trace))
    for name in trace.results:
        print(f"result: {outdir / name}")
    for task, val in trace.values.items():
        print(f"value: function {task}: {val}")
    print(f"trace: {path} (draw it with `sflow gantt {path} -o chart.png`)")


def _save_trace(trace: Trace, outdir: Path) -> Path:
    """``trace.json`` (and the END values as ``values.json``) in the output directory."""
    from sflow.delegator.trace import write_trace
    from sflow.jsonio import write_json

    path = outdir / "trace.json"
    write_trace(path, trace)
    if trace.values:
        write_json(outdir / "values.json", trace.values)
    return path


def _running(outdir: Path, body: Callable[[], Trace]) -> Trace:
    """``body()``; when the job fails, its trace (what ran, what failed and why) is saved before
    the error is reported."""
    from sflow.delegator.trace import trace_of

    try:
        return body()
    except SflowError as exc:
        trace = trace_of(exc)
        if trace is not None:
            _save_trace(trace, outdir)
        raise


def _warn_about(env: Environment, name: str) -> None:
    """What the environment's reader noticed (two VMs at one address, repeated VMs), on stderr."""
    for warning in env.warnings:
        print(f"sflow: warning: {name}: {warning}", file=sys.stderr)


def _outdir(args: argparse.Namespace, config: Config) -> Path:
    return Path(args.output or config.delegator.outdir).expanduser()


def _delegate(args: argparse.Namespace) -> int:
    from sflow.delegator.run import node_vcpus, prepare_mapping
    from sflow.jsonio import load_environment, load_job
    from sflow.node.blocking import run_until

    if args.mapping and args.algorithm:
        raise InputError("<flag>", "--mapping", "give either -a/--algorithm or --mapping, not both")
    config = _settings(args)
    secret = read_secret(config.security.secret_file)
    env = load_environment(args.env)
    _warn_about(env, args.env)
    job = load_job(args.job)
    if args.mapping:
        prepared = prepare_mapping(env, job, config, args.mapping, scheduler_from(args, config), args.env,
                                   costs_from(args, config))
    else:
        prepared = _prepare(env, job, config, args, args.env)
    outdir = _outdir(args, config)
    trace = _running(outdir, lambda: _with_progress(
        len(job.tasks),
        lambda display: run_until(
            lambda reactor: _dispatch(reactor, secret, prepared, config, outdir, args.keep_workdirs, display, job,
                                      env, args.mode, sorted(node_vcpus(env, config)))
        ),
    ))
    _report(trace, outdir)
    return 0


# ---------------------------------------------------------------------------------------------
# sflow run: a local cluster


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_nodes(env: Environment, config: Config, env_name: str) -> dict[str, str]:
    """The node addresses of ``env`` on this machine (loopback), each with the VMs it serves
    (``VM node-a in envs/local.json``)."""
    from sflow.delegator.run import node_address

    vms: dict[str, list[str]] = {}
    for vm in env.vms.values():
        if _is_loopback(vm.address.host):
            vms.setdefault(node_address(vm.address, config), []).append(vm.id)
    return {address: f"VM {', '.join(ids)} in {env_name}" for address, ids in vms.items()}


def _run(args: argparse.Namespace) -> int:
    from sflow.delegator.local import LocalCluster, local_environment
    from sflow.delegator.run import with_local_cluster
    from sflow.jsonio import environment_to_dict, load_environment, load_job, write_json
    from sflow.node.blocking import run_until

    config = _settings(args)
    job = load_job(args.job)
    outdir = _outdir(args, config)
    outdir.mkdir(parents=True, exist_ok=True)
    env: Environment | None = load_environment(args.env) if args.env else None
    if env is not None:
        _warn_about(env, args.env)
    origins = _local_nodes(env, config, args.env) if env is not None else {}
    if env is not None and args.nodes is not None:
        raise InputError("<flag>", "--nodes", f"--nodes and --env exclude each other: with --env the nodes are the "
                                              f"VMs of {args.env} on this machine ({len(origins)}); drop --nodes, or "
                                              "drop --env to run on N generated nodes")
    n_nodes = DEFAULT_LOCAL_NODES if args.nodes is None else args.nodes
    if env is None and n_nodes < 1:
        raise InputError("<flag>", "--nodes", f"need at least one node, found {n_nodes}")
    if env is not None and not origins:
        raise InputError(args.env, "$.dc_list", "no VM has a loopback address (127.0.0.1, ::1, localhost): "
                                                "`sflow run` starts nodes on this machine only; use `sflow delegate` "
                                                "for nodes that run elsewhere")
    listens = sorted(origins) if env is not None else ["127.0.0.1:0"] * n_nodes
    per_node = max(1, (os.cpu_count() or 1) // max(1, len(listens)))

    secret_file = Path(config.security.secret_file).expanduser()
    temporary: Path | None = None
    if not secret_file.exists():
        # A secret for this run's nodes only, beside their logs (never in /tmp, where a run killed
        # with SIGKILL would leave it); removed when the run ends.
        temporary = secret_file = generate_secret(outdir / "nodes" / f".run-{os.getpid()}.secret", force=True)
        log.info("event=temporary_secret path=%s", secret_file)
    try:
        secret = read_secret(secret_file)

        def body(display: Display) -> Trace:
            def main(reactor: Any) -> defer.Deferred[Trace]:
                cluster = LocalCluster(reactor, listens, outdir / "nodes", secret_file, args.config, per_node, args.mode,
                                       origins)

                def started(addresses: list[str]) -> defer.Deferred[Trace]:
                    run_env = env
                    env_name = args.env or str(outdir / "env.json")
                    if run_env is None:
                        run_env = local_environment(addresses, per_node)
                        write_json(outdir / "env.json", environment_to_dict(run_env))
                    prepared = _prepare(run_env, job, config, args, env_name)
                    return _dispatch(reactor, secret, prepared, config, outdir, args.keep_workdirs, display, job,
                                     run_env, args.mode, addresses)

                # Interrupted (Ctrl-C, SIGTERM, SIGHUP): the nodes are stopped too, never left behind
                # (and they watch this process: killed outright, it takes them with it).
                return with_local_cluster(reactor, cluster, started)

            return run_until(main)

        trace = _running(outdir, lambda: _with_progress(len(job.tasks), body))
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
    _report(trace, outdir)
    return 0


# ---------------------------------------------------------------------------------------------
# sflow calibrate


def _calibrate(args: argparse.Namespace) -> int:
    from sflow.delegator.calibrate import calibrate
    from sflow.delegator.trace import load_trace
    from sflow.jsonio import costs_to_dict, load_job, write_json

    jobs: dict[int, tuple[str, Job]] = {}
    for path in args.job:
        job = load_job(path)
        if job.id in jobs:
            raise InputError(path, "$.job_id", f"job {job.id} is also given by {jobs[job.id][0]}")
        jobs[job.id] = (path, job)
    traces = [(path, load_trace(path)) for path in args.traces]
    result = calibrate(traces, jobs)
    write_json(args.output, costs_to_dict(result.costs))
    for note in result.notes:
        print(f"note: {note}")
    costs = result.costs
    samples = sum(len(v) for f in costs.functions for v in f.seconds.values())
    print(f"{len(traces)} trace(s): {len(costs.functions)} functions ({samples} runs) on {len(costs.hosts)} hosts, "
          f"{len(costs.links)} host pairs -> {args.output}")
    for link in costs.links:
        if link.src == link.dst:
            print(f"  {link.src}: hand-off {link.latency or 0.0:.4f} s ({link.samples} samples)")
        elif link.bandwidth is not None:
            print(f"  {link.src} -> {link.dst}: latency {link.latency or 0.0:.4f} s, "
                  f"bandwidth {link.bandwidth:.4g} MB/s ({link.samples} transfers)")
        else:
            print(f"  {link.src} -> {link.dst}: {link.mean_seconds:.4f} s for {link.mean_mb:.4g} MB "
                  f"({link.samples} transfers of one size: bandwidth from the environment)")
    return 0


# ---------------------------------------------------------------------------------------------
# sflow gantt


def _gantt(args: argparse.Namespace) -> int:
    from sflow.delegator.trace import chart_note, load_trace, makespan_line, trace_chart
    from sflow.sched.gantt import draw_gantt

    trace = load_trace(args.trace)
    bars, transfers = trace_chart(trace)
    draw_gantt(bars, transfers, args.output, title=f"job {trace.job_id} run {trace.run_id} ({trace.mode}): "
               f"{makespan_line(trace)}", group_label="node", empty_note=chart_note(trace), span=trace.makespan)
    print(f"wrote {args.output}")
    return 0
