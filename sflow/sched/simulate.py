"""Replay a mapping and measure it.

:func:`replay` takes a placement (task → vCPU), from any scheduler or from a mapping JSON, and
recomputes the times by list scheduling: tasks are taken in the given order (kept topological:
a task whose inputs are not placed yet waits for them), each on its vCPU after the vCPU's previous
task and once all its inputs have arrived. :func:`measure` reports makespan, SLR (makespan over the
sum of minimum execution times along the critical path), speedup (sequential time on the fastest
vCPU over the makespan) and each used vCPU's utilisation (busy time over makespan).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sflow.errors import ScheduleError
from sflow.model.infra import VcpuId
from sflow.model.schedule import Schedule
from sflow.model.workflow import TaskId
from sflow.sched.base import schedule_in_order
from sflow.sched.costs import critical_path_lower_bound, ready_list_order, sequential_time
from sflow.sched.problem import Problem


@dataclass(frozen=True, slots=True)
class Measures:
    algorithm: str
    makespan: float
    slr: float
    speedup: float
    #: the SLR denominator: minimum execution times summed along the critical path
    lower_bound: float
    #: the whole job on the fastest vCPU
    sequential: float
    #: busy time / makespan for each vCPU that runs a task, in declaration order
    utilisation: Mapping[VcpuId, float]
    #: hosts that run a task, in declaration order
    hosts: tuple[str, ...]


def measure(problem: Problem, schedule: Schedule) -> Measures:
    makespan = schedule.makespan
    bound = critical_path_lower_bound(problem)
    seq = sequential_time(problem)
    busy: dict[VcpuId, float] = {}
    for slot in schedule.slots.values():
        busy[slot.vcpu] = busy.get(slot.vcpu, 0.0) + (slot.finish - slot.start)
    used = [(k, v) for k, v in enumerate(problem.proc_ids) if v in busy]
    hosts = tuple(dict.fromkeys(problem.hosts[k] for k, _ in used))
    return Measures(
        algorithm=schedule.algorithm,
        makespan=makespan,
        slr=makespan / bound if bound > 0 else (1.0 if makespan == 0 else math.inf),
        speedup=seq / makespan if makespan > 0 else 1.0,
        lower_bound=bound,
        sequential=seq,
        utilisation={v: (busy[v] / makespan if makespan > 0 else 0.0) for _, v in used},
        hosts=hosts,
    )


def replay(
    problem: Problem,
    placement: Mapping[TaskId, VcpuId],
    order: Sequence[TaskId] | None = None,
    algorithm: str = "replay",
) -> Schedule:
    """Recompute start and finish times for ``placement``, taking tasks in ``order`` (default:
    ascending id) whenever their inputs are placed. A task without a placement, or placed on a vCPU
    that cannot be scheduled, is a :class:`ScheduleError`."""
    proc_index = problem.proc_index()
    procs: list[int] = []
    for t in problem.task_ids:
        if t not in placement:
            raise ScheduleError(f"{problem.name}: task {t} has no vCPU in the mapping")
        k = proc_index.get(placement[t])
        if k is None:
            raise ScheduleError(
                f"{problem.name}: task {t} is mapped to vCPU {placement[t]!r}, which is not a schedulable vCPU"
            )
        procs.append(k)
    rank = {t: pos for pos, t in enumerate(order if order is not None else ())}
    keys = [(rank.get(t, len(rank)), t) for t in problem.task_ids]
    sequence = ready_list_order(problem, keys)
    return schedule_in_order(problem, algorithm, sequence, procs, insertion=False)


def replay_schedule(problem: Problem, schedule: Schedule) -> Schedule:
    """Replay a schedule's placement in the order of its start times (ties: ascending id)."""
    order = sorted(schedule.slots, key=lambda t: (schedule.slots[t].start, t))
    return replay(problem, {t: s.vcpu for t, s in schedule.slots.items()}, order, schedule.algorithm)
