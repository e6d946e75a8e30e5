"""The scheduling problem every scheduler works on: tasks, processors, costs and the DAG.

A :class:`Problem` is built either from an (Environment, Job) pair or from a task × processor cost
matrix with communication costs, so that published worked examples can be checked directly.

Indices: tasks are numbered 0..n-1 in ascending task id, processors 0..m-1 in declaration order
(the environment's schedulable vCPUs). Lower indices win ties everywhere.

Costs:

* ``exec_time[i, p]`` — seconds task ``i`` runs on processor ``p`` (workload MI / MIPS).
* Communication of edge ``e`` from processor ``p`` to ``q`` costs
  ``edge_data[e] * inv_bw[p, q] + latency[p, q]``: for an environment ``edge_data`` is the size in
  MB and ``inv_bw`` is seconds per MB as :meth:`Environment.transfer_time` charges it (0 on one
  host, the smaller host NIC within a DC, the smallest DC or host bandwidth across DCs), with no
  latency; for a matrix problem ``edge_data`` is the cost itself and ``inv_bw`` is 1 between
  distinct processors, 0 on the same one.
* With measured costs (:class:`~sflow.model.costs.MeasuredCosts`, from ``sflow calibrate``) the
  same arrays hold what :class:`~sflow.model.costs.CostModel` resolves: measured execution times,
  measured edge sizes, and per node pair the measured seconds per MB and latency. Every scheduler
  and the simulator read only these arrays, so they use measured costs unchanged.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sflow.errors import ScheduleError
from sflow.model.costs import CostModel, MeasuredCosts
from sflow.model.infra import Environment, HostId, VcpuId
from sflow.model.workflow import Job, TaskId

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: (predecessor or successor task index, edge index)
Link = tuple[int, int]


@dataclass(frozen=True, slots=True, eq=False)
class Problem:
    """A DAG scheduling instance. Build it with :meth:`from_env_job` or :meth:`from_matrix`."""

    name: str
    task_ids: tuple[TaskId, ...]
    proc_ids: tuple[VcpuId, ...]
    exec_time: FloatArray
    edge_src: IntArray
    edge_dst: IntArray
    edge_data: FloatArray
    inv_bw: FloatArray
    #: the host of each processor (transfers inside one host are free)
    hosts: tuple[str, ...]
    #: the VM (or other grouping) of each processor
    vms: tuple[str, ...]
    #: relative speed of each processor: MIPS, or 1 / mean execution time for a matrix problem
    speed: FloatArray
    #: a topological order of task indices (smallest ready index first)
    order: tuple[int, ...]
    #: seconds every edge's data takes from processor p to q on top of its size (measured costs)
    latency: FloatArray
    #: task indices in waves from the exit tasks: every successor of a task is in an earlier
    #: wave (levels computed wave by wave take a few array operations per wave, not a loop per edge)
    exit_waves: tuple[IntArray, ...]
    #: ``preds`` and ``succs`` once asked (HEFT and the measures never ask: they read the arrays)
    _links: dict[str, tuple[tuple[Link, ...], ...]] = field(default_factory=dict, init=False, repr=False)

    @property
    def preds(self) -> tuple[tuple[Link, ...], ...]:
        """Each task's (predecessor, edge) pairs, in edge order."""
        return self._linked("preds", _pred_links)

    @property
    def succs(self) -> tuple[tuple[Link, ...], ...]:
        """Each task's (successor, edge) pairs, in edge order."""
        return self._linked("succs", _succ_links)

    def _linked(self, name: str, make: Callable[[int, IntArray, IntArray], tuple[tuple[Link, ...], ...]]
                ) -> tuple[tuple[Link, ...], ...]:
        links = self._links.get(name)
        if links is None:
            links = self._links[name] = make(self.n_tasks, self.edge_src, self.edge_dst)
        return links

    @property
    def n_tasks(self) -> int:
        return len(self.task_ids)

    @property
    def n_procs(self) -> int:
        return len(self.proc_ids)

    def comm(self, edge: int, p: int, q: int) -> float:
        """Seconds edge ``edge`` takes from processor ``p`` to processor ``q``."""
        return float(self.edge_data[edge] * self.inv_bw[p, q] + self.latency[p, q])

    def comm_from(self, edge: int, p: int) -> FloatArray:
        """Seconds edge ``edge`` takes from processor ``p`` to each processor (a vector)."""
        result: FloatArray = self.edge_data[edge] * self.inv_bw[p] + self.latency[p]
        return result

    def edge_costs(self, procs: IntArray) -> FloatArray:
        """Every edge's communication time when task ``i`` runs on processor ``procs[i]``."""
        src, dst = procs[self.edge_src], procs[self.edge_dst]
        result: FloatArray = self.edge_data * self.inv_bw[src, dst] + self.latency[src, dst]
        return result

    def task_index(self) -> dict[TaskId, int]:
        return {t: i for i, t in enumerate(self.task_ids)}

    def proc_index(self) -> dict[VcpuId, int]:
        return {p: k for k, p in enumerate(self.proc_ids)}

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_env_job(cls, env: Environment, job: Job, name: str = "<env>",
                     costs: MeasuredCosts | None = None) -> Problem:
        """The problem of scheduling ``job`` on ``env``'s schedulable vCPUs, with ``costs``
        measured on earlier runs when given (see :mod:`sflow.model.costs`).

        ``name`` names the environment in errors. An environment whose vCPUs all lack a VM is a
        :class:`ScheduleError`.
        """
        vcpus = env.schedulable
        if not vcpus:
            raise ScheduleError(f"{name}: no vCPU of the environment belongs to a VM, so nothing can be scheduled")
        task_ids = tuple(sorted(job.by_id))
        index = {t: i for i, t in enumerate(task_ids)}
        workload = np.array([job.by_id[t].workload for t in task_ids], dtype=np.float64)
        mips = np.array([v.mips for v in vcpus], dtype=np.float64)
        exec_time = workload[:, None] / mips[None, :]
        # Seconds per MB between hosts, computed once per host pair with the environment's own rule.
        host_list: list[HostId] = []
        host_pos: dict[HostId, int] = {}
        rep: list[VcpuId] = []
        for v in vcpus:
            if v.host_id not in host_pos:
                host_pos[v.host_id] = len(host_list)
                host_list.append(v.host_id)
                rep.append(v.id)
        h = len(host_list)
        host_inv = np.zeros((h, h), dtype=np.float64)
        for a in range(h):
            for b in range(h):
                host_inv[a, b] = env.transfer_time(1.0, rep[a], rep[b])
        proc_host = np.array([host_pos[v.host_id] for v in vcpus], dtype=np.int64)
        inv_bw = host_inv[np.ix_(proc_host, proc_host)]
        latency = None
        if costs is not None:
            exec_time, inv_bw, latency, edges = _measured(CostModel(env, job, costs), task_ids, index)
        else:
            edges = _edge_arrays(task_ids, job.succs, job.succ_sizes)
        return cls._build(
            name=name,
            task_ids=task_ids,
            proc_ids=tuple(v.id for v in vcpus),
            exec_time=exec_time,
            edges=edges,
            inv_bw=inv_bw,
            latency=latency,
            hosts=tuple(v.host_id for v in vcpus),
            vms=tuple(env.vm_of_vcpu[v.id] for v in vcpus),
            speed=mips,
            # Indices ascend with task ids, so the job's own topological order (smallest ready id
            # first) is this problem's order; a cyclic job's is short, which _build reports.
            order=[index[t] for t in job.order],
        )

    @classmethod
    def from_matrix(
        cls,
        costs: Sequence[Sequence[float]] | FloatArray,
        edges: Mapping[tuple[int, int], float],
        *,
        task_ids: Sequence[int] | None = None,
        proc_ids: Sequence[str] | None = None,
        link: Sequence[Sequence[float]] | FloatArray | None = None,
        name: str = "<matrix>",
    ) -> Problem:
        """A problem given as a task × processor cost matrix and edge communication costs.

        ``edges`` maps (source task id, destination task id) to the communication cost paid when the
        two tasks run on different processors (free on the same one). ``link[p][q]`` optionally
        scales that cost per processor pair (default: 1 off the diagonal, 0 on it). Task ids default
        to 1..n in row order, processor ids to ``P1``..``Pm``; every processor is its own host and VM.
        """
        matrix = np.array(costs, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
            raise ScheduleError(f"{name}: the cost matrix must be a non-empty task × processor table")
        if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
            raise ScheduleError(f"{name}: costs must be finite and non-negative")
        n, m = matrix.shape
        ids = tuple(TaskId(t) for t in (task_ids if task_ids is not None else range(1, n + 1)))
        procs = tuple(VcpuId(p) for p in (proc_ids if proc_ids is not None else [f"P{k + 1}" for k in range(m)]))
        if len(ids) != n or len(set(ids)) != n or len(procs) != m or len(set(procs)) != m:
            raise ScheduleError(f"{name}: task ids and processor ids must be unique and match the matrix shape")
        order = sorted(range(n), key=lambda i: ids[i])
        pos = {ids[i]: k for k, i in enumerate(order)}
        matrix = matrix[order]
        ids = tuple(ids[i] for i in order)
        try:
            edge_list = _edge_lists(sorted((pos[TaskId(s)], pos[TaskId(d)], float(c)) for (s, d), c in edges.items()))
        except KeyError as exc:
            raise ScheduleError(f"{name}: an edge names unknown task {exc.args[0]}") from None
        inv = np.ones((m, m)) - np.eye(m) if link is None else np.array(link, dtype=np.float64)
        if inv.shape != (m, m):
            raise ScheduleError(f"{name}: the link matrix must be {m} × {m}")
        mean = matrix.mean(axis=0)
        speed = np.where(mean > 0, 1.0 / np.where(mean > 0, mean, 1.0), np.inf)
        return cls._build(
            name=name,
            task_ids=ids,
            proc_ids=procs,
            exec_time=matrix,
            edges=edge_list,
            inv_bw=inv,
            hosts=tuple(str(p) for p in procs),
            vms=tuple(str(p) for p in procs),
            speed=speed,
        )

    @classmethod
    def _build(
        cls,
        *,
        name: str,
        task_ids: tuple[TaskId, ...],
        proc_ids: tuple[VcpuId, ...],
        exec_time: FloatArray,
        edges: Edges,
        inv_bw: FloatArray,
        hosts: tuple[str, ...],
        vms: tuple[str, ...],
        speed: FloatArray,
        order: list[int] | None = None,
        latency: FloatArray | None = None,
    ) -> Problem:
        """``edges``: source and destination indices and data, sorted by (source, destination)."""
        n = len(task_ids)
        src, dst, data = edges
        by_dst = np.argsort(dst, kind="stable")
        p_ptr = np.searchsorted(dst[by_dst], np.arange(n + 1))
        if order is None:
            order = _topological(n, _pred_links(n, src, dst), _succ_links(n, src, dst))
        if len(order) != n:
            raise ScheduleError(f"{name}: the task graph has a cycle")
        return cls(
            name=name,
            task_ids=task_ids,
            proc_ids=proc_ids,
            exec_time=np.ascontiguousarray(exec_time, dtype=np.float64),
            edge_src=src,
            edge_dst=dst,
            edge_data=data,
            inv_bw=np.ascontiguousarray(inv_bw, dtype=np.float64),
            hosts=hosts,
            vms=vms,
            speed=np.asarray(speed, dtype=np.float64),
            order=tuple(order),
            latency=np.zeros_like(inv_bw, dtype=np.float64) if latency is None
            else np.ascontiguousarray(latency, dtype=np.float64),
            exit_waves=_exit_waves(n, src, by_dst, p_ptr),
        )


#: edge sources, destinations (task indices) and data, sorted by (source, destination)
Edges = tuple[IntArray, IntArray, FloatArray]


def _edge_arrays(task_ids: tuple[TaskId, ...], succs: Mapping[TaskId, tuple[TaskId, ...]],
                 sizes: Mapping[TaskId, tuple[float, ...]]) -> Edges:
    """The edges of a job given as each task's successors and their sizes (in the same order),
    with ids turned into indices (``task_ids`` is sorted) and sorted by (source, destination)."""
    ids = np.array(task_ids, dtype=np.int64)
    counts = np.fromiter(map(len, succs.values()), dtype=np.int64, count=len(succs))
    total = int(counts.sum())
    sources = np.repeat(np.fromiter(succs.keys(), dtype=np.int64, count=len(succs)), counts)
    dests = np.fromiter(itertools.chain.from_iterable(succs.values()), dtype=np.int64, count=total)
    values = np.fromiter(itertools.chain.from_iterable(sizes[t] for t in succs), dtype=np.float64, count=total)
    src = np.searchsorted(ids, sources)
    dst = np.searchsorted(ids, dests)
    by = np.lexsort((dst, src))
    return src[by], dst[by], values[by]


def _edge_lists(edges: list[tuple[int, int, float]]) -> Edges:
    """Sorted (source, destination, data) triples as arrays."""
    return (np.array([s for s, _, _ in edges], dtype=np.int64), np.array([d for _, d, _ in edges], dtype=np.int64),
            np.array([c for _, _, c in edges], dtype=np.float64))


def _measured(model: CostModel, task_ids: tuple[TaskId, ...], index: Mapping[TaskId, int]
              ) -> tuple[FloatArray, FloatArray, FloatArray, Edges]:
    """Execution times, seconds per MB, latencies and edges as measured costs resolve them."""
    vcpus = [v.id for v in model.env.schedulable]
    exec_time = np.array([[model.exec_time(t, v) for v in vcpus] for t in task_ids], dtype=np.float64)
    m = len(vcpus)
    inv_bw = np.zeros((m, m))
    latency = np.zeros((m, m))
    for p, a in enumerate(vcpus):
        for q, b in enumerate(vcpus):
            latency[p, q], inv_bw[p, q] = model.link(a, b)
    edges = _edge_lists(sorted((index[s], index[d], model.edge_mb(s, d)) for (s, d) in model.job.edges))
    return exec_time, inv_bw, latency, edges


# Each task's links, in edge order, built from slices of the edges sorted by (source, destination)
# (a Python loop per edge costs seconds at 100,000 tasks): successors are contiguous as they are;
# predecessors once the edges are stably sorted by destination.


def _succ_links(n: int, src: IntArray, dst: IntArray) -> tuple[tuple[Link, ...], ...]:
    dst_list = dst.tolist()
    ptr = np.searchsorted(src, np.arange(n + 1)).tolist()
    return tuple(tuple(zip(dst_list[a:b], range(a, b))) for a, b in zip(ptr, ptr[1:]))


def _pred_links(n: int, src: IntArray, dst: IntArray) -> tuple[tuple[Link, ...], ...]:
    by_dst = np.argsort(dst, kind="stable")
    p_src, p_edge = src[by_dst].tolist(), by_dst.tolist()
    ptr = np.searchsorted(dst[by_dst], np.arange(n + 1)).tolist()
    return tuple(tuple(zip(p_src[a:b], p_edge[a:b])) for a, b in zip(ptr, ptr[1:]))


def segments(ptr: IntArray, rows: IntArray) -> IntArray:
    """The positions ``ptr[r]:ptr[r + 1]`` of every row ``r`` of ``rows``, one after another
    (the entries of those rows of a compressed sparse row structure)."""
    starts = ptr[rows]
    counts = ptr[rows + 1] - starts
    total = int(counts.sum())
    offsets = np.cumsum(counts) - counts  # where each row's entries begin in the result
    result: IntArray = np.repeat(starts - offsets, counts) + np.arange(total)
    return result


def _exit_waves(n: int, src: IntArray, by_dst: IntArray, p_ptr: IntArray) -> tuple[IntArray, ...]:
    """Kahn's algorithm backwards, a wave at a time: the exit tasks, then the tasks all of whose
    successors are in the waves so far, and so on (``by_dst``: the edges sorted by destination,
    ``p_ptr`` where each destination's begin). Tasks on a cycle are left out."""
    remaining = np.bincount(src, minlength=n)  # successors not yet in a wave
    pred_src = src[by_dst]
    wave = np.flatnonzero(remaining == 0)
    waves = []
    while wave.size:
        waves.append(wave)
        preds = pred_src[segments(p_ptr, wave)]
        if not preds.size:
            break
        remaining -= np.bincount(preds, minlength=n)
        candidates = np.unique(preds)
        wave = candidates[remaining[candidates] == 0]
    return tuple(waves)


def _topological(n: int, preds: Sequence[Sequence[Link]], succs: Sequence[Sequence[Link]]) -> list[int]:
    """Kahn's algorithm, smallest ready index first; tasks on a cycle are left out."""
    indeg = [len(p) for p in preds]
    ready = [i for i in range(n) if indeg[i] == 0]
    heapq.heapify(ready)
    out: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        out.append(i)
        for s, _ in succs[i]:
            indeg[s] -= 1
            if indeg[s] == 0:
                heapq.heappush(ready, s)
    return out
