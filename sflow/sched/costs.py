"""Costs and ranks shared by every scheduler, the validator and the simulator.

* mean execution time of a task over the processors, and mean communication cost of an edge
  (Topcuoglu et al. 2002: the data size over the average transfer rate — here the mean of the
  per-pair cost over ordered pairs of *distinct* processors, so that a same-host pair counts as free);
* upward rank (b-level) and downward rank (t-level) for any node and edge weights;
* the OCT table of PEFT (Arabnejad & Barbosa 2014);
* the critical-path lower bound and the sequential time (the SLR and speedup denominators,
  see :func:`sflow.sched.simulate.measure`);
* the ready-list order: the ready task with the best key next, ties to the lowest index.

Ranks are compared after rounding to :data:`RANK_DIGITS` decimals, so that sums that are equal in
exact arithmetic (80 = 14.333… + 23 + 42.666… = 12.666… + 27 + 40.333…) tie instead of being
ordered by floating-point noise.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

import numpy as np

from sflow.sched.problem import FloatArray, Link, Problem, segments

RANK_DIGITS = 9


def mean_exec(problem: Problem) -> FloatArray:
    """w̄_i: each task's execution time averaged over the processors."""
    result: FloatArray = problem.exec_time.mean(axis=1)
    return result


def _mean_off_diagonal(matrix: FloatArray) -> float:
    m = matrix.shape[0]
    if m < 2:
        return 0.0
    return float((matrix.sum() - np.trace(matrix)) / (m * (m - 1)))


def mean_inv_bw(problem: Problem) -> float:
    """The mean per-unit communication cost over ordered pairs of distinct processors (0 if m = 1)."""
    return _mean_off_diagonal(problem.inv_bw)


def mean_comm(problem: Problem) -> FloatArray:
    """c̄_e: each edge's mean communication cost (size × mean per-unit cost + mean latency, over
    ordered pairs of distinct processors)."""
    result: FloatArray = problem.edge_data * mean_inv_bw(problem) + _mean_off_diagonal(problem.latency)
    return result


def upward_rank(problem: Problem, node_w: FloatArray, edge_w: FloatArray) -> FloatArray:
    """rank_u(i) = w_i + max over successors s of (c_(i,s) + rank_u(s)); the b-level.

    Computed a wave of tasks at a time (:attr:`Problem.exit_waves`), with the same additions and
    comparisons as task by task, so the same numbers."""
    n = problem.n_tasks
    w = np.asarray(node_w, dtype=np.float64)
    c = np.asarray(edge_w, dtype=np.float64)
    dst = problem.edge_dst
    ptr = np.searchsorted(problem.edge_src, np.arange(n + 1))
    rank = np.zeros(n)
    for wave in problem.exit_waves:
        counts = ptr[wave + 1] - ptr[wave]
        best = np.zeros(len(wave))
        edges = segments(ptr, wave)
        if edges.size:
            has = counts > 0
            values = c[edges] + rank[dst[edges]]
            best[has] = np.maximum.reduceat(values, (np.cumsum(counts) - counts)[has])
            np.maximum(best, 0.0, out=best)
        rank[wave] = w[wave] + best
    return rank


def downward_rank(problem: Problem, node_w: FloatArray, edge_w: FloatArray) -> FloatArray:
    """rank_d(i) = max over predecessors p of (rank_d(p) + w_p + c_(p,i)); the t-level (0 at entries)."""
    w = node_w.tolist()
    c = edge_w.tolist()
    r = [0.0] * problem.n_tasks
    for i in problem.order:
        best = 0.0
        for p, e in problem.preds[i]:
            v = r[p] + w[p] + c[e]
            if v > best:
                best = v
        r[i] = best
    return np.array(r, dtype=np.float64)


def mean_upward_rank(problem: Problem) -> FloatArray:
    """HEFT's rank_u with mean execution and communication costs."""
    return upward_rank(problem, mean_exec(problem), mean_comm(problem))


def mean_downward_rank(problem: Problem) -> FloatArray:
    """CPOP's rank_d with mean execution and communication costs."""
    return downward_rank(problem, mean_exec(problem), mean_comm(problem))


def oct_table(problem: Problem) -> FloatArray:
    """PEFT's optimistic cost table, n × m.

    OCT(i, p) = max over successors s of min over processors q of
    [OCT(s, q) + w(s, q) + (0 if q == p else c̄_(i,s))], and OCT(exit, p) = 0.
    """
    n, m = problem.exec_time.shape
    table = np.zeros((n, m))
    cbar = mean_comm(problem)
    for i in reversed(problem.order):
        succs = problem.succs[i]
        if not succs:
            continue
        row = np.zeros(m)
        for s, e in succs:
            v = table[s] + problem.exec_time[s]
            np.maximum(row, np.minimum(v, v.min() + cbar[e]), out=row)
        table[i] = row
    return table


def critical_path_lower_bound(problem: Problem) -> float:
    """The longest path with each task weighted by its minimum execution time and free edges.

    No schedule can be shorter; it is the SLR denominator (the sum of the minimum execution times
    along CP_MIN, Topcuoglu et al. 2002).
    """
    if problem.n_tasks == 0:
        return 0.0
    zero = np.zeros(len(problem.edge_data))
    return float(upward_rank(problem, problem.exec_time.min(axis=1), zero).max())


def fastest_processor(problem: Problem) -> int:
    """The processor that runs the whole job alone soonest (lowest index on a tie)."""
    return int(np.argmin(problem.exec_time.sum(axis=0)))


def sequential_time(problem: Problem) -> float:
    """The time to run every task one after another on the fastest processor."""
    return float(problem.exec_time.sum(axis=0).min())


def rank_key(rank: FloatArray) -> list[float]:
    """Ranks rounded for comparison (see the module docstring)."""
    rounded: list[float] = np.round(rank, RANK_DIGITS).tolist()
    return rounded


def ready_list_order(problem: Problem, keys: Sequence[Any]) -> list[int]:
    """Tasks in list-scheduling order: repeatedly the ready task with the smallest ``keys[i]``,
    ties to the lowest index. Always a topological order."""
    n = problem.n_tasks
    # When sorting by key (ties to the lower index) already gives a topological order, it is the
    # ready-list order: each task in it is ready when its turn comes and has the smallest key
    # among the ready ones. HEFT's ranks are, whenever every task takes some time.
    by_key = sorted(range(n), key=keys.__getitem__)
    pos = np.empty(n, dtype=np.int64)
    pos[by_key] = np.arange(n)
    if bool((pos[problem.edge_src] < pos[problem.edge_dst]).all()):
        return by_key
    indeg = [len(p) for p in problem.preds]
    heap = [(keys[i], i) for i in range(n) if indeg[i] == 0]
    heapq.heapify(heap)
    out: list[int] = []
    while heap:
        _, i = heapq.heappop(heap)
        out.append(i)
        for s, _ in problem.succs[i]:
            indeg[s] -= 1
            if indeg[s] == 0:
                heapq.heappush(heap, (keys[s], s))
    return out


def dominant_predecessor(problem: Problem, i: int, tlevel: Sequence[float], node_w: Sequence[float],
                         edge_w: Sequence[float]) -> Link | None:
    """The (predecessor, edge) whose data arrives last under the given levels (lowest index on a tie)."""
    best = best_e = -1
    best_v = -1.0
    for p, e in problem.preds[i]:
        v = tlevel[p] + node_w[p] + edge_w[e]
        if v > best_v:
            best, best_e, best_v = p, e, v
    return (best, best_e) if best >= 0 else None
