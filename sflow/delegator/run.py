"""Running one job from a library call: schedule it (or take a mapping), split it into node plans,
dispatch it in a chaining mode, and — for a cluster of local node processes — start the nodes
around it and stop them afterwards, whatever happens.

``sflow delegate`` and ``sflow run`` are thin command-line shells over this module; the experiment
runner (:mod:`sflow.experiment.runner`) calls it for every run of a matrix.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from twisted.internet import defer

from sflow.config import Config
from sflow.delegator.icn import NextHop
from sflow.delegator.ip import DispatchOptions, IpDispatch, NoticeCallback, ProgressCallback
from sflow.delegator.local import LocalCluster
from sflow.delegator.placing import cpu_indexes, node_address, placements_of, replacer
from sflow.delegator.plan import JobPlan, TaskPlacement, build_plan, schedule_order
from sflow.delegator.recovery import Placer
from sflow.delegator.trace import Trace
from sflow.errors import InputError
from sflow.jsonio import load_mapping
from sflow.model.infra import Environment
from sflow.model.schedule import Schedule
from sflow.model.workflow import Job, TaskId
from sflow.node.liveness import Heartbeat

if TYPE_CHECKING:
    from sflow.model.costs import MeasuredCosts
    from sflow.sched.base import Scheduler
    from sflow.sched.problem import Problem

T = TypeVar("T")

__all__ = ["Prepared", "RunOptions", "cpu_indexes", "dispatch", "node_address", "node_vcpus", "prepare",
           "prepare_mapping", "StartedNodes", "with_local_cluster"]


@dataclass(frozen=True, slots=True)
class Prepared:
    plan: JobPlan
    schedule: Schedule | None
    algorithm: str
    #: the schedule order of every function (re-planned plans keep it)
    order: tuple[TaskId, ...]
    #: re-plans functions on the live nodes with the job's algorithm (IP-mode recovery)
    placer: Placer


def _scheduler(config: Config, algorithm: str | None) -> Scheduler:
    from sflow.sched.registry import get_scheduler

    return get_scheduler(algorithm or config.scheduler.algorithm, config.scheduler.seed)


def prepare(env: Environment, job: Job, config: Config, algorithm: str | None, env_name: str,
            problem: Problem | None = None, scheduler: Scheduler | None = None,
            costs: MeasuredCosts | None = None) -> Prepared:
    """Schedule ``job`` on ``env`` with ``algorithm`` (default ``scheduler.algorithm``): the plan of a
    fresh run. ``problem`` replaces the one the environment gives (an emulated topology's costs),
    ``scheduler`` the one ``algorithm`` names (a scheduler configured otherwise); ``costs`` are the
    measured costs a re-plan (IP mode, a node lost) uses with the same scheduler."""
    from sflow.sched.problem import Problem

    if problem is None:
        problem = Problem.from_env_job(env, job, name=env_name, costs=costs)
    if scheduler is None:
        scheduler = _scheduler(config, algorithm)
    schedule = scheduler.schedule(problem)
    return _prepared(job, placements_of(env, schedule, config), schedule, "<job>",
                     replacer(env, scheduler, config, env_name, costs))


def prepare_mapping(env: Environment, job: Job, config: Config, mapping_path: str,
                    scheduler: Scheduler | None = None, env_name: str = "<env>",
                    costs: MeasuredCosts | None = None) -> Prepared:
    """The plan of a fresh run from a mapping written by ``sflow schedule -o``; a re-plan (IP mode,
    a node lost) uses ``scheduler`` (default: ``scheduler.algorithm``)."""
    mapping = load_mapping(mapping_path)
    if mapping.job.id != job.id:
        raise InputError(mapping_path, "$.job_id", f"the mapping is for job {mapping.job.id}, but the job to run is "
                                                   f"job {job.id}: the job ids differ (schedule this job with "
                                                   f"`sflow schedule ENV JOB -o MAPPING`, or leave out --mapping)")
    missing = sorted(set(job.by_id) - set(mapping.placements))
    if missing:
        raise InputError(mapping_path, "$.task_list", f"no placement for tasks {missing} of the job")
    index = cpu_indexes(env)
    placements = {}
    for tid in job.by_id:
        p = mapping.placements[tid]
        placements[tid] = TaskPlacement(node_address(p.address, config), p.vcpu_id, index.get(p.vcpu_id, 0))
    return _prepared(job, placements, mapping.schedule, mapping_path,
                     replacer(env, scheduler or _scheduler(config, None), config, env_name, costs))


def _prepared(job: Job, placements: dict[TaskId, TaskPlacement], schedule: Schedule | None, source: str,
              placer: Placer) -> Prepared:
    """The plan of a fresh run (a new run id), its functions in the schedule's order when there is one."""
    starts = {t: s.start for t, s in schedule.slots.items()} if schedule is not None else None
    order = schedule_order(job, starts)
    plan = build_plan(job, placements, order, secrets.token_hex(4), source)
    return Prepared(plan, schedule, schedule.algorithm if schedule is not None else "mapping", order, placer)


def node_vcpus(env: Environment, config: Config) -> dict[str, tuple[str, ...]]:
    """Each node's vCPU ids, in declaration order (the VMs at one node address together)."""
    out: dict[str, tuple[str, ...]] = {}
    for vm in env.vms.values():
        address = node_address(vm.address, config)
        out[address] = out.get(address, ()) + tuple(vm.vcpus)
    return out


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How one run is dispatched: its chaining mode, where results and the trace go, and whether the
    nodes keep the job's working directories."""

    mode: str
    outdir: Path
    keep_workdirs: bool = False
    #: icn mode on a multi-hop topology: the next host from one node's host toward another's
    next_host: NextHop | None = None


def dispatch(reactor: Any, secret: bytes, prepared: Prepared, job: Job, env: Environment, config: Config,
             options: RunOptions, progress: ProgressCallback | None = None,
             nodes: list[str] | None = None, notice: NoticeCallback | None = None) -> defer.Deferred[Trace]:
    """Run a prepared job on running nodes (``nodes``: every node address, default the plan's);
    fires with its :class:`Trace` or fails with an SflowError that carries the failed run's trace
    (:func:`~sflow.delegator.trace.trace_of`). ``notice`` hears of lost nodes and re-plans."""
    report = progress or (lambda event, task: None)
    if options.mode != "ip":
        from sflow.delegator.icn import icn_dispatch

        return icn_dispatch(reactor, secret, job, prepared.plan, prepared.schedule, prepared.algorithm, config,
                            options.outdir, options.mode, nodes or sorted(prepared.plan.nodes), report,
                            node_vcpus(env, config), options.next_host)
    ip_options = DispatchOptions(
        outdir=options.outdir,
        algorithm=prepared.algorithm,
        schedule=prepared.schedule,
        job_timeout=config.delegator.job_timeout,
        keep_workdirs=options.keep_workdirs,
        chunk_size=config.node.chunk_size,
        retries=max(0, config.delegator.retries),
        heartbeat=Heartbeat.from_settings(config.node),
    )
    spare = sorted(set(node_vcpus(env, config)) | set(nodes or ()))
    return IpDispatch(reactor, secret, prepared.plan, ip_options, report, job=job, order=prepared.order,
                      placer=prepared.placer, spare=spare, notice=notice).run()


class StartedNodes(Protocol):
    """Nodes this process starts and stops: a :class:`LocalCluster`, or an experiment's nodes on
    real hosts."""

    def start(self) -> defer.Deferred[list[str]]: ...

    def stop(self) -> defer.Deferred[None]: ...


def with_local_cluster(reactor: Any, cluster: LocalCluster | StartedNodes,
                       body: Callable[[list[str]], defer.Deferred[T]]) -> defer.Deferred[T]:
    """Start ``cluster``, call ``body`` with the nodes' addresses, and stop the nodes when it ends,
    succeeded or failed — and when the reactor is stopped first (Ctrl-C, SIGTERM): the nodes this
    process started are never left behind."""
    trigger = reactor.addSystemEventTrigger("before", "shutdown", cluster.stop)
    d: defer.Deferred[Any] = cluster.start()
    d.addCallback(body)

    def stop(result: Any) -> defer.Deferred[Any]:
        reactor.removeSystemEventTrigger(trigger)
        return cluster.stop().addCallback(lambda _: result)

    d.addBoth(stop)
    return d
