"""The node's task state machine, fed events by hand: readiness, vCPU order, routing, failure."""

from __future__ import annotations

import pytest

from sflow.delegator.plan import TaskPlacement, build_plan
from sflow.errors import ProtocolError
from sflow.model import Job, OutFile, OutValue, Task, TaskId
from sflow.model.infra import VcpuId
from sflow.node.plan import NodePlan
from sflow.node.state import AllDone, JobState, ReturnFile, Run, SendFile, SendValue, Status

T = TaskId
A, B = "127.0.0.1:7001", "127.0.0.1:7002"


def task(tid: int, files: list[tuple[str, list[int]]] = (), value: tuple[str, list[int]] | None = None) -> Task:  # type: ignore[assignment]
    return Task(
        id=T(tid),
        workload=1.0,
        cmd=f"cmd{tid}",
        out_files=tuple(OutFile(p, 1.0, tuple(T(d) for d in ds)) for p, ds in files),
        out_value=OutValue(value[0], 0.0, tuple(T(d) for d in value[1])) if value else None,
    )


def node_plan(job: Job, where: dict[int, tuple[str, str]], node: str, order: list[int] | None = None) -> NodePlan:
    placements = {T(t): TaskPlacement(n, VcpuId(v), 0) for t, (n, v) in where.items()}
    plan = build_plan(job, placements, tuple(T(t) for t in (order or list(job.order))), "r1")
    return plan.nodes[node]


def runs(actions: list[object]) -> list[int]:
    return [a.task.id for a in actions if isinstance(a, Run)]


def test_diamond_with_two_files_waits_for_every_file_not_every_message() -> None:
    # 1 -> 2 (two files), 1 -> 3, {2,3} -> 4; 2 and 4 here, 1 and 3 on the other node.
    job = Job(
        1,
        (
            task(1, [("a.txt", [2]), ("b.txt", [2, 3])]),
            task(2, [("c.txt", [4])]),
            task(3, [("d.txt", [4])]),
            task(4, [("out.txt", [])]),
        ),
    )
    where = {1: (B, "b0"), 2: (A, "a0"), 3: (B, "b0"), 4: (A, "a0")}
    state = JobState(node_plan(job, where, A))
    assert state.start() == []
    assert state.file_arrived(T(1), "a.txt") == []  # one of two files from the same predecessor
    acts = state.file_arrived(T(1), "b.txt")
    assert runs(acts) == [2]
    run = acts[0]
    assert isinstance(run, Run) and run.files == {1: "a.txt"}
    acts = state.task_finished(T(2), True)
    # c.txt is read in place by 4 on this node: nothing is sent; 4 still waits for d.txt.
    assert acts == []
    acts = state.file_arrived(T(3), "d.txt")
    assert runs(acts) == [4]
    acts = state.task_finished(T(4), True)
    assert acts == [ReturnFile(T(4), "out.txt"), AllDone()]
    assert state.finished


def test_files_go_once_to_each_remote_node_and_results_to_the_delegator() -> None:
    job = Job(1, (task(1, [("x", [2, 3, 4]), ("log", [])]), task(2), task(3), task(4)))
    where = {1: (A, "a0"), 2: (B, "b0"), 3: (B, "b1"), 4: (A, "a1")}
    state = JobState(node_plan(job, where, A))
    assert runs(state.start()) == [1]
    acts = state.task_finished(T(1), True)
    assert SendFile(T(1), "x", B) in acts and [a for a in acts if isinstance(a, SendFile)] == [SendFile(T(1), "x", B)]
    assert ReturnFile(T(1), "log") in acts
    assert runs(acts) == [4]  # local successor: the file is already in the job directory


def test_values_arrive_as_inputs_and_are_substituted() -> None:
    job = Job(1, (task(1, value=("hello", [2, 3])), task(2), task(3)))
    where = {1: (A, "a0"), 2: (A, "a1"), 3: (B, "b0")}
    state = JobState(node_plan(job, where, A))
    state.start()
    acts = state.task_finished(T(1), True)
    assert SendValue(T(1), "hello", B) in acts
    run = next(a for a in acts if isinstance(a, Run))
    assert run.task.id == 2 and run.values == {1: "hello"}
    remote = JobState(node_plan(job, where, B))
    assert remote.start() == []
    assert runs(remote.value_arrived(T(1), "hello")) == [3]


def test_one_function_per_vcpu_at_a_time_in_schedule_order() -> None:
    job = Job(1, (task(1), task(2), task(3)))
    where = {1: (A, "a0"), 2: (A, "a0"), 3: (A, "a1")}
    state = JobState(node_plan(job, where, A, order=[2, 3, 1]))
    assert sorted(runs(state.start())) == [2, 3]  # 1 waits behind 2 on a0
    assert state.running() == (T(2), T(3))
    assert runs(state.task_finished(T(3), True)) == []
    assert runs(state.task_finished(T(2), True)) == [1]


def test_head_of_a_vcpu_queue_blocks_later_ready_functions() -> None:
    # On a0 the schedule runs 2 (waits for a file) before 3 (ready at once): 3 must wait.
    job = Job(1, (task(1, [("f", [2])]), task(2), task(3)))
    where = {1: (B, "b0"), 2: (A, "a0"), 3: (A, "a0")}
    state = JobState(node_plan(job, where, A, order=[1, 2, 3]))
    assert state.start() == []
    assert runs(state.file_arrived(T(1), "f")) == [2]
    assert runs(state.task_finished(T(2), True)) == [3]


def test_failure_stops_the_job_here() -> None:
    job = Job(1, (task(1, [("f", [3])]), task(2, [("g", [3])]), task(3)))
    where = {1: (A, "a0"), 2: (A, "a1"), 3: (A, "a0")}
    state = JobState(node_plan(job, where, A))
    assert sorted(runs(state.start())) == [1, 2]
    assert state.task_finished(T(1), False) == []
    assert state.failed and not state.active
    assert state.task_finished(T(2), True) == []  # nothing more is sent or started
    assert state.status[T(2)] is Status.CANCELLED and state.status[T(3)] is Status.WAITING


def test_cancel_returns_running_functions_and_starts_nothing() -> None:
    job = Job(1, (task(1, [("f", [2])]), task(2)))
    state = JobState(node_plan(job, {1: (A, "a0"), 2: (A, "a0")}, A))
    state.start()
    assert state.cancel() == (T(1),)
    assert state.task_finished(T(1), True) == []
    assert state.status[T(2)] is Status.CANCELLED


def test_unexpected_duplicate_or_early_events_are_refused() -> None:
    job = Job(1, (task(1, [("f", [2])]), task(2)))
    where = {1: (B, "b0"), 2: (A, "a0")}
    state = JobState(node_plan(job, where, A))
    with pytest.raises(ProtocolError, match="not an expected input"):
        state.file_arrived(T(1), "other")
    with pytest.raises(ProtocolError, match="not an expected input"):
        state.file_arrived(T(9), "f")
    state.file_arrived(T(1), "f")  # before start: recorded, nothing runs yet
    with pytest.raises(ProtocolError):
        state.file_arrived(T(1), "f")
    assert not state.expects_file(T(1), "f")
    with pytest.raises(ProtocolError, match="not running"):
        state.task_finished(T(2), True)
    assert runs(state.start()) == [2]
    with pytest.raises(ProtocolError, match="already started"):
        state.start()
