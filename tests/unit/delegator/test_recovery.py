"""IP-mode recovery decisions (pure): what is re-planned when a node is lost, where inputs made
before the loss come from, retries, and when the job fails."""

from __future__ import annotations

from collections.abc import Mapping

from sflow.config import Config
from sflow.delegator.local import local_environment
from sflow.delegator.placing import replacer
from sflow.delegator.plan import TaskPlacement, build_plan
from sflow.delegator.recovery import Fail, GiveValue, JobProgress, Replanned, Retry, Revise, Suspect
from sflow.errors import JobFailed
from sflow.model import Job, OutFile, OutValue, Task, TaskId
from sflow.model.infra import VcpuId
from sflow.node.plan import Pull
from sflow.sched.registry import get_scheduler

T = TaskId
A, B, C = "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
NODES = [A, B, C]


def task(tid: int, files: list[tuple[str, list[int]]] = (), value: tuple[str, list[int]] | None = None) -> Task:  # type: ignore[assignment]
    return Task(T(tid), 1.0, f"cmd{tid}", out_files=tuple(OutFile(p, 1.0, tuple(T(d) for d in ds)) for p, ds in files),
                out_value=OutValue(value[0], 0.0, tuple(T(d) for d in value[1])) if value else None)


def onto(node: str) -> object:
    """A placer that puts everything on ``node`` (and records what it was asked)."""
    asked: list[tuple[set[int], frozenset[str]]] = []

    def place(job: Job, alive: frozenset[str]) -> Mapping[TaskId, TaskPlacement]:
        asked.append(({int(t.id) for t in job.tasks}, alive))
        return {t.id: TaskPlacement(node, VcpuId(f"{node}-v1"), 1) for t in job.tasks}

    place.asked = asked  # type: ignore[attr-defined]
    return place


def progress(job: Job, where: dict[int, str], placer: object, retries: int = 0) -> JobProgress:
    placements = {T(t): TaskPlacement(n, VcpuId(f"{n}-v0"), 0) for t, n in where.items()}
    plan = build_plan(job, placements, job.order, "r1")
    return JobProgress(job, plan, job.order, NODES, placer, retries)  # type: ignore[arg-type]


def of(actions: list[object], kind: type) -> list:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, kind)]


CHAIN = Job(1, (task(1, [("x", [2])]), task(2, [("y", [3])]), task(3, [("z", [])])))


def test_the_unfinished_functions_of_a_lost_node_move_and_pull_their_inputs_from_where_they_are() -> None:
    place = onto(C)
    state = progress(CHAIN, {1: A, 2: B, 3: B}, place)
    state.started(T(1), A)
    assert state.finished(T(1), A)
    state.started(T(2), B)
    actions = state.node_lost(B, "no heartbeat", 10.0)
    (replanned,) = of(actions, Replanned)
    assert set(replanned.placements) == {2, 3} and replanned.rerun == ()
    assert place.asked == [({2, 3}, frozenset({A, C}))]  # type: ignore[attr-defined]
    revisions = {r.node: r for r in of(actions, Revise)}
    assert {t.id for t in revisions[C].plan.tasks} == {2, 3}
    assert revisions[C].pulls == (Pull(T(1), "x", A),)  # x was made on A before the loss
    # A's plan no longer routes x to B (lost), nor to C (which asks for it)
    assert revisions[A].plan.tasks[0].outputs[0].nodes == ()
    assert state.placements[T(2)].node == C and not state.complete


def test_a_finished_function_whose_output_only_the_lost_node_held_runs_again() -> None:
    state = progress(CHAIN, {1: B, 2: A, 3: A}, onto(C))
    state.finished(T(1), B)  # x is on B only: A had not received it yet
    actions = state.node_lost(B, "connection closed", 5.0)
    (replanned,) = of(actions, Replanned)
    assert replanned.rerun == (T(1),) and set(replanned.placements) == {1}
    (revision,) = [r for r in of(actions, Revise) if r.node == C]
    assert revision.plan.tasks[0].outputs[0].nodes == (A,)  # pushed to A, which expects it already
    assert T(1) not in state.done


def test_a_copy_held_by_another_node_is_pulled_instead_of_running_again() -> None:
    job = Job(1, (task(1, [("x", [2, 3])]), task(2), task(3)))
    state = progress(job, {1: B, 2: C, 3: B}, onto(A))
    state.finished(T(1), B)
    state.received(T(1), "x", C)
    actions = state.node_lost(B, "gone", 1.0)
    (replanned,) = of(actions, Replanned)
    assert replanned.rerun == () and set(replanned.placements) == {3}
    (revision,) = [r for r in of(actions, Revise) if r.node == A]
    assert revision.pulls == (Pull(T(1), "x", C),)


def test_a_result_not_yet_returned_is_computed_again_and_values_come_from_the_delegator() -> None:
    job = Job(1, (task(1, value=("v", [2])), task(2, [("out", [])])))
    state = progress(job, {1: A, 2: B}, onto(C))
    state.finished(T(1), A)
    state.finished(T(2), B)
    assert not state.complete  # out has not arrived
    actions = state.node_lost(B, "gone", 1.0)
    assert of(actions, Replanned)[0].rerun == (T(2),)
    assert of(actions, GiveValue) == [GiveValue(C, T(1), "v")]


def test_an_unfinished_function_on_a_live_node_is_left_where_it_is() -> None:
    job = Job(1, (task(1, [("x", [3])]), task(2, [("y", [3])]), task(3)))
    state = progress(job, {1: A, 2: B, 3: A}, onto(C))
    actions = state.node_lost(B, "gone", 1.0)
    (replanned,) = of(actions, Replanned)
    assert set(replanned.placements) == {2}
    (revision,) = [r for r in of(actions, Revise) if r.node == C]
    assert revision.plan.tasks[0].outputs[0].nodes == (A,) and revision.pulls == ()


def test_the_job_algorithm_re_plans_on_the_live_nodes_of_the_environment() -> None:
    env = local_environment(NODES, 2)
    place = replacer(env, get_scheduler("heft", 1), Config(), "env")
    state = progress(CHAIN, {1: A, 2: B, 3: C}, place)
    state.finished(T(1), A)
    actions = state.node_lost(B, "gone", 1.0)
    (replanned,) = of(actions, Replanned)
    assert set(replanned.placements) == {2}
    assert replanned.placements[T(2)].node in (A, C)
    assert str(replanned.placements[T(2)].vcpu) in {v for vm in env.vms.values() for v in vm.vcpus}


def test_the_job_fails_when_no_node_is_left() -> None:
    state = progress(CHAIN, {1: A, 2: A, 3: A}, onto(A))
    state.node_lost(B, "gone", 1.0)
    state.node_lost(C, "gone", 1.0)
    (fail,) = state.node_lost(A, "no heartbeat", 2.0)
    assert isinstance(fail, Fail) and "no node is left to run functions 1, 2, 3" in str(fail.error)


def test_retries_then_failure() -> None:
    state = progress(CHAIN, {1: A, 2: A, 3: A}, onto(A), retries=2)
    failure = JobFailed(1, A, "exit status 3", 3, "boom")
    assert state.function_failed(T(1), A, failure) == [Retry(A, T(1), 2, failure)]
    assert state.function_failed(T(1), A, failure) == [Retry(A, T(1), 3, failure)]
    assert state.function_failed(T(1), A, failure) == [Fail(failure)]


def test_reports_from_a_lost_node_are_stale() -> None:
    state = progress(CHAIN, {1: A, 2: B, 3: B}, onto(C))
    state.node_lost(B, "gone", 1.0)
    assert not state.finished(T(2), B)
    assert state.function_failed(T(2), B, JobFailed(2, B, "x")) == []


def test_a_node_peers_cannot_reach_is_suspected_then_lost() -> None:
    state = progress(CHAIN, {1: A, 2: B, 3: B}, onto(A))
    (suspect,) = state.send_failed(A, B, "connection refused", 3.0)
    assert suspect == Suspect(B, 3.0 + state.suspect_grace, "node 127.0.0.1:7001 cannot reach it: connection refused")
    assert state.send_failed(A, C, "x", 3.0) != [] and state.send_failed(C, C, "x", 3.0) != []
    state.node_lost(C, "gone", 4.0)
    assert state.send_failed(A, C, "late", 5.0) == []  # already lost
    assert of(state.unreachable(B, suspect.reason, 11.0), Replanned)
