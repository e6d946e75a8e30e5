"""Function specs and their deterministic result names (pure).

A function's result is named ``/sflow/fn/<program>/<digest>`` where ``<program>`` is the first
word of its command (readable only) and ``<digest>`` is the SHA-256 of the canonical encoding of
everything the result is computed from: the command template, the Docker image, the declared
outputs, the ``$V^`` values it receives, the digests of its ``$R^`` files, and, for each
predecessor, the digest of the predecessor's own result and the files taken from it. A changed
input therefore changes the name of every function downstream of it, and two jobs that compute
the same thing (same commands on the same inputs) name the same result, whatever their job ids.

The job id and the Docker image tar are not part of the digest: they say where to fetch ``$R^``
files and images from, not what is computed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sflow.errors import InputError, ProtocolError
from sflow.icn.name import Component, Name
from sflow.model.paths import UnsafePath, job_relative
from sflow.model.workflow import Job, TaskId
from sflow.node.command import expand

FN_PREFIX = Name.from_uri("/sflow/fn")
CTL_PREFIX = Name.from_uri("/sflow/ctl")
KEY_NAME = Name.from_uri("/sflow/key/cluster")
DIGEST_HEX_LEN = 64

_PROGRAM_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class InputRef:
    """What a function takes from one predecessor: that predecessor's result digest and the
    job-relative paths of the files it reads from it (in job file order)."""

    pred: TaskId
    digest: str
    program: str
    paths: tuple[str, ...]

    @property
    def prefix(self) -> Name:
        return result_prefix(self.program, self.digest)


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """Everything a function's result is computed from (see the module docstring)."""

    task: TaskId
    cmd: str
    image: str | None
    outputs: tuple[str, ...]
    inputs: tuple[InputRef, ...]
    values: tuple[tuple[TaskId, str], ...]
    remote: tuple[tuple[str, str], ...]
    #: :func:`spec_digest` of the fields above, computed once (it is asked for on every request)
    digest: str = field(init=False, repr=False, compare=False)
    #: :func:`program_label` of the command
    program: str = field(init=False, repr=False, compare=False)
    #: the result's name, ``/sflow/fn/<program>/<digest>`` (also computed once)
    prefix: Name = field(init=False, repr=False, compare=False)
    #: the digests of the inputs' results
    input_digests: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", spec_digest(self))
        object.__setattr__(self, "program", program_label(self.cmd))
        object.__setattr__(self, "prefix", result_prefix(self.program, self.digest))
        object.__setattr__(self, "input_digests", frozenset(r.digest for r in self.inputs))

    def file_args(self) -> dict[TaskId, str]:
        """What ``$F^<pred>`` names: the first file from each predecessor."""
        return {i.pred: i.paths[0] for i in self.inputs if i.paths}


def program_label(cmd: str) -> str:
    """A readable name component from the command's first word (``ffmpeg``, ``seq``)."""
    words = cmd.strip().split()
    first = words[0].rsplit("/", 1)[-1] if words else "fn"
    label = _PROGRAM_SAFE.sub("_", first)[:32].strip("._") or "fn"
    return label


def result_prefix(program: str, digest: str) -> Name:
    return FN_PREFIX.append(Component.generic(program), Component.generic(digest))


def spec_digest(spec: FunctionSpec) -> str:
    """SHA-256 (hex) of the spec's canonical encoding; the task id is left out on purpose so that
    the same computation in another job has the same name (the id still matters through ``cmd``,
    whose ``$F^<id>`` placeholders name predecessors)."""
    canonical = {
        "cmd": spec.cmd,
        "image": spec.image,
        "outputs": list(spec.outputs),
        "inputs": [[int(i.pred), i.digest, list(i.paths)] for i in spec.inputs],
        "values": [[int(p), v] for p, v in spec.values],
        "remote": [[p, d] for p, d in spec.remote],
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(b"sflow-fn-v1\0" + text.encode("ascii")).hexdigest()


def parse_result_name(name: Name) -> tuple[str, str] | None:
    """``(program, digest)`` when ``name`` is under ``/sflow/fn/<program>/<digest>``."""
    if len(name) < 4 or not FN_PREFIX.is_prefix_of(name):
        return None
    program, digest = name[2], name[3]
    if program.type != 8 or digest.type != 8:
        return None
    text = digest.value.decode("ascii", "replace")
    if len(text) != DIGEST_HEX_LEN or not all(c in "0123456789abcdef" for c in text):
        return None
    return program.value.decode("ascii", "replace"), text


def build_specs(job: Job, remote_digests: Mapping[str, str], source: str = "<job>") -> dict[TaskId, FunctionSpec]:
    """Every task's spec, in topological order (a predecessor's digest is known before its
    successors need it). ``remote_digests`` maps each ``$R^`` path (job-relative) to its SHA-256."""
    specs: dict[TaskId, FunctionSpec] = {}
    for tid in job.order:
        task = job.task(tid)
        inputs = []
        for pred in job.preds[tid]:
            edge = job.edges[(pred, tid)]
            paths = tuple(_rel(p, tid, source) for p in edge.files)
            ps = specs[pred]
            inputs.append(InputRef(pred, ps.digest, ps.program, paths))
        values = tuple(
            (pred, job.task(pred).out_value.val)  # type: ignore[union-attr]
            for pred in job.preds[tid]
            if job.edges[(pred, tid)].value
        )
        files = {i.pred: i.paths[0] for i in inputs if i.paths}
        expanded = expand(task.cmd, files=files, values=dict(values), source=f"{source}: task {tid} cmd")
        remote = []
        for path in expanded.remote_inputs:
            rel = _rel(path, tid, source)
            if rel not in remote_digests:
                raise InputError(source, f"task {tid}", f"no digest for $R^{path}")
            remote.append((rel, remote_digests[rel]))
        specs[tid] = FunctionSpec(
            task=tid,
            cmd=task.cmd,
            image=task.docker_image,
            outputs=tuple(_rel(f.path, tid, source) for f in task.out_files),
            inputs=tuple(inputs),
            values=values,
            remote=tuple(sorted(set(remote))),
        )
    return specs


def remote_inputs(job: Job, source: str = "<job>") -> dict[TaskId, tuple[str, ...]]:
    """The job-relative ``$R^`` paths of each task (to be hashed by whoever can read them)."""
    out: dict[TaskId, tuple[str, ...]] = {}
    for tid in job.order:
        task = job.task(tid)
        files = {p: "x" for p in job.preds[tid]}
        values = {p: "x" for p in job.preds[tid]}
        expanded = expand(task.cmd, files=files, values=values, source=f"{source}: task {tid} cmd")
        out[tid] = tuple(_rel(p, tid, source) for p in expanded.remote_inputs)
    return out


def _rel(path: str, task: TaskId, source: str) -> str:
    try:
        return job_relative(path)
    except UnsafePath as exc:
        raise InputError(source, f"task {task}", str(exc)) from None


# ---------------------------------------------------------------------------------------------
# Installing functions on a node: the spec plus where its inputs are and where to fetch from.


@dataclass(frozen=True, slots=True)
class Installed:
    """A function a node may be asked to compute. ``input_nodes`` gives, in static mode, the ICN
    address of the node each input is routed to ("" when the node decides, in auto mode);
    ``job_id`` says where ``$R^`` files come from; ``workload`` feeds autonomous placement;
    ``priority`` orders the functions waiting for a vCPU on a node (lowest first: the schedule's
    start time when there is a schedule, else the function's place in the job's order)."""

    spec: FunctionSpec
    docker_tar: str | None
    job_id: int
    workload: float
    input_nodes: tuple[str, ...]
    #: readable run label and task id, for logs and the per-run report
    run: str
    priority: float = 0.0


def spec_to_wire(spec: FunctionSpec) -> dict[str, Any]:
    return {
        "task": int(spec.task),
        "cmd": spec.cmd,
        "image": spec.image,
        "outputs": list(spec.outputs),
        "inputs": [[int(i.pred), i.digest, i.program, list(i.paths)] for i in spec.inputs],
        "values": [[int(p), v] for p, v in spec.values],
        "remote": [[p, d] for p, d in spec.remote],
    }


def installed_to_wire(item: Installed) -> dict[str, Any]:
    return {
        "spec": spec_to_wire(item.spec),
        "tar": item.docker_tar,
        "job_id": item.job_id,
        "workload": item.workload,
        "input_nodes": list(item.input_nodes),
        "run": item.run,
        "priority": item.priority,
    }


def _fail(where: str, message: str) -> ProtocolError:
    return ProtocolError(f"function spec: {where}: {message}")


def _get(d: Any, key: str, types: tuple[type, ...], where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise _fail(where, f"missing {key!r}")
    value = d[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise _fail(f"{where}.{key}", f"wrong type {type(value).__name__}")
    return value


def _path(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, "expected a path")
    try:
        return job_relative(value)
    except UnsafePath as exc:
        raise _fail(where, str(exc)) from None


def spec_from_wire(d: Any) -> FunctionSpec:
    """Read an untrusted spec; every defect is a ProtocolError naming the field."""
    inputs = []
    for k, raw in enumerate(_get(d, "inputs", (list,), "spec")):
        w = f"spec.inputs[{k}]"
        if not (isinstance(raw, list) and len(raw) == 4 and isinstance(raw[0], int) and isinstance(raw[1], str)
                and isinstance(raw[2], str) and isinstance(raw[3], list)):
            raise _fail(w, "expected [pred, digest, program, [paths]]")
        inputs.append(InputRef(TaskId(raw[0]), raw[1], raw[2], tuple(_path(p, w) for p in raw[3])))
    values = []
    for k, raw in enumerate(_get(d, "values", (list,), "spec")):
        if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], int) and isinstance(raw[1], str)):
            raise _fail(f"spec.values[{k}]", "expected [pred, value]")
        values.append((TaskId(raw[0]), raw[1]))
    remote = []
    for k, raw in enumerate(_get(d, "remote", (list,), "spec")):
        if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[1], str)):
            raise _fail(f"spec.remote[{k}]", "expected [path, digest]")
        remote.append((_path(raw[0], f"spec.remote[{k}]"), raw[1]))
    return FunctionSpec(
        task=TaskId(_get(d, "task", (int,), "spec")),
        cmd=_get(d, "cmd", (str,), "spec"),
        image=_get(d, "image", (str, type(None)), "spec"),
        outputs=tuple(_path(p, "spec.outputs") for p in _get(d, "outputs", (list,), "spec")),
        inputs=tuple(inputs),
        values=tuple(values),
        remote=tuple(remote),
    )


def installed_from_wire(d: Any) -> Installed:
    spec = spec_from_wire(_get(d, "spec", (dict,), "install"))
    nodes = _get(d, "input_nodes", (list,), "install")
    if len(nodes) != len(spec.inputs) or not all(isinstance(n, str) for n in nodes):
        raise _fail("install.input_nodes", "expected one address per input")
    workload = _get(d, "workload", (int, float), "install")
    # records saved by nodes before there was a priority have none
    priority = _get(d, "priority", (int, float), "install") if "priority" in d else 0.0
    return Installed(
        spec=spec,
        docker_tar=_get(d, "tar", (str, type(None)), "install"),
        job_id=_get(d, "job_id", (int,), "install"),
        workload=float(workload),
        input_nodes=tuple(nodes),
        run=_get(d, "run", (str,), "install"),
        priority=float(priority),
    )
