"""The node's task state machine, fed events by hand: readiness, vCPU order, routing, failure."""

from __future__ import annotations

import pytest

from sflow.delegator.plan import TaskPlacement, build_plan
from sflow.errors import ProtocolError
from sflow.model import Job, OutFile, OutValue, Task, TaskId
from sflow.model.infra import VcpuId
from sflow.node.plan import NodePlan
from sflow.node.state import AllDone, JobState, ReturnFile, ReturnValue, Run, SendFile, SendValue, Status

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


def test_a_failure_stops_only_what_depends_on_it_and_a_retry_runs_it_again() -> None:
    job = Job(1, (task(1, [("f", [3])]), task(2, [("g", [3])]), task(3), task(4)))
    where = {1: (A, "a0"), 2: (A, "a1"), 3: (A, "a0"), 4: (A, "a0")}
    state = JobState(node_plan(job, where, A, order=[1, 2, 4, 3]))
    assert sorted(runs(state.start())) == [1, 2]
    # 1 failed: the delegator decides; meanwhile independent work goes on (4 on 1's vCPU).
    assert runs(state.task_finished(T(1), False)) == [4]
    assert state.status[T(1)] is Status.FAILED and state.active
    assert state.task_finished(T(2), True) == []  # 3 still waits for 1's file
    assert state.task_finished(T(4), True) == []
    (again,) = state.retry(T(1))
    assert isinstance(again, Run) and again.task.id == 1 and again.attempt == 2
    with pytest.raises(ProtocolError, match="has not failed"):
        state.retry(T(1))
    assert runs(state.task_finished(T(1), True)) == [3]


def test_a_value_of_an_end_function_returns_to_the_delegator() -> None:
    job = Job(1, (task(1, [("f", [2])]), task(2, value=("42", []))))
    state = JobState(node_plan(job, {1: (A, "a0"), 2: (A, "a0")}, A))
    state.start()
    state.task_finished(T(1), True)
    assert ReturnValue(T(2), "42") in state.task_finished(T(2), True)


def test_a_revision_adds_functions_reroutes_finished_outputs_and_keeps_state() -> None:
    # 1 -> 2 -> 3; at first 1 on A, 2 and 3 on B. B is lost: 2 moves to A, 3 to C.
    job = Job(1, (task(1, [("x", [2])]), task(2, [("y", [3])], value=("v", [3])), task(3, [("z", [])])))
    first = {1: (A, "a0"), 2: (B, "b0"), 3: (B, "b0")}
    state = JobState(node_plan(job, first, A))
    assert runs(state.start()) == [1]
    assert state.task_finished(T(1), True) == [SendFile(T(1), "x", B), AllDone()]
    C = "127.0.0.1:7003"
    second = {1: (A, "a0"), 2: (A, "a1"), 3: (C, "c0")}
    acts = state.revise(node_plan(job, second, A))
    assert runs(acts) == [2]  # its input was produced here; nothing goes to B again
    assert not [a for a in acts if isinstance(a, SendFile)]
    acts = state.task_finished(T(2), True)
    assert SendFile(T(2), "y", C) in acts and SendValue(T(2), "v", C) in acts and state.finished


def test_a_revision_that_routes_a_finished_output_to_a_new_node_sends_it_once() -> None:
    job = Job(1, (task(1, [("x", [2])]), task(2)))
    state = JobState(node_plan(job, {1: (A, "a0"), 2: (B, "b0")}, A))
    state.start()
    state.task_finished(T(1), True)
    C = "127.0.0.1:7003"
    assert state.revise(node_plan(job, {1: (A, "a0"), 2: (C, "c0")}, A)) == [SendFile(T(1), "x", C)]
    assert state.want(T(1), "x", C) == []  # asked for as well: it went already
    assert state.want(T(1), "x", "127.0.0.1:7009") == [SendFile(T(1), "x", "127.0.0.1:7009")]


def test_wanted_files_and_values_go_when_they_are_here() -> None:
    job = Job(1, (task(1, [("x", [2])], value=("v", [2])), task(2)))
    state = JobState(node_plan(job, {1: (A, "a0"), 2: (A, "a0")}, A))
    C = "127.0.0.1:7003"
    assert state.want(T(1), "x", C) == [] and state.want(T(1), "", C) == []
    state.start()
    acts = state.task_finished(T(1), True)
    assert SendFile(T(1), "x", C) in acts and SendValue(T(1), "v", C) in acts
    # a received input can be wanted too (a copy kept after its producer's node was lost)
    remote = JobState(node_plan(job, {1: (B, "b0"), 2: (A, "a0")}, A))
    remote.file_arrived(T(1), "x")
    assert remote.want(T(1), "x", C) == [SendFile(T(1), "x", C)]


def test_a_revision_may_not_move_a_function_that_started() -> None:
    job = Job(1, (task(1), task(2)))
    state = JobState(node_plan(job, {1: (A, "a0"), 2: (A, "a0")}, A))
    state.start()
    with pytest.raises(ProtocolError, match="running here and cannot move"):
        state.revise(node_plan(job, {1: (B, "b0"), 2: (A, "a0")}, A))
    acts = state.revise(node_plan(job, {1: (A, "a0"), 2: (B, "b0")}, A))  # 2 only waited
    assert acts == [] and T(2) not in state.tasks
    assert state.task_finished(T(1), True) == [AllDone()]


def test_a_second_copy_of_a_value_changes_nothing() -> None:
    job = Job(1, (task(1, value=("v", [2])), task(2)))
    state = JobState(node_plan(job, {1: (B, "b0"), 2: (A, "a0")}, A))
    state.start()
    assert runs(state.value_arrived(T(1), "v")) == [2]
    assert state.value_arrived(T(1), "v") == []


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
