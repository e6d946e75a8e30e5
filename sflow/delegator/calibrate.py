"""Calibration: what real runs measured, as costs the schedulers and the simulator can use.

:func:`calibrate` reads traces (``trace.json`` of ``sflow run`` / ``sflow delegate``) and, when
given, the job files they ran, and returns :class:`~sflow.model.costs.MeasuredCosts`:

* per function (keyed as :mod:`sflow.model.costs` explains) and per host (node), the execution
  times measured (``finish − start`` of each run of it). Rows that say the function was answered
  from a cache or was not needed measured nothing and are left out;
* per output file that crossed between nodes, its size in bytes;
* per pair of distinct hosts, a line ``seconds = latency + MB / bandwidth`` fitted by least squares
  over the transfers seen, where a transfer's seconds run from the end of the function that wrote
  the file to the file's arrival — the delay the scheduler adds between the two functions; a file
  had arrived at the latest when a function that reads it started there (the trace's end of a
  transfer may be when its sender saw it finish, later). When
  the sizes did not vary (at least by half of the largest), the pair keeps only its mean size and
  time (:class:`~sflow.model.costs.LinkCosts` says how that is used); a slope that is not positive
  means the size did not matter, and the mean time is kept as latency; a negative intercept is
  refitted through the origin (no latency);
* per host, the hand-off latency: how long after a predecessor on the same node finished the
  function started, counted only when that predecessor was the last thing it waited for (needs
  the job, which says who the predecessors are).

Pure: traces and jobs come in as values; :mod:`sflow.delegator.cli` reads and writes the files.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sflow.delegator.trace import RAN, TaskRun, Trace, TransferRun, run_kind
from sflow.errors import InputError
from sflow.model.costs import FunctionCosts, HostCosts, LinkCosts, MeasuredCosts, function_key, normal_path, program_of
from sflow.model.workflow import Job, TaskId

#: sizes "vary" when the smallest is at most this fraction of the largest below it
SPREAD = 0.5


@dataclass(frozen=True, slots=True)
class Calibration:
    costs: MeasuredCosts
    #: what was left out and why, for the user
    notes: tuple[str, ...]


def is_measured(run: TaskRun) -> bool:
    """Whether a trace row is a real execution (not a cache hit, not skipped, not unplaced)."""
    return run_kind(run.where) == RAN and run.node not in ("", "-") and run.finish >= run.start


def calibrate(traces: Sequence[tuple[str, Trace]], jobs: Mapping[int, tuple[str, Job]]) -> Calibration:
    """Costs from ``traces`` (source name, trace); ``jobs`` maps a job id to (source, job)."""
    samples: dict[tuple[int, int, str | None], dict[str, list[float]]] = {}
    labels: dict[tuple[int, int, str | None], str] = {}
    outputs: dict[tuple[int, int, str | None], dict[str, list[int]]] = {}
    host_vcpus: dict[str, set[str]] = {}
    points: dict[tuple[str, str], list[tuple[float, float]]] = {}
    notes: list[str] = []
    runs: list[str] = []
    for source, trace in traces:
        runs.append(f"job {trace.job_id} run {trace.run_id} ({trace.mode})")
        job_entry = jobs.get(trace.job_id)
        job = job_entry[1] if job_entry is not None else None
        if job is None:
            notes.append(f"{source}: no job file for job {trace.job_id}; its functions are keyed by task id only "
                         "and no hand-off latency is measured")
        measured = {TaskId(r.task): r for r in trace.tasks if is_measured(r)}
        skipped = len(trace.tasks) - len(measured)
        if skipped:
            notes.append(f"{source}: {skipped} function(s) answered from a cache or not run: not measured")
        keys: dict[TaskId, tuple[int, int, str | None]] = {}
        for tid, run in measured.items():
            key = _function_id(source, trace, job, job_entry[0] if job_entry else "", tid)
            keys[tid] = key
            samples.setdefault(key, {}).setdefault(run.node, []).append(run.finish - run.start)
            if job is not None:
                labels[key] = program_of(job.by_id[tid].cmd)
            if run.vcpu not in ("", "-"):
                host_vcpus.setdefault(run.node, set()).add(run.vcpu)
            else:
                host_vcpus.setdefault(run.node, set())
        arrivals: dict[tuple[int, str], float] = {}
        for x in trace.transfers:
            src = measured.get(TaskId(x.task))
            if src is None or x.src_node == x.dst_node:
                continue
            outputs.setdefault(keys[TaskId(x.task)], {}).setdefault(normal_path(x.path), []).append(x.bytes)
            arrived = _arrival(x, job, measured)
            began = src.finish if src.finish <= arrived else x.start
            points.setdefault((x.src_node, x.dst_node), []).append((x.bytes / 1e6, max(0.0, arrived - began)))
            k = (x.task, x.dst_node)
            arrivals[k] = max(arrivals.get(k, 0.0), arrived)
        if job is not None:
            for node, gap in _handoffs(job, measured, arrivals):
                points.setdefault((node, node), []).append((0.0, gap))
    functions = tuple(
        FunctionCosts(
            job_id=key[0],
            task_id=key[1],
            key=key[2],
            label=labels.get(key, ""),
            seconds={h: tuple(round(v, 6) for v in vs) for h, vs in sorted(by_host.items())},
            outputs={p: int(statistics.median(sizes)) for p, sizes in sorted(outputs.get(key, {}).items())},
        )
        for key, by_host in sorted(samples.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or ""))
    )
    hosts = tuple(HostCosts(h, tuple(sorted(v))) for h, v in sorted(host_vcpus.items()))
    links = tuple(fit_link(src, dst, pts) for (src, dst), pts in sorted(points.items()))
    return Calibration(MeasuredCosts(functions, hosts, links, tuple(runs)), tuple(notes))


def _function_id(source: str, trace: Trace, job: Job | None, job_source: str,
                 tid: TaskId) -> tuple[int, int, str | None]:
    if job is None:
        return trace.job_id, int(tid), None
    task = job.by_id.get(tid)
    if task is None:
        raise InputError(source, "$.tasks", f"function {tid} of job {trace.job_id} is not in the job file {job_source}")
    return trace.job_id, int(tid), function_key(task)


def _arrival(x: TransferRun, job: Job | None, measured: Mapping[TaskId, TaskRun]) -> float:
    """When file ``x`` was at its destination: the trace's end of the transfer, or earlier if a
    function there that reads it (the job says which) had already started."""
    arrived = x.finish
    if job is None:
        return arrived
    path = normal_path(x.path)
    for succ in job.succs.get(TaskId(x.task), ()):
        reader = measured.get(succ)
        edge = job.edges[(TaskId(x.task), succ)]
        if reader is not None and reader.node == x.dst_node and path in {normal_path(f) for f in edge.files}:
            arrived = min(arrived, reader.start)
    return arrived


def _handoffs(job: Job, measured: Mapping[TaskId, TaskRun],
              arrivals: Mapping[tuple[int, str], float]) -> Iterable[tuple[str, float]]:
    """(node, gap) for each function whose last wait was a predecessor on its own node."""
    by_vcpu: dict[tuple[str, str], list[TaskRun]] = {}
    for run in measured.values():
        by_vcpu.setdefault((run.node, run.vcpu), []).append(run)
    for tid, run in measured.items():
        preds = job.preds.get(tid, ())
        if not preds or any(p not in measured for p in preds):
            continue
        local = max((measured[p].finish for p in preds if measured[p].node == run.node), default=None)
        if local is None:
            continue
        remote = max((arrivals.get((int(p), run.node), measured[p].finish)
                      for p in preds if measured[p].node != run.node), default=0.0)
        busy = max((r.finish for r in by_vcpu[(run.node, run.vcpu)] if r.start < run.start), default=0.0)
        if local >= remote and local >= busy and run.start >= local:
            yield run.node, run.start - local


def fit_link(src: str, dst: str, pts: Sequence[tuple[float, float]]) -> LinkCosts:
    """The least-squares line of ``(MB, seconds)`` points (rules in the module docstring)."""
    n = len(pts)
    mb = [p[0] for p in pts]
    secs = [p[1] for p in pts]
    mean_mb = sum(mb) / n
    mean_s = sum(secs) / n
    if src == dst:
        return LinkCosts(src, dst, n, float(statistics.median(secs)), None, 0.0, mean_s)
    lo, hi = min(mb), max(mb)
    if n < 2 or hi <= 0 or hi - lo < SPREAD * hi:
        return LinkCosts(src, dst, n, None, None, mean_mb, mean_s)
    var = sum((x - mean_mb) ** 2 for x in mb)
    cov = sum((x - mean_mb) * (y - mean_s) for x, y in zip(mb, secs))
    slope = cov / var
    if slope <= 0:
        return LinkCosts(src, dst, n, mean_s, None, mean_mb, mean_s)
    intercept = mean_s - slope * mean_mb
    if intercept < 0:
        slope = sum(x * y for x, y in zip(mb, secs)) / sum(x * x for x in mb)
        intercept = 0.0
    return LinkCosts(src, dst, n, intercept, 1.0 / slope, mean_mb, mean_s)
