"""best: a portfolio of schedulers, then local search on the best schedule's critical path.

1. **Portfolio.** HEFT first (so ``best`` is never worse than HEFT), PEFT, six variants of HEFT's
   upward rank (:class:`~sflow.sched.heft.HeftVariant`: which rank suits an instance varies by
   several percent, Zhao & Sakellariou 2003), then every other registered algorithm. The shortest
   schedule wins (ties: portfolio order). A member is skipped when 1.5 times the slowest member so
   far would overrun the budget.
2. **Local search** (iterated, first improvement). A solution is a vCPU per task and a priority per
   task, decoded by insertion-based list scheduling (the ready task of smallest priority first, at
   its earliest start on its vCPU, gaps included); with a schedule's start times as priorities the
   decoding is never longer than that schedule. The critical path is followed back from the last
   task to finish, through the input that arrived last or, when the task waited for its vCPU, the
   task before it there. For each task on it the search tries

   * moving it to another vCPU — the few where it would finish soonest, and sooner than now;
   * moving it together with its successor on the path (re-insertion with one step of lookahead:
     the pair stays together, so their transfer becomes free), or onto that successor's vCPU;
   * swapping vCPUs with the task that overlaps it most on the best such vCPU;
   * running its path successor before it when that successor only waited for the vCPU;

   and keeps the first change that shortens the makespan, or keeps it and lowers the sum of finish
   times (a strict order, so each descent ends). At a local optimum the priorities are reset to
   the start times (never worse; the descent goes on if it helped); then the search restarts,
   alternately from HEFT's placement with ±10 % noise on the winner's rank and from the best
   solution with a few tasks moved to random vCPUs (:class:`random.Random` seeded by ``seed``),
   until the budget is spent or 200 restarts in a row found nothing better. The best solution found
   is returned; a candidate only re-decodes the part of the order after the first task it changes.

Iterated local search (H. R. Lourenço, O. C. Martin, T. Stützle, "Iterated local search", Handbook
of Metaheuristics, 2003) over a list-scheduling encoding (Y.-K. Kwok, I. Ahmad, "Static scheduling
algorithms for allocating directed task graphs to multiprocessors", ACM CSUR 31(4), 1999).

Time: ``clock`` (seconds, e.g. :func:`time.perf_counter` passed in by the caller — this module reads
no clock of its own) bounds the whole run to ``budget_s``: each step starts only if 1.25 times
the slowest step of its kind so far still fits (1.5 times for portfolio members) within 98 % of the
budget (the rest is left to build the result); HEFT always runs, so a budget shorter than HEFT is overrun by
HEFT's time. Without a clock the search is bounded by ``max_evaluations`` instead. For a given seed
the same evaluations happen in the same order, so the result depends only on how many fit in the
budget; a small job's search ends by itself within it, whatever the machine's load.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from sflow.model.schedule import Schedule, Slot
from sflow.sched.base import Scheduler
from sflow.sched.costs import mean_upward_rank, ready_list_order
from sflow.sched.heft import HeftVariant, eft_schedule
from sflow.sched.problem import FloatArray, Problem

DEFAULT_BUDGET_S = 1.0
#: the local search's bound when there is no clock
DEFAULT_MAX_EVALUATIONS = 400
#: vCPUs tried per critical task
CANDIDATE_VCPUS = 3
#: relative tolerance when comparing times
TOLERANCE = 1e-9
#: perturbations in a row that find nothing better before the search stops early
MAX_STALE_RESTARTS = 200

#: portfolio members differ in speed: the next one must fit this many times the slowest so far
MEMBER_MARGIN = 1.5
#: the share of the budget kept for building the result
FINISH_RESERVE = 0.02
#: a search step must fit this many times the slowest of its kind (the machine's load varies)
STEP_MARGIN = 1.25
#: relative noise on priorities when the search restarts from a perturbed HEFT
RANK_NOISE = 0.1

Clock = Callable[[], float]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BestReport:
    """What :meth:`Best.run` did."""

    schedule: Schedule
    #: (algorithm, makespan) of each portfolio member that ran, in portfolio order
    portfolio: tuple[tuple[str, float], ...]
    #: members skipped to stay within the budget
    skipped: tuple[str, ...]
    #: the portfolio's winner, where the local search started
    start_from: str
    evaluations: int
    improvements: int


@dataclass(slots=True)
class _Solution:
    """A vCPU and a priority per task, and the schedule they decode to."""

    procs: list[int]
    keys: list[float]
    #: tasks in decoding order, and each task's position in it
    order: list[int]
    pos: list[int]
    start: list[float]
    finish: list[float]
    #: per vCPU, its tasks by start time
    on_proc: list[list[int]]
    makespan: float
    total: float


class _OutOfBudget(Exception):
    """The next evaluation would overrun the budget."""


class _Budget:
    """The deadline (or, without a clock, the evaluation cap) shared by every step of a run."""

    def __init__(self, clock: Clock | None, budget_s: float, max_evaluations: int | None) -> None:
        self.clock = clock
        self.began = clock() if clock is not None else 0.0
        # The last bit of the budget is left for turning the best solution into a schedule.
        self.deadline = self.began + budget_s * (1.0 - FINISH_RESERVE)
        self.max_evaluations = (
            max_evaluations if max_evaluations is not None
            else (None if clock is not None else DEFAULT_MAX_EVALUATIONS)
        )
        self.evaluations = 0
        #: once a step did not fit, nothing more runs (and the clock is not read again)
        self.expired = False
        self._slowest: dict[str, float] = {}
        #: kinds whose estimate is a guess, replaced by the first measurement
        self._guessed: set[str] = set()

    def guess(self, kind: str, seconds: float) -> None:
        """Estimate a kind of step not run yet (so that its first run, too, must fit)."""
        if kind not in self._slowest:
            self._slowest[kind] = seconds
            self._guessed.add(kind)

    def _record(self, kind: str, seconds: float) -> None:
        if kind in self._guessed:
            self._guessed.discard(kind)
            self._slowest[kind] = seconds
        else:
            self._slowest[kind] = max(self._slowest.get(kind, 0.0), seconds)

    def step(self, kind: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` if the slowest step of its kind so far still fits; count it."""
        if self.expired or (self.max_evaluations is not None and self.evaluations >= self.max_evaluations):
            raise _OutOfBudget
        if self.clock is None:
            self.evaluations += 1
            return fn()
        now = self.clock()
        if now + STEP_MARGIN * self._slowest.get(kind, 0.0) > self.deadline:
            self.expired = True
            raise _OutOfBudget
        result = fn()
        self._record(kind, self.clock() - now)
        self.evaluations += 1
        return result

    def slowest(self, kind: str) -> float:
        return self._slowest.get(kind, 0.0)

    def fits(self, kind: str, margin: float = 1.0) -> bool:
        """Whether a step ``margin`` times as slow as the slowest of ``kind`` so far still fits."""
        if self.clock is None:
            return True
        if not self.expired and self.clock() + margin * self._slowest.get(kind, 0.0) > self.deadline:
            self.expired = True
        return not self.expired

    def timed(self, kind: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` whatever the budget, recording its time under ``kind``."""
        if self.clock is None:
            return fn()
        now = self.clock()
        result = fn()
        self._record(kind, self.clock() - now)
        return result


class Best(Scheduler):
    name = "best"
    summary = "portfolio of every algorithm, then critical-path local search within --budget-s"

    def __init__(self, members: Sequence[Scheduler], seed: int = 1, budget_s: float = DEFAULT_BUDGET_S,
                 clock: Clock | None = None, max_evaluations: int | None = None) -> None:
        """``members`` in the order they run, HEFT first (see the module docstring)."""
        self.members = tuple(members)
        self.seed = seed
        self.budget_s = budget_s
        self.clock = clock
        self.max_evaluations = max_evaluations

    def schedule(self, problem: Problem) -> Schedule:
        return self.run(problem).schedule

    def run(self, problem: Problem) -> BestReport:
        budget = _Budget(self.clock, self.budget_s, self.max_evaluations)
        ran: list[tuple[Scheduler, Schedule]] = []
        skipped: list[str] = []
        for member in self.members:
            # The first member (HEFT) always runs: best is never worse than it.
            if ran and not budget.fits("member", MEMBER_MARGIN):
                skipped.append(member.name)
                continue
            ran.append((member, budget.timed("member", lambda: member.schedule(problem))))
            if len(ran) == 1:
                # A HEFT run is what a restart from a perturbed HEFT costs, and more than a decoding.
                heft_time = budget.slowest("member")
                budget.guess("eft", heft_time)
                budget.guess("decode", heft_time)
        winner, first = min(ran, key=lambda r: r[1].makespan)  # min keeps the first of equals
        rank = winner.rank(problem) if isinstance(winner, HeftVariant) else mean_upward_rank(problem)
        search = _Search(problem, budget, random.Random(self.seed), rank)
        found = search.improve(first)
        schedule = found if found is not None and found.makespan < first.makespan else first
        return BestReport(
            schedule=Schedule(self.name, schedule.slots),
            portfolio=tuple((m.name, s.makespan) for m, s in ran),
            skipped=tuple(skipped),
            start_from=winner.name,
            evaluations=budget.evaluations,
            improvements=search.improvements,
        )


class _Decoder:
    """Insertion-based list scheduling of a fixed placement and order, on plain lists (the local
    search decodes thousands of candidates). A candidate that changes a task at position ``c`` of
    its base's order shares the base's first ``c`` placements: only the rest is decoded again."""

    def __init__(self, problem: Problem) -> None:
        self.p = problem
        self.exec = problem.exec_time.tolist()
        self.inv = problem.inv_bw.tolist()
        self.lat = problem.latency.tolist()
        self.data = problem.edge_data.tolist()
        self.preds = problem.preds

    def order(self, keys: list[float]) -> tuple[list[int], list[int]]:
        order = ready_list_order(self.p, keys)
        pos = [0] * len(order)
        for k, i in enumerate(order):
            pos[i] = k
        return order, pos

    def ready(self, i: int, k: int, procs: list[int], finish: list[float]) -> float:
        """When all of task i's inputs can be on vCPU k."""
        r = 0.0
        inv, lat, data = self.inv, self.lat, self.data
        for q, e in self.preds[i]:
            pq = procs[q]
            t = finish[q] + data[e] * inv[pq][k] + lat[pq][k]
            if t > r:
                r = t
        return r

    def decode(self, procs: list[int], keys: list[float], base: _Solution | None = None,
               first: int = 0) -> _Solution:
        """Decode ``procs`` and ``keys``; with ``base`` (same keys), reuse its first ``first`` places."""
        n, m = self.p.n_tasks, self.p.n_procs
        if base is not None and first > 0:
            order, pos = base.order, base.pos
            start, finish = list(base.start), list(base.finish)
            on_proc = [[i for i in tasks if pos[i] < first] for tasks in base.on_proc]
        else:
            order, pos = self.order(keys)
            start, finish = [0.0] * n, [0.0] * n
            on_proc = [[] for _ in range(m)]
            first = 0
        starts = [[start[i] for i in tasks] for tasks in on_proc]
        ends = [[finish[i] for i in tasks] for tasks in on_proc]
        exec_time, inv, lat, data, preds = self.exec, self.inv, self.lat, self.data, self.preds
        bisect_right = bisect.bisect_right
        for i in order[first:]:
            k = procs[i]
            r = 0.0
            for q, e in preds[i]:
                pq = procs[q]
                t = finish[q] + data[e] * inv[pq][k] + lat[pq][k]
                if t > r:
                    r = t
            dur = exec_time[i][k]
            s_k, e_k = starts[k], ends[k]
            j = bisect_right(e_k, r)
            t = r
            n_k = len(s_k)
            while j < n_k and t + dur > s_k[j]:
                if e_k[j] > t:
                    t = e_k[j]
                j += 1
            s_k.insert(j, t)
            e_k.insert(j, t + dur)
            on_proc[k].insert(j, i)
            start[i] = t
            finish[i] = t + dur
        return _Solution(procs, keys, order, pos, start, finish, on_proc, max(finish, default=0.0), sum(finish))

    def fit(self, s: _Solution, k: int, ready: float, dur: float) -> float:
        """The earliest start ≥ ``ready`` of a ``dur``-long run on vCPU k among ``s``'s tasks."""
        t = ready
        for i in s.on_proc[k]:
            if s.finish[i] <= t:
                continue
            if t + dur <= s.start[i]:
                break
            t = s.finish[i]
        return t

    def to_schedule(self, s: _Solution, algorithm: str) -> Schedule:
        p = self.p
        slots = {
            p.task_ids[i]: Slot(p.task_ids[i], p.proc_ids[s.procs[i]], s.start[i], s.finish[i])
            for i in range(p.n_tasks)
        }
        return Schedule(algorithm, slots)


class _Search:
    def __init__(self, problem: Problem, budget: _Budget, rng: random.Random, rank: FloatArray) -> None:
        self.p = problem
        self.budget = budget
        self.rng = rng
        self.rank = rank.tolist()
        self.improvements = 0
        self.decoder = _Decoder(problem)

    def _evaluate(self, procs: list[int], keys: list[float], base: _Solution | None = None,
                  first: int = 0) -> _Solution:
        return self.budget.step("decode", lambda: self.decoder.decode(procs, keys, base, first))

    def _from_schedule(self, schedule: Schedule) -> _Solution:
        """A schedule as a solution: its vCPUs, its start times as priorities (never longer)."""
        pidx = self.p.proc_index()
        procs = [pidx[schedule.slots[t].vcpu] for t in self.p.task_ids]
        return self._evaluate(procs, [schedule.slots[t].start for t in self.p.task_ids])

    def _better(self, a: _Solution, b: _Solution) -> bool:
        tol = TOLERANCE * max(1.0, b.makespan)
        if a.makespan < b.makespan - tol:
            return True
        return a.makespan <= b.makespan + tol and a.total < b.total - tol * max(1, self.p.n_tasks)

    # -- the search ------------------------------------------------------------------------------

    def improve(self, schedule: Schedule) -> Schedule | None:
        """The best schedule found from ``schedule`` within the budget (None: none evaluated)."""
        best: _Solution | None = None
        try:
            current = self._from_schedule(schedule)
            best = current
            stale = 0
            restarts = 0
            while self.p.n_procs > 1 and stale < MAX_STALE_RESTARTS:
                current = self._descend(current)
                if self._better(current, best):
                    best, stale = current, 0
                else:
                    stale += 1
                restarts += 1
                if restarts % 2:
                    current = self._from_schedule(self.budget.step("eft", self._noisy_eft))
                else:
                    current = self._evaluate(*self._perturb(best))
        except _OutOfBudget:
            pass
        if best is None:
            return None
        return self.decoder.to_schedule(best, Best.name)

    def _noisy_eft(self) -> Schedule:
        """HEFT's placement for the start rank with ±10 % noise on each task's priority."""
        noisy = np.array([r * (1.0 + self.rng.uniform(-RANK_NOISE, RANK_NOISE)) for r in self.rank])
        return eft_schedule(self.p, noisy, Best.name)

    def _descend(self, current: _Solution) -> _Solution:
        """First-improvement moves on the critical path until none improves; then the priorities
        are reset to the start times (never worse) and, if that helped, the search goes on."""
        while True:
            improved = True
            while improved:
                improved = False
                for procs, keys, first in self._moves(current, self._critical_path(current)):
                    candidate = self._evaluate(procs, keys, current if keys is current.keys else None, first)
                    if self._better(candidate, current):
                        current = candidate
                        self.improvements += 1
                        improved = True
                        break
            rekeyed = self._evaluate(current.procs, list(current.start))
            if not self._better(rekeyed, current):
                return current
            current = rekeyed

    def _critical_path(self, s: _Solution) -> list[int]:
        p = self.p
        n = p.n_tasks
        if n == 0:
            return []
        tol = TOLERANCE * max(1.0, s.makespan)
        prev_on_proc: list[int] = [-1] * n
        for tasks in s.on_proc:
            for a, b in zip(tasks, tasks[1:]):
                prev_on_proc[b] = a
        t = max(range(n), key=lambda i: (s.finish[i], -i))
        path = [t]
        seen = {t}
        inv, lat, data = self.decoder.inv, self.decoder.lat, self.decoder.data
        while s.start[t] > tol:
            nxt = -1
            best_arrival = -1.0
            for q, e in p.preds[t]:
                arrival = s.finish[q] + data[e] * inv[s.procs[q]][s.procs[t]] + lat[s.procs[q]][s.procs[t]]
                if arrival > best_arrival:
                    nxt, best_arrival = q, arrival
            if nxt < 0 or best_arrival < s.start[t] - tol:
                before = prev_on_proc[t]
                nxt = before if before >= 0 and s.finish[before] >= s.start[t] - tol else -1
            if nxt < 0 or nxt in seen:
                break
            path.append(nxt)
            seen.add(nxt)
            t = nxt
        path.reverse()
        return path

    def _candidates(self, i: int, s: _Solution) -> list[int]:
        """The vCPUs (other than its own) where task i would finish soonest now and sooner than it
        does, a few of them (estimated on the current schedule)."""
        dec = self.decoder
        row = dec.exec[i]
        limit = s.finish[i] - TOLERANCE * max(1.0, s.makespan)
        est = []
        for k in range(self.p.n_procs):
            if k != s.procs[i]:
                f = dec.fit(s, k, dec.ready(i, k, s.procs, s.finish), row[k]) + row[k]
                if f < limit:
                    est.append((f, k))
        est.sort()
        return [k for _, k in est[:CANDIDATE_VCPUS]]

    def _moves(self, s: _Solution, path: list[int]) -> Iterator[tuple[list[int], list[float], int]]:
        """Changes to try, lazily (the first improvement ends the scan), each with the first
        position of the decoding order it changes."""
        keys, pos = s.keys, s.pos
        succ_on_path = {a: b for a, b in zip(path, path[1:])}
        for i in path:
            targets = self._candidates(i, s)
            for k in targets:
                yield _with(s.procs, {i: k}), keys, pos[i]
            nxt = succ_on_path.get(i)
            feeds = nxt is not None and any(d == nxt for d, _ in self.p.succs[i])
            if nxt is not None and feeds and targets:
                yield _with(s.procs, {i: targets[0], nxt: targets[0]}), keys, min(pos[i], pos[nxt])
                if s.procs[nxt] != s.procs[i]:
                    yield _with(s.procs, {i: s.procs[nxt]}), keys, pos[i]
            if targets:
                other = self._overlapping(i, targets[0], s)
                if other >= 0:
                    yield _with(s.procs, {i: targets[0], other: s.procs[i]}), keys, min(pos[i], pos[other])
            if nxt is not None and not feeds and s.procs[nxt] == s.procs[i]:
                earlier = list(s.start)
                earlier[nxt] = s.start[i] - TOLERANCE * max(1.0, abs(s.start[i]))
                yield s.procs, earlier, 0

    def _overlapping(self, i: int, k: int, s: _Solution) -> int:
        """The task on vCPU k that overlaps task i's run the most (-1: none)."""
        best, best_overlap = -1, 0.0
        for j in s.on_proc[k]:
            overlap = min(s.finish[i], s.finish[j]) - max(s.start[i], s.start[j])
            if overlap > best_overlap:
                best, best_overlap = j, overlap
        return best

    def _perturb(self, s: _Solution) -> tuple[list[int], list[float]]:
        n, m = self.p.n_tasks, self.p.n_procs
        procs = list(s.procs)
        for _ in range(max(2, n // 50)):
            procs[self.rng.randrange(n)] = self.rng.randrange(m)
        return procs, list(s.start)


def _with(procs: list[int], changes: dict[int, int]) -> list[int]:
    out = list(procs)
    for i, k in changes.items():
        out[i] = k
    return out
