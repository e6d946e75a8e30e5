"""Random cost-matrix problems: every scheduler valid, and HEFT's fast gap search equal to a naive one."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sflow.sched.base import BATCH, Timelines
from sflow.sched.costs import critical_path_lower_bound, mean_upward_rank, oct_table, rank_key, ready_list_order
from sflow.sched.problem import FloatArray, Problem
from sflow.sched.registry import get_scheduler, names
from sflow.sched.validate import find_violations


@st.composite
def matrix_problems(draw: st.DrawFn, min_cost: int = 0) -> Problem:
    n = draw(st.integers(1, 30))
    m = draw(st.integers(1, 5))
    costs = [[draw(st.integers(min_cost, 20)) for _ in range(m)] for _ in range(n)]
    edges: dict[tuple[int, int], float] = {}
    for b in range(2, n + 1):
        for a in draw(st.sets(st.integers(1, b - 1), max_size=3)):
            edges[(a, b)] = draw(st.integers(0, 30))
    return Problem.from_matrix(costs, edges)


@settings(max_examples=80, deadline=None)
@given(problem=matrix_problems())
def test_every_scheduler_on_random_matrices(problem: Problem) -> None:
    bound = critical_path_lower_bound(problem)
    for name in names():
        schedule = get_scheduler(name).schedule(problem)
        assert find_violations(problem, schedule) == [], name
        assert schedule.makespan >= bound - 1e-9
        assert get_scheduler(name).schedule(problem).slots == schedule.slots


def naive_list(problem: Problem, keys: list[float], bias: FloatArray | None = None) -> dict[int, tuple[int, float]]:
    """Insertion-based list scheduling written plainly: scan each processor's busy intervals and
    take the smallest finish time (+ bias), lowest processor on a tie."""
    busy: list[list[tuple[float, float]]] = [[] for _ in range(problem.n_procs)]
    finish: dict[int, float] = {}
    proc: dict[int, int] = {}
    out: dict[int, tuple[int, float]] = {}
    for i in ready_list_order(problem, keys):
        best: tuple[float, int, float] | None = None
        for k in range(problem.n_procs):
            ready = max((finish[p] + problem.comm(e, proc[p], k) for p, e in problem.preds[i]), default=0.0)
            dur = float(problem.exec_time[i, k])
            t = ready
            for s, f in sorted(busy[k]):
                if t + dur <= s:
                    break
                t = max(t, f)
            key = t + dur + (0.0 if bias is None else float(bias[i, k]))
            if best is None or key < best[0]:
                best = (key, k, t)
        assert best is not None
        _, k, start = best
        eft = start + float(problem.exec_time[i, k])
        busy[k].append((start, eft))
        finish[i], proc[i] = eft, k
        out[i] = (k, start)
    return out


@settings(max_examples=150, deadline=None)
@given(problem=matrix_problems(min_cost=1))
def test_heft_gap_search_matches_the_naive_search(problem: Problem) -> None:
    schedule = get_scheduler("heft").schedule(problem)
    index = problem.proc_index()
    got = {i: (index[schedule.slots[t].vcpu], schedule.slots[t].start) for i, t in enumerate(problem.task_ids)}
    assert got == naive_list(problem, [-r for r in rank_key(mean_upward_rank(problem))])


@settings(max_examples=150, deadline=None)
@given(problem=matrix_problems(min_cost=1))
def test_peft_gap_search_matches_the_naive_search(problem: Problem) -> None:
    table = oct_table(problem)
    schedule = get_scheduler("peft").schedule(problem)
    index = problem.proc_index()
    got = {i: (index[schedule.slots[t].vcpu], schedule.slots[t].start) for i, t in enumerate(problem.task_ids)}
    assert got == naive_list(problem, [-r for r in rank_key(table.mean(axis=1))], table)


def wide_problem(seed: int) -> tuple[Problem, FloatArray | None, dict[int, int]]:
    """A random problem of up to 2 × BATCH tasks, some long runs of independent tasks, zero costs
    (ties), latencies on some; a random bias matrix and random fixed processors on some."""
    rng = random.Random(seed)
    n, m = rng.randint(1, 2 * BATCH + 10), rng.randint(1, 6)
    costs = [[rng.choice([0, 1, 2, 5, 9]) * rng.randint(0, 3) for _ in range(m)] for _ in range(n)]
    density = rng.choice([0.0, 0.002, 0.02, 0.2])
    edges = {(a, b): float(rng.choice([0, 1, 7, 30])) for b in range(2, n + 1)
             for a in rng.sample(range(1, b), k=min(b - 1, 4)) if rng.random() < density * 10}
    problem = Problem.from_matrix(costs, edges)
    if rng.random() < 0.5:
        lat = np.array([[0.0 if p == q else rng.choice([0.0, 0.5, 3.0]) for q in range(m)] for p in range(m)])
        problem = dataclasses.replace(problem, latency=lat)
    bias = np.array([[rng.choice([0.0, 1.0, 4.0]) for _ in range(m)] for _ in range(n)]) if rng.random() < 0.5 else None
    fixed = {i: rng.randrange(m) for i in range(n) if rng.random() < 0.1} if rng.random() < 0.5 else {}
    return problem, bias, fixed


@pytest.mark.parametrize("insertion", [True, False])
@pytest.mark.parametrize("seed", range(40))
def test_placing_in_order_chooses_as_best_task_by_task(seed: int, insertion: bool) -> None:
    problem, bias, fixed = wide_problem(seed)
    order = ready_list_order(problem, [-r for r in rank_key(mean_upward_rank(problem))])
    one = Timelines(problem)
    for i in order:
        if i in fixed:
            one.place_on(i, fixed[i], insertion=insertion)
        else:
            k, start = one.best(i, insertion=insertion, bias=None if bias is None else bias[i])
            one.place(i, k, start)
    together = Timelines(problem)
    together.place_in_order(order, insertion=insertion, bias=bias, fixed=fixed)
    assert (together.proc, together.start, together.finish) == (one.proc, one.start, one.finish)
