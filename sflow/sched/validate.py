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

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sflow.errors import ScheduleError
from sflow.model.costs import CostModel, MeasuredCosts
from sflow.model.infra import Environment, VcpuId
from sflow.model.schedule import Schedule
from sflow.model.workflow import Job, TaskId
from sflow.sched.problem import FloatArray, IntArray, Problem


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
    #: every edge's source and destination, as positions in ``tasks``
    edge_src: IntArray
    edge_dst: IntArray
    #: every edge's transfer time when task k of ``tasks`` runs on vCPU ``placed[k]``
    transfers: Callable[[list[VcpuId]], FloatArray]


def _from_problem(problem: Problem) -> _Instance:
    ti = problem.task_index()
    pi = problem.proc_index()

    def transfers(placed: list[VcpuId]) -> FloatArray:
        procs = np.array([pi[v] for v in placed], dtype=np.int64)
        p, q = procs[problem.edge_src], procs[problem.edge_dst]
        result: FloatArray = problem.edge_data * problem.inv_bw[p, q] + problem.latency[p, q]
        return result

    return _Instance(
        tasks=problem.task_ids,
        procs=frozenset(problem.proc_ids),
        exec_time=lambda t, v: float(problem.exec_time[ti[t], pi[v]]),
        edge_src=problem.edge_src,
        edge_dst=problem.edge_dst,
        transfers=transfers,
    )


def _from_env_job(env: Environment, job: Job, costs: MeasuredCosts | None) -> _Instance:
    tasks = tuple(t.id for t in job.tasks)
    at = {t: k for k, t in enumerate(tasks)}
    # The edges in the job's order: each task's successors in turn.
    counts = np.fromiter(map(len, job.succs.values()), dtype=np.int64, count=len(job.succs))
    edge_src = np.repeat(np.fromiter(map(at.__getitem__, job.succs), dtype=np.int64, count=len(job.succs)), counts)
    edge_dst = np.fromiter(map(at.__getitem__, itertools.chain.from_iterable(job.succs.values())),
                           dtype=np.int64, count=int(counts.sum()))
    if costs is not None:
        model = CostModel(env, job, costs)

        def measured(placed: list[VcpuId]) -> FloatArray:
            return np.array([model.transfer_time(tasks[s], tasks[d], placed[s], placed[d])
                             for s, d in zip(edge_src.tolist(), edge_dst.tolist())], dtype=np.float64)

        return _Instance(
            tasks=tasks,
            procs=frozenset(v.id for v in env.schedulable),
            exec_time=model.exec_time,
            edge_src=edge_src,
            edge_dst=edge_dst,
            transfers=measured,
        )
    sizes = np.fromiter(itertools.chain.from_iterable(job.succ_sizes.values()), dtype=np.float64,
                        count=len(edge_src))

    def transfers(placed: list[VcpuId]) -> FloatArray:
        """:meth:`Environment.transfer_time` of every edge: 0 if nothing moves or the bandwidth
        is infinite, else size / bandwidth, the bandwidth asked once per pair of vCPUs."""
        vcpus = list(dict.fromkeys(placed))
        number = {v: k for k, v in enumerate(vcpus)}
        where = np.fromiter(map(number.__getitem__, placed), dtype=np.int64, count=len(placed))
        pair = where[edge_src] * len(vcpus) + where[edge_dst]
        used, inverse = np.unique(pair, return_inverse=True)
        bw = np.array([env.bandwidth(vcpus[c // len(vcpus)], vcpus[c % len(vcpus)]) for c in used.tolist()],
                      dtype=np.float64)[inverse]
        moves = (sizes > 0) & (bw != math.inf)
        result = np.zeros(len(sizes))
        result[moves] = sizes[moves] / bw[moves]
        return result

    return _Instance(
        tasks=tasks,
        procs=frozenset(v.id for v in env.schedulable),
        exec_time=lambda t, v: job.by_id[t].workload / env.vcpus[v].mips,
        edge_src=edge_src,
        edge_dst=edge_dst,
        transfers=transfers,
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
    # Precedence, every edge at once: the same sums and comparisons as edge by edge.
    placed = [slots[t] for t in inst.tasks]
    finish = np.array([slot.finish for slot in placed], dtype=np.float64)
    start = np.array([slot.start for slot in placed], dtype=np.float64)
    src, dst = inst.edge_src, inst.edge_dst
    arrival = finish[src] + inst.transfers([slot.vcpu for slot in placed])
    for e in np.flatnonzero(start[dst] < arrival - tol).tolist():
        a, b = placed[src[e]], placed[dst[e]]
        out.append(Violation(
            "precedence", b.task,
            f"task {b.task} starts at {b.start:g} on {b.vcpu}, before the data of task {a.task} arrives at "
            f"{float(arrival[e]):g}",
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
