"""The best portfolio scheduler: valid, never worse than HEFT or any member, deterministic for a
seed, within its budget on a fake clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sched_builders import environments, jobs, make_env, make_job
from sflow.errors import InputError
from sflow.sched.best import Best
from sflow.sched.problem import Problem
from sflow.sched.registry import PORTFOLIO, get_scheduler, names
from sflow.sched.validate import find_violations


class FakeClock:
    """Seconds that advance by ``tick`` at every reading."""

    def __init__(self, tick: float) -> None:
        self.now = 100.0
        self.tick = tick
        self.readings = 0

    def __call__(self) -> float:
        self.now += self.tick
        self.readings += 1
        return self.now


def comm_heavy(n: int, seed: int) -> tuple[Problem, object, object]:
    """A layered random DAG with large transfers on a mixed two-host environment."""
    rng = random.Random(seed)
    env = make_env([[1000, 2000, 3000], [1500, 2500]], host_bw=[20, 20])
    edges: dict[tuple[int, int], float] = {}
    for b in range(2, n + 1):
        for a in rng.sample(range(max(1, b - 6), b), k=min(2, b - max(1, b - 6))):
            edges[(a, b)] = rng.choice([10, 50, 200])
    job = make_job([rng.choice([1000, 4000, 9000]) for _ in range(n)], edges)
    return Problem.from_env_job(env, job), env, job


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=environments(), job=jobs(), seed=st.integers(0, 3))
def test_best_is_valid_and_never_worse_than_any_member(env: object, job: object, seed: int) -> None:
    problem = Problem.from_env_job(env, job)  # type: ignore[arg-type]
    best = get_scheduler("best", seed)
    assert isinstance(best, Best)
    report = best.run(problem)
    assert report.schedule.algorithm == "best"
    assert find_violations(problem, report.schedule) == []
    assert find_violations((env, job), report.schedule) == []  # type: ignore[arg-type]
    heft = get_scheduler("heft").schedule(problem).makespan
    tol = 1e-9 * max(1.0, heft)
    assert report.schedule.makespan <= heft + tol
    assert report.portfolio[0][0] == "heft" and len(report.portfolio) == len(PORTFOLIO) + 6
    assert report.schedule.makespan <= min(m for _, m in report.portfolio) + tol
    assert report.skipped == ()


def test_best_improves_on_heft_where_there_is_room() -> None:
    problem, _, _ = comm_heavy(40, 3)
    heft = get_scheduler("heft").schedule(problem).makespan
    report = get_scheduler("best", 1).run(problem)  # type: ignore[attr-defined]
    assert report.evaluations > 0 and report.improvements > 0
    assert report.schedule.makespan < 0.97 * heft


def test_best_is_deterministic_for_a_seed() -> None:
    problem, _, _ = comm_heavy(30, 5)
    first = get_scheduler("best", 7).schedule(problem)
    again = get_scheduler("best", 7).schedule(problem)
    assert first == again
    timed = [get_scheduler("best", 7, budget_s=50.0, clock=FakeClock(0.001)).schedule(problem) for _ in range(2)]
    assert timed[0] == timed[1]


@pytest.mark.parametrize("budget", [0.05, 0.3, 2.0])
def test_best_stays_within_its_budget(budget: float) -> None:
    problem, _, _ = comm_heavy(60, 2)
    clock = FakeClock(0.002)
    scheduler = get_scheduler("best", 1, budget_s=budget, clock=clock)
    began = clock.now
    report = scheduler.run(problem)  # type: ignore[attr-defined]
    elapsed = clock.now - began
    # Every step reads the clock before and after itself, so the slowest step lasts one tick.
    assert elapsed <= budget + 2 * clock.tick
    assert find_violations(problem, report.schedule) == []
    if budget == 0.05:
        assert report.skipped  # not every member fitted
    if budget == 2.0:
        assert report.evaluations > 100


def test_heft_runs_even_when_the_budget_is_shorter() -> None:
    problem, _, _ = comm_heavy(20, 1)
    report = get_scheduler("best", 1, budget_s=0.1, clock=FakeClock(0.5)).run(problem)  # type: ignore[attr-defined]
    assert [n for n, _ in report.portfolio] == ["heft"] and len(report.skipped) == len(PORTFOLIO) + 5
    assert report.evaluations == 0
    assert report.schedule.makespan == get_scheduler("heft").schedule(problem).makespan


def test_budget_must_be_positive_and_best_is_registered() -> None:
    assert names()[-1] == "best"
    with pytest.raises(InputError, match="--budget-s: the time budget must be positive"):
        get_scheduler("best", budget_s=0)
    single = make_env([[1000]])
    problem = Problem.from_env_job(single, make_job([1000, 2000], {(1, 2): 5}))
    report = get_scheduler("best").run(problem)  # type: ignore[attr-defined]
    assert report.schedule.makespan == pytest.approx(3.0)
