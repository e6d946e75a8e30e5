"""The scheduler base class and the processor timelines every list scheduler places tasks on.

:class:`Timelines` keeps, per processor, the time it becomes free and its idle gaps, and answers
"when can task i start on processor p": after every predecessor's finish plus the transfer from the
predecessor's processor (data-ready time, computed for all processors at once as a vector), either
appended after the processor's last task or, with insertion, in the earliest idle gap that fits
(Topcuoglu et al. 2002, insertion-based policy). A zero-length task goes into a gap or at the end,
never between two back-to-back tasks: still valid, occasionally not the earliest instant.

Tie rule, used by every scheduler: the smallest finish time (or the algorithm's own key), then the
lowest processor index (declaration order of the schedulable vCPUs).
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from sflow.model.schedule import Schedule, Slot
from sflow.sched.problem import FloatArray, Problem


#: tasks whose data-ready times :meth:`Timelines.place_in_order` computes together, at most
BATCH = 256


class Scheduler(ABC):
    """One scheduling algorithm. Subclasses set ``name`` and implement :meth:`schedule`."""

    name: ClassVar[str]
    #: a one-line description of the algorithm
    summary: ClassVar[str]

    @abstractmethod
    def schedule(self, problem: Problem) -> Schedule:
        """Map every task to a processor with start and finish times."""


class Timelines:
    """Placement state of a schedule being built: where and when each task runs, and per processor
    the end of its last task and its idle gaps (disjoint, sorted)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        n, m = problem.exec_time.shape
        self.proc = [-1] * n
        self.start = [0.0] * n
        self.finish = [0.0] * n
        self.avail = np.zeros(m)
        self._gap_start: list[list[float]] = [[] for _ in range(m)]
        self._gap_end: list[list[float]] = [[] for _ in range(m)]
        # An upper bound of each processor's longest gap: a cheap filter before searching gaps.
        self._max_gap = np.zeros(m)
        self._exec = problem.exec_time
        self._data = problem.edge_data.tolist()
        self._inv = problem.inv_bw
        # Latency is zero unless the costs were measured: skip it then.
        self._lat = problem.latency if problem.latency.any() else None

    # -- data-ready times -----------------------------------------------------------------------

    def ready(self, i: int) -> FloatArray:
        """The time all of task i's inputs can be on each processor (a vector over processors)."""
        r = np.zeros(self.problem.n_procs)
        lat = self._lat
        for p, e in self.problem.preds[i]:
            q = self.proc[p]
            arrival = self.finish[p] + self._data[e] * self._inv[q]
            np.maximum(r, arrival if lat is None else arrival + lat[q], out=r)
        return r

    def ready_on(self, i: int, k: int) -> float:
        """The time all of task i's inputs can be on processor k."""
        r = 0.0
        lat = self._lat
        for p, e in self.problem.preds[i]:
            t = self.finish[p] + self._data[e] * float(self._inv[self.proc[p], k])
            if lat is not None:
                t += float(lat[self.proc[p], k])
            if t > r:
                r = t
        return r

    # -- start times ----------------------------------------------------------------------------

    def _gap_fit(self, k: int, ready: float, dur: float, limit: float) -> float | None:
        """The earliest start ≥ ready in an idle gap of processor k that holds ``dur`` and starts
        before ``limit``; None if there is none."""
        gs, ge = self._gap_start[k], self._gap_end[k]
        j = bisect.bisect_left(ge, ready + dur)
        while j < len(gs) and gs[j] < limit:
            s = gs[j] if gs[j] > ready else ready
            if s + dur <= ge[j] and s < limit:
                return s
            j += 1
        return None

    def start_on(self, i: int, k: int, *, insertion: bool) -> float:
        """The earliest start of task i on processor k."""
        r = self.ready_on(i, k)
        end = float(self.avail[k])
        append = r if r > end else end
        if insertion and r < end:
            dur = float(self._exec[i, k])
            if self._max_gap[k] >= dur:
                fit = self._gap_fit(k, r, dur, append)
                if fit is not None:
                    return fit
        return append

    def best(self, i: int, *, insertion: bool, bias: FloatArray | None = None) -> tuple[int, float]:
        """The processor minimising finish time (+ ``bias``, e.g. PEFT's OCT) and the start there.
        Ties go to the lowest processor index."""
        r = self.ready(i)
        dur = self._exec[i]
        start = np.maximum(r, self.avail)
        key = start + dur
        if bias is not None:
            key = key + bias
        if insertion:
            bound = key.min()
            low = r + dur if bias is None else r + dur + bias
            cand = np.flatnonzero((r < self.avail) & (self._max_gap >= dur) & (low <= bound))
            for k in cand.tolist():
                fit = self._gap_fit(k, float(r[k]), float(dur[k]), float(start[k]))
                if fit is not None:
                    start[k] = fit
                    key[k] = fit + dur[k] + (0.0 if bias is None else bias[k])
        k = int(np.argmin(key))
        return k, float(start[k])

    def place_in_order(self, order: Sequence[int], *, insertion: bool, bias: FloatArray | None = None,
                       fixed: Mapping[int, int] | None = None) -> None:
        """Place each task of ``order`` (a topological order) where it finishes first (+ its row of
        ``bias``), as :meth:`best` chooses, or on its processor in ``fixed`` at its earliest start
        there.

        The same choices as calling :meth:`best` task by task, computed with fewer numpy calls:
        the data-ready times of a run of consecutive tasks none of which feeds another are one
        matrix operation (every input of the run is placed before it starts), and each task then
        costs a handful of vector operations over the processors."""
        p = self.problem
        n, m = p.exec_time.shape
        fixed = fixed or {}
        pos = np.empty(n, dtype=np.int64)
        pos[np.asarray(order, dtype=np.int64)] = np.arange(len(order))
        # Each task's inputs (edges), grouped by their destination's position in ``order``.
        epos = pos[p.edge_dst]
        by = np.argsort(epos, kind="stable")
        e_src = p.edge_src[by]
        e_data = p.edge_data[by][:, None]
        eptr = np.searchsorted(epos[by], np.arange(len(order) + 1)).tolist()
        # The last position among each task's predecessors (-1: none), by position.
        last = np.full(n, -1, dtype=np.int64)
        np.maximum.at(last, p.edge_dst, pos[p.edge_src])
        last_in_order = last[np.asarray(order, dtype=np.int64)].tolist()
        proc_a = np.zeros(n, dtype=np.int64)
        finish_a = np.zeros(n)
        order_a = np.asarray(order, dtype=np.int64)
        inv, lat, exe = self._inv, self._lat, self._exec
        avail, max_gap = self.avail, self._max_gap
        start = np.empty(m)
        key = np.empty(m)
        fits = np.empty(m, dtype=bool)
        also = np.empty(m, dtype=bool)
        proc, finish = self.proc, self.finish
        t = 0
        while t < len(order):
            # The run: from t while no task's predecessor is inside it (at most BATCH tasks).
            end = t + 1
            while end < len(order) and end - t < BATCH and last_in_order[end] < t:
                end += 1
            ready = np.zeros((end - t, m))
            a, b = eptr[t], eptr[end]
            if a < b:
                src = e_src[a:b]
                q = proc_a[src]
                arrival = inv[q]
                arrival *= e_data[a:b]
                arrival += finish_a[src][:, None]
                if lat is not None:
                    arrival += lat[q]
                counts = np.diff(eptr[t:end + 1])
                has = counts > 0
                ready[has] = np.maximum.reduceat(arrival, (np.asarray(eptr[t:end]) - a)[has], axis=0)
            run = order_a[t:end]
            # The run's execution times, and with insertion the earliest finish each task could
            # have anywhere (ready + duration, + bias): one matrix operation each for the run.
            durs = exe[run]
            lows = ready + durs
            if bias is not None:
                lows += bias[run]
            for j in range(end - t):
                i = order[t + j]
                r = ready[j]
                k = fixed.get(i) if fixed else None
                if k is not None:
                    self.place_on(i, k, insertion=insertion)
                    continue
                dur = durs[j]
                np.maximum(r, avail, out=start)
                np.add(start, dur, out=key)
                if bias is not None:
                    key += bias[i]
                k = int(key.argmin())
                if insertion:
                    # Processors where a gap might finish the task no later: it could start
                    # before the processor's end, and the processor has a gap that long.
                    np.less_equal(lows[j], key[k], out=fits)
                    np.less(r, avail, out=also)
                    fits &= also
                    np.greater_equal(max_gap, dur, out=also)
                    fits &= also
                    found = fits.nonzero()[0]
                    if found.size:
                        for c in found.tolist():
                            fit = self._gap_fit(c, float(r[c]), float(dur[c]), float(start[c]))
                            if fit is not None:
                                start[c] = fit
                                key[c] = fit + dur[c] + (0.0 if bias is None else bias[i][c])
                        k = int(key.argmin())
                self.place(i, k, float(start[k]))
            # No task of the run feeds another: where they went matters from the next run on.
            placed = order[t:end]
            proc_a[run] = [proc[i] for i in placed]
            finish_a[run] = [finish[i] for i in placed]
            t = end

    # -- placing --------------------------------------------------------------------------------

    def place(self, i: int, k: int, start: float) -> None:
        """Put task i on processor k at ``start`` (a time from :meth:`start_on` or :meth:`best`)."""
        finish = start + float(self._exec[i, k])
        self.proc[i] = k
        self.start[i] = start
        self.finish[i] = finish
        end = float(self.avail[k])
        gs, ge = self._gap_start[k], self._gap_end[k]
        if start >= end:
            if start > end:
                gs.append(end)
                ge.append(start)
                if start - end > self._max_gap[k]:
                    self._max_gap[k] = start - end
            self.avail[k] = finish
            return
        j = bisect.bisect_right(gs, start) - 1
        g0, g1 = gs[j], ge[j]
        pieces = [(a, b) for a, b in ((g0, start), (finish, g1)) if b > a]
        gs[j : j + 1] = [a for a, _ in pieces]
        ge[j : j + 1] = [b for _, b in pieces]
        if g1 - g0 >= self._max_gap[k]:
            self._max_gap[k] = max((b - a for a, b in zip(gs, ge)), default=0.0)

    def place_on(self, i: int, k: int, *, insertion: bool) -> None:
        """Put task i on processor k at its earliest start there."""
        self.place(i, k, self.start_on(i, k, insertion=insertion))

    def to_schedule(self, algorithm: str) -> Schedule:
        p = self.problem
        slots = {
            p.task_ids[i]: Slot(p.task_ids[i], p.proc_ids[self.proc[i]], self.start[i], self.finish[i])
            for i in range(p.n_tasks)
        }
        return Schedule(algorithm, slots)


def schedule_in_order(problem: Problem, algorithm: str, order: list[int], procs: list[int],
                      *, insertion: bool) -> Schedule:
    """List-schedule a fixed placement: tasks in ``order`` (topological), each on ``procs[i]``."""
    tl = Timelines(problem)
    for i in order:
        tl.place_on(i, procs[i], insertion=insertion)
    return tl.to_schedule(algorithm)
