"""Published worked examples, checked exactly.

Topcuoglu, Hariri, Wu, "Performance-effective and low-complexity task scheduling for heterogeneous
computing", IEEE TPDS 13(3), 2002, Fig. 2: ten tasks, three processors. The paper reports the
upward ranks, HEFT's schedule (makespan 80) and CPOP's (makespan 86).
"""

from __future__ import annotations

import numpy as np
import pytest

from sflow.model.workflow import TaskId
from sflow.sched.costs import (
    critical_path_lower_bound,
    mean_downward_rank,
    mean_upward_rank,
    oct_table,
)
from sflow.sched.problem import Problem
from sflow.sched.registry import get_scheduler, names
from sflow.sched.validate import find_violations

# Computation cost of task i on P1, P2, P3.
COSTS = [
    [14, 16, 9],
    [13, 19, 18],
    [11, 13, 19],
    [13, 8, 17],
    [12, 13, 10],
    [13, 16, 9],
    [7, 15, 11],
    [5, 11, 14],
    [18, 12, 20],
    [21, 7, 16],
]
EDGES = {
    (1, 2): 18, (1, 3): 12, (1, 4): 9, (1, 5): 11, (1, 6): 14,
    (2, 8): 19, (2, 9): 16, (3, 7): 23, (4, 8): 27, (4, 9): 23,
    (5, 9): 13, (6, 8): 15, (7, 10): 17, (8, 10): 11, (9, 10): 13,
}


@pytest.fixture()
def problem() -> Problem:
    return Problem.from_matrix(COSTS, EDGES)


def test_upward_ranks_match_the_paper(problem: Problem) -> None:
    expected = [108.0, 77.0, 80.0, 80.0, 69.0, 63.333, 42.667, 35.667, 44.333, 14.667]
    assert np.round(mean_upward_rank(problem), 3).tolist() == expected


def test_heft_makespan_is_80_with_the_papers_schedule(problem: Problem) -> None:
    schedule = get_scheduler("heft").schedule(problem)
    assert schedule.makespan == 80.0
    expected = {
        1: ("P3", 0, 9), 3: ("P3", 9, 28), 4: ("P2", 18, 26), 2: ("P1", 27, 40), 5: ("P3", 28, 38),
        6: ("P2", 26, 42), 9: ("P2", 56, 68), 7: ("P3", 38, 49), 8: ("P1", 57, 62), 10: ("P2", 73, 80),
    }
    got = {t: (s.vcpu, s.start, s.finish) for t, s in schedule.slots.items()}
    assert got == expected
    assert find_violations(problem, schedule) == []


def test_cpop_makespan_is_86(problem: Problem) -> None:
    schedule = get_scheduler("cpop").schedule(problem)
    assert schedule.makespan == 86.0
    # The critical path n1 → n2 → n9 → n10 runs on P2, the processor that minimises it.
    assert {schedule.slots[TaskId(t)].vcpu for t in (1, 2, 9, 10)} == {"P2"}
    assert find_violations(problem, schedule) == []


def test_cpop_priorities_of_the_critical_path(problem: Problem) -> None:
    prio = mean_upward_rank(problem) + mean_downward_rank(problem)
    assert np.round(prio[[0, 1, 8, 9]], 6).tolist() == [108.0] * 4


def test_oct_of_exit_tasks_is_zero_and_parents_see_their_successors(problem: Problem) -> None:
    table = oct_table(problem)
    assert table[9].tolist() == [0.0, 0.0, 0.0]
    # Task 9's only successor is 10: min over q of w(10, q) + (0 on the same processor else 13).
    assert table[8].tolist() == [min(21, 7 + 13, 16 + 13), 7.0, min(21 + 13, 7 + 13, 16)]


def test_peft_records_real_finish_times(problem: Problem) -> None:
    schedule = get_scheduler("peft").schedule(problem)
    idx = {p: k for k, p in enumerate(problem.proc_ids)}
    for t, s in schedule.slots.items():
        assert s.finish - s.start == COSTS[t - 1][idx[s.vcpu]]
    assert find_violations(problem, schedule) == []


@pytest.mark.parametrize("name", names())
def test_every_algorithm_on_the_paper_example(problem: Problem, name: str) -> None:
    schedule = get_scheduler(name).schedule(problem)
    assert find_violations(problem, schedule) == []
    assert schedule.makespan >= critical_path_lower_bound(problem)


def test_matrix_problem_errors() -> None:
    from sflow.errors import ScheduleError

    with pytest.raises(ScheduleError, match="cycle"):
        Problem.from_matrix([[1], [1]], {(1, 2): 1, (2, 1): 1})
    with pytest.raises(ScheduleError, match="unknown task 9"):
        Problem.from_matrix([[1], [1]], {(1, 9): 1})
    with pytest.raises(ScheduleError, match="non-negative"):
        Problem.from_matrix([[-1]], {})
