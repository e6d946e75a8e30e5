"""Split a scheduled job into one plan per node (:class:`~sflow.node.plan.NodePlan`, the contract
with the nodes, lives in :mod:`sflow.node.plan`).

Each node gets the functions the schedule places on it; a successor on the same node reads a
file in place, so nothing is sent; results (files with no destination, and every output of an
END function) return to the delegator.

Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sflow.errors import InputError
from sflow.model.infra import VcpuId
from sflow.model.paths import UnsafePath, job_relative
from sflow.model.workflow import Job, TaskId
from sflow.node.plan import (
    FileRoute,
    InputFile,
    JobKey,
    NodePlan,
    PlannedTask,
    ValueRoute,
    job_key,
)


@dataclass(frozen=True, slots=True)
class TaskPlacement:
    """Where the delegator runs a function: the node's ``host:port`` and the vCPU on it."""

    node: str
    vcpu: VcpuId
    #: the vCPU's position among its host's vCPUs (a node pins to host CPU ``cpu_index`` when asked)
    cpu_index: int


@dataclass(frozen=True, slots=True)
class ResultFile:
    """An output that returns to the delegator, and where it is written under the output dir."""

    task: TaskId
    path: str
    name: str


@dataclass(frozen=True, slots=True)
class JobPlan:
    job_id: int
    run_id: str
    nodes: Mapping[str, NodePlan]
    placements: Mapping[TaskId, TaskPlacement]
    results: tuple[ResultFile, ...]

    @property
    def key(self) -> JobKey:
        return job_key(self.job_id, self.run_id)


def build_plan(
    job: Job,
    placements: Mapping[TaskId, TaskPlacement],
    order: Sequence[TaskId],
    run_id: str,
    source: str = "<job>",
) -> JobPlan:
    """One plan per node. ``order`` is the schedule order (every task once).

    Raises InputError when a task has no placement, or when two different functions' files would
    land on the same path of one node's job directory (one would overwrite the other).
    """
    missing = [t for t in job.by_id if t not in placements]
    if missing:
        raise InputError(source, "", f"no placement for tasks {sorted(missing)}")
    if sorted(order) != sorted(job.by_id):
        raise InputError(source, "", "the schedule order does not list every task exactly once")
    node_of = {t: p.node for t, p in placements.items()}
    paths = {t.id: [(_rel(f.path, t.id, source), f) for f in t.out_files] for t in job.tasks}

    # Which producer owns each path in each node's job directory.
    owner: dict[tuple[str, str], TaskId] = {}

    def claim(node: str, path: str, task: TaskId) -> None:
        other = owner.setdefault((node, path), task)
        if other != task:
            raise InputError(
                source,
                "",
                f"tasks {other} and {task} both put {path!r} in the job directory of node {node}; "
                "give their outputs different paths",
            )

    for t in job.tasks:
        for path, f in paths[t.id]:
            claim(node_of[t.id], path, t.id)
            for d in f.dest:
                claim(node_of[d], path, t.id)

    inputs: dict[TaskId, list[InputFile]] = {t: [] for t in job.by_id}
    file_args: dict[TaskId, dict[TaskId, str]] = {t: {} for t in job.by_id}
    value_preds: dict[TaskId, list[TaskId]] = {t: [] for t in job.by_id}
    for t in job.tasks:
        for path, f in paths[t.id]:
            for d in dict.fromkeys(f.dest):
                inputs[d].append(InputFile(t.id, path))
                file_args[d].setdefault(t.id, path)
        if t.out_value is not None:
            for d in dict.fromkeys(t.out_value.dest):
                value_preds[d].append(t.id)

    is_end = set(job.end_tasks)
    results: list[ResultFile] = []
    planned: dict[TaskId, PlannedTask] = {}
    for t in job.tasks:
        here = node_of[t.id]
        outputs = []
        for path, f in paths[t.id]:
            remote = tuple(dict.fromkeys(node_of[d] for d in f.dest if node_of[d] != here))
            result = not f.dest or t.id in is_end
            outputs.append(FileRoute(path, remote, result))
            if result:
                results.append(ResultFile(t.id, path, path))
        value = None
        if t.out_value is not None:
            remote = tuple(dict.fromkeys(node_of[d] for d in t.out_value.dest if node_of[d] != here))
            value = ValueRoute(t.out_value.val, remote, not t.out_value.dest or t.id in is_end)
        p = placements[t.id]
        planned[t.id] = PlannedTask(
            id=t.id,
            cmd=t.cmd,
            vcpu=p.vcpu,
            cpu_index=p.cpu_index,
            docker_image=t.docker_image,
            docker_tar=t.docker_tar,
            inputs=tuple(inputs[t.id]),
            value_preds=tuple(value_preds[t.id]),
            file_args=tuple(InputFile(pred, path) for pred, path in file_args[t.id].items()),
            outputs=tuple(outputs),
            value=value,
        )
    results = _unique_result_names(results)
    nodes: dict[str, list[PlannedTask]] = {}
    for tid in order:
        nodes.setdefault(node_of[tid], []).append(planned[tid])
    return JobPlan(
        job_id=job.id,
        run_id=run_id,
        nodes={n: NodePlan(job.id, run_id, n, tuple(ts)) for n, ts in nodes.items()},
        placements=dict(placements),
        results=tuple(results),
    )


def _rel(path: str, task: TaskId, source: str) -> str:
    try:
        return job_relative(path)
    except UnsafePath as exc:
        raise InputError(source, "", f"task {task}: {exc}") from None


def _unique_result_names(results: list[ResultFile]) -> list[ResultFile]:
    """Results keep their job path under the output directory; two functions with the same path
    (on different nodes) are told apart by a ``task-<id>/`` prefix."""
    count = Counter(r.path for r in results)
    return [r if count[r.path] == 1 else ResultFile(r.task, r.path, f"task-{r.task}/{r.path}") for r in results]


def schedule_order(job: Job, starts: Mapping[TaskId, float] | None) -> tuple[TaskId, ...]:
    """Tasks by scheduled start (ties and unscheduled runs: topological order). Run in this order on
    each vCPU, a valid schedule cannot deadlock: each function waits only for earlier ones."""
    if starts is None:
        return job.order
    topo = {t: i for i, t in enumerate(job.order)}
    return tuple(sorted(job.order, key=lambda t: (starts[t], topo[t])))
