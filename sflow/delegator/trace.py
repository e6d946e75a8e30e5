"""The record of a real run: where and when each function ran, and the files that crossed nodes.

Saved as ``trace.json`` in the output directory, by a job that failed too; ``sflow gantt TRACE``
draws it with the same chart code as a schedule. Times are seconds since the delegator started
the job; they come from each node's clock, so across hosts they are as good as the hosts' clock
synchronisation.

Besides the functions and transfers a trace holds the run's ``status`` (``ok`` or ``failed``)
with its ``error`` and, when a function failed, the ``failure`` (function, node, reason, exit
status, end of stderr); the ``events`` of the run (a node lost and what was re-planned where, a
function run again); and the ``values`` (``out_value``) of its END functions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from sflow.errors import FunctionFailure, InputError
from sflow.jsonio import read_json, write_json

if TYPE_CHECKING:
    from sflow.sched.gantt import Bar, Transfer


@dataclass(frozen=True, slots=True)
class TaskRun:
    task: int
    node: str
    vcpu: str
    start: float
    finish: float
    where: str
    predicted_start: float | None = None
    predicted_finish: float | None = None
    #: which run of the function this was (2 and more: it had failed, or its node was lost)
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class TransferRun:
    """A file streamed from ``src_node`` (task ``task``'s vCPU) to ``dst_node`` (``dst_vcpu``, the
    vCPU of the first function there that reads it)."""

    task: int
    path: str
    src_node: str
    dst_node: str
    src_vcpu: str
    dst_vcpu: str
    bytes: int
    start: float
    finish: float


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """Something that happened to the run: ``node_lost`` (``node``; ``tasks`` re-planned, each to
    ``placements[task]`` = [node, vCPU]; ``rerun``: those that had finished but whose output was
    lost with it) or ``retry`` (function ``tasks[0]`` failed on ``node`` and runs again)."""

    time: float
    kind: str
    node: str
    detail: str
    tasks: tuple[int, ...] = ()
    placements: dict[str, list[str]] = field(default_factory=dict)
    rerun: tuple[int, ...] = ()


OK = "ok"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Trace:
    job_id: int
    run_id: str
    mode: str
    algorithm: str
    predicted_makespan: float | None
    makespan: float
    tasks: tuple[TaskRun, ...]
    transfers: tuple[TransferRun, ...]
    results: tuple[str, ...]
    status: str = OK
    error: str = ""
    failure: FunctionFailure | None = None
    events: tuple[TraceEvent, ...] = ()
    #: the ``out_value`` of each END function that has one, by task id
    values: dict[str, str] = field(default_factory=dict)


def trace_to_dict(trace: Trace) -> dict[str, Any]:
    """The JSON form: every field by name (the dataclasses' field order is the file's key order)."""
    return asdict(trace)


def failure_of(error: BaseException) -> FunctionFailure | None:
    """The failing function of a :class:`~sflow.errors.JobFailed`, for a trace."""
    from sflow.errors import JobFailed

    if isinstance(error, JobFailed):
        return FunctionFailure(error.task_id, error.node, error.reason, error.exit_code, error.stderr_tail)
    return None


def attach_trace(error: BaseException, trace: Trace) -> BaseException:
    """Give a failed run's error its trace (the command writes it beside the error)."""
    setattr(error, "trace", trace)  # noqa: B010 - errors of any kind carry it
    return error


def trace_of(error: BaseException) -> Trace | None:
    trace = getattr(error, "trace", None)
    return trace if isinstance(trace, Trace) else None


def trace_from_dict(data: Any, source: str = "<trace>") -> Trace:
    try:
        return Trace(
            job_id=int(data["job_id"]),
            run_id=str(data["run_id"]),
            mode=str(data["mode"]),
            algorithm=str(data["algorithm"]),
            predicted_makespan=None if data["predicted_makespan"] is None else float(data["predicted_makespan"]),
            makespan=float(data["makespan"]),
            tasks=tuple(
                TaskRun(
                    int(t["task"]),
                    str(t["node"]),
                    str(t["vcpu"]),
                    float(t["start"]),
                    float(t["finish"]),
                    str(t["where"]),
                    None if t.get("predicted_start") is None else float(t["predicted_start"]),
                    None if t.get("predicted_finish") is None else float(t["predicted_finish"]),
                    int(t.get("attempt", 1)),
                )
                for t in data["tasks"]
            ),
            transfers=tuple(
                TransferRun(
                    int(x["task"]),
                    str(x["path"]),
                    str(x["src_node"]),
                    str(x["dst_node"]),
                    str(x["src_vcpu"]),
                    str(x["dst_vcpu"]),
                    int(x["bytes"]),
                    float(x["start"]),
                    float(x["finish"]),
                )
                for x in data["transfers"]
            ),
            results=tuple(str(r) for r in data.get("results", ())),
            status=str(data.get("status", OK)),
            error=str(data.get("error", "")),
            failure=None if data.get("failure") is None else FunctionFailure(
                int(data["failure"]["task"]), str(data["failure"]["node"]), str(data["failure"]["reason"]),
                None if data["failure"].get("exit_status") is None else int(data["failure"]["exit_status"]),
                str(data["failure"].get("stderr_tail", ""))),
            events=tuple(
                TraceEvent(float(e["time"]), str(e["kind"]), str(e["node"]), str(e["detail"]),
                           tuple(int(t) for t in e.get("tasks", ())),
                           {str(k): [str(x) for x in v] for k, v in e.get("placements", {}).items()},
                           tuple(int(t) for t in e.get("rerun", ())))
                for e in data.get("events", ())
            ),
            values={str(k): str(v) for k, v in data.get("values", {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(source, "", f"not a trace written by sflow: {exc!r}") from None


def write_trace(path: Path, trace: Trace) -> None:
    write_json(path, trace_to_dict(trace))


def load_trace(path: str | Path) -> Trace:
    return trace_from_dict(read_json(path), str(path))


RAN = "ran"
CACHED = "cached"
NOT_RUN = "not run"
#: a run of a function that failed (and was run again, or failed the job)
FAILED_RUN = "failed run"


def run_kind(where: str) -> str:
    """What a trace row's ``where`` says happened: RAN (``native``, ``docker:IMAGE``, or in ICN
    modes ``executed (…)``), CACHED (``cache hit (…)``), NOT_RUN (``not needed``) or FAILED_RUN
    (``failed: …``)."""
    if where.startswith("cache hit"):
        return CACHED
    if where.startswith("not needed"):
        return NOT_RUN
    if where.startswith("failed"):
        return FAILED_RUN
    return RAN


def summary_table(trace: Trace) -> Table:
    """Where, on which vCPU and when each function ran (or which cache answered), beside the
    schedule's prediction. Laid out to fit an 80-column terminal: times to 10 ms (the trace keeps
    them exact), a Docker image left to the job and the trace, the predicted column only when
    there is a prediction."""
    predicted = any(t.predicted_start is not None for t in trace.tasks)
    caption = ("not needed: a result that depends on it came from a cache"
               if any(run_kind(t.where) == NOT_RUN for t in trace.tasks) else None)
    table = Table(title=f"job {trace.job_id} run {trace.run_id} ({trace.mode}, {trace.algorithm})",
                  caption=caption, box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    table.add_column("fn", justify="right", no_wrap=True)
    table.add_column("node", overflow="fold")
    table.add_column("vCPU", overflow="fold")
    table.add_column("real (s)", justify="right", no_wrap=True)
    table.add_column("how", no_wrap=True)
    if predicted:
        table.add_column("predicted (s)", justify="right", no_wrap=True)
    for t in sorted(trace.tasks, key=lambda r: (run_kind(r.where) == NOT_RUN, r.start, r.task)):
        kind = run_kind(t.where)
        row = [str(t.task), t.node, t.vcpu, _span(t.start, t.finish, kind), _how(t.where, kind)]
        if predicted:
            row.append(_span(t.predicted_start, t.predicted_finish, RAN))
        table.add_row(*row)
    return table


def _span(start: float | None, finish: float | None, kind: str) -> str:
    if start is None or finish is None or kind == NOT_RUN:
        return "-"
    if kind == CACHED:
        return f"{start:.2f}"  # when it was found
    return f"{start:.2f}–{finish:.2f}"


def _how(where: str, kind: str) -> str:
    """``native`` / ``executed (native)`` → ``executed (native)``; a Docker image is left to the
    job and the trace (``executed (docker)``), so that the column stays narrow."""
    if kind == FAILED_RUN:
        return where.split(";")[0][:40]
    if kind != RAN:
        return where
    runner = where.removeprefix("executed (").removesuffix(")") if where.startswith("executed (") else where
    if runner.startswith("docker:"):
        runner = "docker"
    return f"executed ({runner})" if runner else "executed"


def event_lines(trace: Trace) -> list[str]:
    """The run's events in words (a node lost and where its functions went; retries)."""
    lines = []
    for e in trace.events:
        if e.kind == "node_lost":
            where = ", ".join(f"{t} → {trace_node(e.placements[str(t)])}" for t in e.tasks if str(t) in e.placements)
            again = f" (finished before, output lost: {', '.join(map(str, e.rerun))})" if e.rerun else ""
            lines.append(f"{e.time:.2f} s: node {e.node} lost ({e.detail}); re-planned {where}{again}")
        else:
            lines.append(f"{e.time:.2f} s: {e.detail}")
    return lines


def trace_node(placement: list[str]) -> str:
    node, vcpu = placement
    return f"{node} ({vcpu})"


def makespan_line(trace: Trace) -> str:
    predicted = (
        f"{trace.predicted_makespan:.3f} s predicted by {trace.algorithm}"
        if trace.predicted_makespan is not None
        else "no prediction (the nodes placed the functions themselves)"
        if trace.mode == "auto"
        else "no prediction (mapping without a schedule)"
    )
    return f"makespan: {trace.makespan:.3f} s real, {predicted}"


def trace_chart(trace: Trace) -> tuple[list[Bar], list[Transfer]]:
    """Bars for :func:`sflow.sched.gantt.draw_gantt`: each function that ran on its node's vCPU
    lane; each result found in a cache as a marker on its node's ``cache`` lane, at the moment it
    was found; each file transfer from the sender's vCPU to the reader's, until the receiver had it."""
    from sflow.sched.gantt import CACHED as CACHED_BAR
    from sflow.sched.gantt import Bar, Transfer

    bars = []
    for t in sorted(trace.tasks, key=lambda r: (r.start, r.task)):
        kind = run_kind(t.where)
        if kind in (RAN, FAILED_RUN):
            bars.append(Bar(t.vcpu, t.node, str(t.task) if kind == RAN else f"{t.task}✗", t.start, t.finish))
        elif kind == CACHED:
            bars.append(Bar("cache", t.node, str(t.task), t.start, t.start, kind=CACHED_BAR))
    transfers = [
        Transfer(x.src_vcpu, x.dst_vcpu, x.start, x.finish, f"{x.task}:{Path(x.path).name}", x.src_node, x.dst_node)
        for x in trace.transfers
    ]
    return bars, transfers


def chart_note(trace: Trace) -> str:
    """What a chart with no function that ran says in its middle."""
    if any(run_kind(t.where) == CACHED for t in trace.tasks):
        return "every result came from a cache: no function ran"
    return "no function ran"
