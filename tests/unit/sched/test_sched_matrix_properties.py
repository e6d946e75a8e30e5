"""Random cost-matrix problems: every scheduler valid, and HEFT's fast gap search equal to a naive one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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
