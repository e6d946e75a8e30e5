"""The record of a real run: where and when each function ran, and the files that crossed nodes.

Saved as ``trace.json`` in the output directory; ``sflow gantt TRACE`` draws it with the same
chart code as a schedule. Times are seconds since the delegator started the job; they come from
each node's clock, so across hosts they are as good as the hosts' clock synchronisation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from sflow.errors import InputError
from sflow.jsonio import read_json, write_json


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


def trace_to_dict(trace: Trace) -> dict[str, Any]:
    """The JSON form: every field by name (the dataclasses' field order is the file's key order)."""
    return asdict(trace)


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
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(source, "", f"not a trace written by sflow: {exc!r}") from None


def write_trace(path: Path, trace: Trace) -> None:
    write_json(path, trace_to_dict(trace))


def load_trace(path: str | Path) -> Trace:
    return trace_from_dict(read_json(path), str(path))


def summary_table(trace: Trace) -> Table:
    table = Table(title=f"job {trace.job_id} run {trace.run_id} ({trace.mode}, {trace.algorithm})")
    for column in ("function", "node", "vCPU", "start (s)", "finish (s)", "ran", "predicted (s)"):
        table.add_column(column, justify="right" if "(s)" in column else "left")
    for t in sorted(trace.tasks, key=lambda r: (r.start, r.task)):
        predicted = (
            f"{t.predicted_start:.3f}–{t.predicted_finish:.3f}"
            if t.predicted_start is not None and t.predicted_finish is not None
            else "-"
        )
        table.add_row(str(t.task), t.node, t.vcpu, f"{t.start:.3f}", f"{t.finish:.3f}", t.where or "-", predicted)
    return table


def makespan_line(trace: Trace) -> str:
    predicted = (
        f"{trace.predicted_makespan:.3f} s predicted by {trace.algorithm}"
        if trace.predicted_makespan is not None
        else "no prediction (the nodes placed the functions themselves)"
        if trace.mode == "auto"
        else "no prediction (mapping without a schedule)"
    )
    return f"makespan: {trace.makespan:.3f} s real, {predicted}"


def trace_chart(trace: Trace) -> tuple[list[Any], list[Any]]:
    """Bars (lane = vCPU, grouped by node) and transfer arrows for :func:`sflow.sched.gantt.draw_gantt`."""
    from sflow.sched.gantt import Bar, Transfer

    bars = [Bar(t.vcpu, t.node, str(t.task), t.start, t.finish) for t in sorted(trace.tasks, key=lambda r: r.start)]
    transfers = [
        Transfer(x.src_vcpu, x.dst_vcpu, x.start, x.finish, f"{x.task}:{Path(x.path).name}") for x in trace.transfers
    ]
    return bars, transfers
