"""The independent validator, the simulator and its measures."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sched_builders import CANONICAL, make_env, make_job, two_dc_env
from sflow.errors import ScheduleError
from sflow.model.infra import VcpuId
from sflow.model.schedule import Schedule, Slot
from sflow.model.workflow import TaskId
from sflow.sched.problem import Problem
from sflow.sched.registry import get_scheduler, names
from sflow.sched.simulate import measure, replay, replay_schedule
from sflow.sched.validate import find_violations, validate_schedule


def setup() -> tuple[Problem, Schedule]:
    env = make_env([[1000], [1000]], host_bw=[10, 10])
    job = make_job([1000, 2000], {(1, 2): 20})
    problem = Problem.from_env_job(env, job)
    good = Schedule("hand", {
        TaskId(1): Slot(TaskId(1), problem.proc_ids[0], 0.0, 1.0),
        TaskId(2): Slot(TaskId(2), problem.proc_ids[1], 3.0, 5.0),
    })
    return problem, good


def kinds(problem: Problem, schedule: Schedule) -> list[str]:
    return [v.kind for v in find_violations(problem, schedule)]


def test_a_valid_schedule_passes() -> None:
    problem, good = setup()
    assert find_violations(problem, good) == []
    validate_schedule(problem, good)


def test_precedence_with_transfer_time() -> None:
    problem, good = setup()
    early = Schedule("bad", {**good.slots, TaskId(2): Slot(TaskId(2), problem.proc_ids[1], 2.0, 4.0)})
    assert kinds(problem, early) == ["precedence"]
    with pytest.raises(ScheduleError, match="before the data of task 1 arrives at 3"):
        validate_schedule(problem, early)


def test_duration_overlap_and_placement() -> None:
    problem, good = setup()
    short = Schedule("bad", {**good.slots, TaskId(2): Slot(TaskId(2), problem.proc_ids[1], 3.0, 4.0)})
    assert kinds(problem, short) == ["duration"]
    same = Schedule("bad", {
        TaskId(1): Slot(TaskId(1), problem.proc_ids[0], 0.0, 1.0),
        TaskId(2): Slot(TaskId(2), problem.proc_ids[0], 0.5, 2.5),
    })
    assert "overlap" in kinds(problem, same)
    missing = Schedule("bad", {TaskId(1): good.slots[TaskId(1)]})
    assert kinds(problem, missing) == ["placement"]
    elsewhere = Schedule("bad", {**good.slots, TaskId(1): replace(good.slots[TaskId(1)], vcpu=VcpuId("nowhere"))})
    assert kinds(problem, elsewhere) == ["placement"]


def test_overlap_with_a_non_adjacent_task() -> None:
    env = make_env([[1000]])
    job = make_job([10000, 1000, 1000], {})
    problem = Problem.from_env_job(env, job)
    v = problem.proc_ids[0]
    bad = Schedule("bad", {
        TaskId(1): Slot(TaskId(1), v, 0.0, 10.0),
        TaskId(2): Slot(TaskId(2), v, 2.0, 3.0),
        TaskId(3): Slot(TaskId(3), v, 4.0, 5.0),
    })
    assert kinds(problem, bad) == ["overlap", "overlap"]


def test_orphan_vcpu_is_a_violation_for_env_and_job() -> None:
    env = two_dc_env()
    job = make_job([1000], {})
    bad = Schedule("bad", {TaskId(1): Slot(TaskId(1), VcpuId("0^0^0^2^0"), 0.0, 1000 / 9000)})
    violations = find_violations((env, job), bad)
    assert [v.kind for v in violations] == ["placement"]
    assert "not schedulable" in violations[0].message


@pytest.mark.parametrize("name", names())
def test_replay_never_lengthens_a_valid_schedule(name: str) -> None:
    env = two_dc_env()
    job = make_job(*CANONICAL["diamond"])
    problem = Problem.from_env_job(env, job)
    schedule = get_scheduler(name).schedule(problem)
    again = replay_schedule(problem, schedule)
    assert find_violations((env, job), again) == []
    assert again.makespan <= schedule.makespan + 1e-9
    assert {t: s.vcpu for t, s in again.slots.items()} == {t: s.vcpu for t, s in schedule.slots.items()}


def test_replay_errors_and_default_order() -> None:
    problem, good = setup()
    with pytest.raises(ScheduleError, match="task 2 has no vCPU"):
        replay(problem, {TaskId(1): problem.proc_ids[0]})
    with pytest.raises(ScheduleError, match="'nowhere', which is not a schedulable vCPU"):
        replay(problem, {TaskId(1): problem.proc_ids[0], TaskId(2): VcpuId("nowhere")})
    # An order that lists a successor first is still replayed in dependency order.
    s = replay(problem, {t: sl.vcpu for t, sl in good.slots.items()}, [TaskId(2), TaskId(1)])
    assert s.makespan == pytest.approx(5.0)


def test_measures() -> None:
    env = make_env([[1000, 2000]])
    job = make_job([2000, 2000], {})
    problem = Problem.from_env_job(env, job)
    fastest = get_scheduler("fastest").schedule(problem)
    m = measure(problem, fastest)
    assert m.makespan == pytest.approx(2.0)
    assert m.speedup == pytest.approx(1.0)
    assert m.lower_bound == pytest.approx(1.0)
    assert m.slr == pytest.approx(2.0)
    assert m.utilisation == {problem.proc_ids[1]: pytest.approx(1.0)}
    heft = measure(problem, get_scheduler("heft").schedule(problem))
    # Equal finish times (2 s either way) go to the lower vCPU index: both vCPUs are used.
    assert heft.makespan == pytest.approx(2.0)
    assert list(heft.utilisation.values()) == [pytest.approx(1.0), pytest.approx(0.5)]
