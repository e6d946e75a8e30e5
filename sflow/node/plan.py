"""A node's plan: the part of a job one node runs, and its wire form — the contract between the
delegator (which builds plans, :mod:`sflow.delegator.plan`) and the node (which runs them,
:mod:`sflow.node.state`). Both depend on this module; neither depends on the other.

A node's plan lists its functions in schedule order, each with its command, vCPU, the input files
it must wait for (one entry per file, per predecessor), and where each output goes: the remote
nodes that run a successor (a file goes once to a node however many of its functions need it), and
the delegator for results (files with no destination, which is every output of an END function).

Pure: no I/O; :func:`plan_to_wire` / :func:`plan_from_wire` convert to and from the msgpack map
that travels in a ``job`` frame, and the reader checks every field (the node must not trust it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sflow.errors import ProtocolError
from sflow.model.infra import VcpuId
from sflow.model.paths import UnsafePath, job_relative
from sflow.model.workflow import TaskId

#: A job's per-run key on the wire and on disk: ``<job_id>-<run_id>``.
JobKey = str


@dataclass(frozen=True, slots=True)
class InputFile:
    pred: TaskId
    path: str


@dataclass(frozen=True, slots=True)
class FileRoute:
    """One output file: the remote nodes it is streamed to, and whether it is a job result."""

    path: str
    nodes: tuple[str, ...]
    result: bool


@dataclass(frozen=True, slots=True)
class ValueRoute:
    """An ``out_value``: the remote nodes it goes to, and whether it is a job result (the value of
    an END function, or one with no successor), which returns to the delegator."""

    val: str
    nodes: tuple[str, ...]
    result: bool = False


@dataclass(frozen=True, slots=True)
class PlannedTask:
    id: TaskId
    cmd: str
    vcpu: VcpuId
    cpu_index: int
    docker_image: str | None
    docker_tar: str | None
    #: every file that must have arrived (or been produced here) before the function runs
    inputs: tuple[InputFile, ...]
    #: predecessors that send a ``$V^`` value
    value_preds: tuple[TaskId, ...]
    #: what ``$F^<pred>`` names: the first file from each predecessor, in the job's file order
    file_args: tuple[InputFile, ...]
    outputs: tuple[FileRoute, ...]
    value: ValueRoute | None


@dataclass(frozen=True, slots=True)
class NodePlan:
    job_id: int
    run_id: str
    node: str
    #: the node's functions in schedule order
    tasks: tuple[PlannedTask, ...]

    @property
    def key(self) -> JobKey:
        return job_key(self.job_id, self.run_id)


def job_key(job_id: int, run_id: str) -> JobKey:
    return f"{job_id}-{run_id}"


@dataclass(frozen=True, slots=True)
class Pull:
    """After a re-plan: ask ``node`` for input ``path`` of task ``pred`` (a file produced before a
    node was lost, or by a function that is still to finish there); ``path`` "" is a value."""

    pred: TaskId
    path: str
    node: str


# ---------------------------------------------------------------------------------------------
# The wire form of a node plan (a msgpack map inside a ``job`` frame)


def plan_to_wire(plan: NodePlan) -> dict[str, Any]:
    return {
        "job_id": plan.job_id,
        "run_id": plan.run_id,
        "node": plan.node,
        "tasks": [
            {
                "id": t.id,
                "cmd": t.cmd,
                "vcpu": t.vcpu,
                "cpu_index": t.cpu_index,
                "docker_image": t.docker_image,
                "docker_tar": t.docker_tar,
                "inputs": [[i.pred, i.path] for i in t.inputs],
                "value_preds": list(t.value_preds),
                "file_args": [[i.pred, i.path] for i in t.file_args],
                "outputs": [[o.path, list(o.nodes), o.result] for o in t.outputs],
                "value": None if t.value is None else [t.value.val, list(t.value.nodes), t.value.result],
            }
            for t in plan.tasks
        ],
    }


class _Wire:
    """Field access on an untrusted plan map; every defect is a ProtocolError naming the field."""

    def fail(self, where: str, message: str) -> ProtocolError:
        return ProtocolError(f"plan: {where}: {message}")

    def get(self, d: Any, key: str, types: tuple[type, ...], where: str) -> Any:
        if not isinstance(d, dict):
            raise self.fail(where, "expected a map")
        if key not in d:
            raise self.fail(where, f"missing {key!r}")
        value = d[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self.fail(f"{where}.{key}", f"wrong type {type(value).__name__}")
        return value

    def path(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, "expected a path string")
        try:
            norm = job_relative(value)
        except UnsafePath as exc:
            raise self.fail(where, str(exc)) from None
        return norm

    def pairs(self, value: Any, where: str) -> tuple[InputFile, ...]:
        if not isinstance(value, list):
            raise self.fail(where, "expected a list")
        out = []
        for i, item in enumerate(value):
            if not (isinstance(item, list) and len(item) == 2 and _is_int(item[0])):
                raise self.fail(f"{where}[{i}]", "expected [task id, path]")
            out.append(InputFile(TaskId(item[0]), self.path(item[1], f"{where}[{i}]")))
        return tuple(out)

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise self.fail(where, "expected a list of strings")
        return tuple(value)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def plan_from_wire(data: Mapping[str, Any]) -> NodePlan:
    """Read and check a plan received from the network; ProtocolError names the bad field."""
    w = _Wire()
    job_id = w.get(data, "job_id", (int,), "plan")
    run_id = w.get(data, "run_id", (str,), "plan")
    if not run_id or not all(c.isalnum() for c in run_id):
        raise w.fail("plan.run_id", "must be letters and digits")
    node = w.get(data, "node", (str,), "plan")
    tasks = []
    seen: set[int] = set()
    for i, raw in enumerate(w.get(data, "tasks", (list,), "plan")):
        tw = f"tasks[{i}]"
        tid = w.get(raw, "id", (int,), tw)
        if tid in seen:
            raise w.fail(f"{tw}.id", f"task {tid} appears twice")
        seen.add(tid)
        outputs = []
        for k, o in enumerate(w.get(raw, "outputs", (list,), tw)):
            ow = f"{tw}.outputs[{k}]"
            if not (isinstance(o, list) and len(o) == 3 and isinstance(o[2], bool)):
                raise w.fail(ow, "expected [path, [nodes], result]")
            outputs.append(FileRoute(w.path(o[0], ow), w.strings(o[1], ow), o[2]))
        raw_value = w.get(raw, "value", (list, type(None)), tw)
        value = None
        if raw_value is not None:
            if not (len(raw_value) in (2, 3) and isinstance(raw_value[0], str)
                    and (len(raw_value) == 2 or isinstance(raw_value[2], bool))):
                raise w.fail(f"{tw}.value", "expected [val, [nodes], result]")
            value = ValueRoute(raw_value[0], w.strings(raw_value[1], f"{tw}.value"),
                               len(raw_value) == 3 and raw_value[2])
        value_preds = w.get(raw, "value_preds", (list,), tw)
        if not all(_is_int(p) for p in value_preds):
            raise w.fail(f"{tw}.value_preds", "expected task ids")
        tasks.append(
            PlannedTask(
                id=TaskId(tid),
                cmd=w.get(raw, "cmd", (str,), tw),
                vcpu=VcpuId(w.get(raw, "vcpu", (str,), tw)),
                cpu_index=w.get(raw, "cpu_index", (int,), tw),
                docker_image=w.get(raw, "docker_image", (str, type(None)), tw),
                docker_tar=w.get(raw, "docker_tar", (str, type(None)), tw),
                inputs=w.pairs(w.get(raw, "inputs", (list,), tw), f"{tw}.inputs"),
                value_preds=tuple(TaskId(p) for p in value_preds),
                file_args=w.pairs(w.get(raw, "file_args", (list,), tw), f"{tw}.file_args"),
                outputs=tuple(outputs),
                value=value,
            )
        )
    return NodePlan(job_id, run_id, node, tuple(tasks))


def pulls_to_wire(pulls: tuple[Pull, ...]) -> list[list[Any]]:
    return [[p.pred, p.path, p.node] for p in pulls]


def pulls_from_wire(data: Any) -> tuple[Pull, ...]:
    """Read and check the pulls of a ``replan`` message; ProtocolError names the bad entry."""
    w = _Wire()
    if not isinstance(data, list):
        raise w.fail("pulls", "expected a list")
    out = []
    for i, item in enumerate(data):
        if not (isinstance(item, list) and len(item) == 3 and _is_int(item[0]) and isinstance(item[2], str)):
            raise w.fail(f"pulls[{i}]", "expected [task id, path, node]")
        path = "" if item[1] == "" else w.path(item[1], f"pulls[{i}]")
        out.append(Pull(TaskId(item[0]), path, item[2]))
    return tuple(out)
