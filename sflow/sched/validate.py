"""An independent check of any schedule, whoever produced it.

It recomputes every cost from the inputs — workload / MIPS and :meth:`Environment.transfer_time`
for an (Environment, Job) pair, or, with measured costs, :class:`~sflow.model.costs.CostModel`'s
per-task and per-edge answers; the cost matrix and edge costs for a :class:`Problem` — and shares
no code with the schedulers. It checks that

* every task is placed exactly once, and on a schedulable vCPU (one that belongs to a VM);
* finish − start equals the task's execution time on its vCPU;
* no two tasks overlap on one vCPU;
* each task starts no earlier than every predecessor's finish plus the transfer between their vCPUs.

Times are compared with a tolerance of ``1e-9 × max(1, makespan)`` seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sflow.errors import ScheduleError
from sflow.model.costs import CostModel, MeasuredCosts
from sflow.model.infra import Environment, VcpuId
from sflow.model.schedule import Schedule
from sflow.model.workflow import Job, TaskId
from sflow.sched.problem import Problem


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: ``kind`` is placement, duration, overlap or precedence."""

    kind: str
    task: TaskId | None
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class _Instance:
    tasks: tuple[TaskId, ...]
    procs: frozenset[VcpuId]
    exec_time: Callable[[TaskId, VcpuId], float]
    #: (source, destination, what ``transfer`` needs to know of the edge)
    edges: tuple[tuple[TaskId, TaskId, Any], ...]
    #: seconds an edge's data takes from one vCPU to another
    transfer: Callable[[Any, VcpuId, VcpuId], float]


def _from_problem(problem: Problem) -> _Instance:
    ti = problem.task_index()
    pi = problem.proc_index()
    ids = problem.task_ids
    return _Instance(
        tasks=problem.task_ids,
        procs=frozenset(problem.proc_ids),
        exec_time=lambda t, v: float(problem.exec_time[ti[t], pi[v]]),
        edges=tuple((ids[s], ids[d], e) for e, (s, d) in enumerate(zip(problem.edge_src.tolist(),
                                                                         problem.edge_dst.tolist()))),
        transfer=lambda e, a, b: problem.comm(e, pi[a], pi[b]),
    )


def _from_env_job(env: Environment, job: Job, costs: MeasuredCosts | None) -> _Instance:
    if costs is not None:
        model = CostModel(env, job, costs)
        return _Instance(
            tasks=tuple(t.id for t in job.tasks),
            procs=frozenset(v.id for v in env.schedulable),
            exec_time=model.exec_time,
            edges=tuple((s, d, (s, d)) for s, d in job.edges),
            transfer=lambda edge, a, b: model.transfer_time(edge[0], edge[1], a, b),
        )
    bandwidth: dict[tuple[VcpuId, VcpuId], float] = {}  # the environment's, asked once per pair

    def transfer(size: float, a: VcpuId, b: VcpuId) -> float:
        """:meth:`Environment.transfer_time` (jobs have hundreds of thousands of edges)."""
        bw = bandwidth.get((a, b))
        if bw is None:
            bw = bandwidth[(a, b)] = env.bandwidth(a, b)
        return 0.0 if size <= 0 or bw == math.inf else size / bw

    return _Instance(
        tasks=tuple(t.id for t in job.tasks),
        procs=frozenset(v.id for v in env.schedulable),
        exec_time=lambda t, v: job.by_id[t].workload / env.vcpus[v].mips,
        edges=tuple((s, d, size) for s, ds in job.succs.items() for d, size in zip(ds, job.succ_sizes[s])),
        transfer=transfer,
    )


def find_violations(target: Problem | tuple[Environment, Job], schedule: Schedule,
                    costs: MeasuredCosts | None = None) -> list[Violation]:
    """Every rule ``schedule`` breaks for ``target`` (empty when it is valid); ``costs`` are the
    measured costs the schedule was made with, for an (Environment, Job) target."""
    inst = _from_problem(target) if isinstance(target, Problem) else _from_env_job(*target, costs)
    tol = 1e-9 * max(1.0, schedule.makespan)
    out: list[Violation] = []
    slots = schedule.slots
    known = set(inst.tasks)
    for t in inst.tasks:
        if t not in slots:
            out.append(Violation("placement", t, f"task {t} is not placed"))
    for t, slot in slots.items():
        if t not in known:
            out.append(Violation("placement", t, f"task {t} is placed but is not in the job"))
        elif slot.task != t:
            out.append(Violation("placement", t, f"slot of task {t} names task {slot.task}"))
        elif slot.vcpu not in inst.procs:
            out.append(Violation("placement", t, f"task {t} is on vCPU {slot.vcpu!r}, which is not schedulable"))
        else:
            want = inst.exec_time(t, slot.vcpu)
            if abs((slot.finish - slot.start) - want) > tol or slot.start < -tol:
                out.append(Violation(
                    "duration", t,
                    f"task {t} on {slot.vcpu} runs {slot.start:g}..{slot.finish:g}, but takes {want:g} s there",
                ))
    if out:
        return out
    by_vcpu: dict[VcpuId, list[tuple[float, float, TaskId]]] = {}
    for t, slot in slots.items():
        by_vcpu.setdefault(slot.vcpu, []).append((slot.start, slot.finish, t))
    for vcpu, items in sorted(by_vcpu.items()):
        items.sort()
        last_s, last_f, last_t = items[0]
        for s1, f1, t1 in items[1:]:
            if s1 < last_f - tol:
                out.append(Violation(
                    "overlap", t1,
                    f"tasks {last_t} ({last_s:g}..{last_f:g}) and {t1} ({s1:g}..{f1:g}) overlap on vCPU {vcpu}",
                ))
            if f1 > last_f:
                last_s, last_f, last_t = s1, f1, t1
    transfer = inst.transfer
    for s, d, edge in inst.edges:
        a, b = slots[s], slots[d]
        arrival = a.finish + transfer(edge, a.vcpu, b.vcpu)
        if b.start < arrival - tol:
            out.append(Violation(
                "precedence", d,
                f"task {d} starts at {b.start:g} on {b.vcpu}, before the data of task {s} arrives at {arrival:g}",
            ))
    return out


def validate_schedule(target: Problem | tuple[Environment, Job], schedule: Schedule,
                      costs: MeasuredCosts | None = None) -> None:
    """Raise :class:`ScheduleError` listing every violation, if there is any."""
    violations = find_violations(target, schedule, costs)
    if violations:
        shown = "; ".join(str(v) for v in violations[:10])
        more = f" (and {len(violations) - 10} more)" if len(violations) > 10 else ""
        raise ScheduleError(f"schedule {schedule.algorithm!r} is invalid: {shown}{more}")
