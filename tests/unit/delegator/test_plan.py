"""Splitting a job per node, the wire form of a node plan, and the trace file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sflow.delegator.plan import ResultFile, TaskPlacement, build_plan, schedule_order
from sflow.delegator.trace import TaskRun, Trace, TransferRun, load_trace, trace_chart, write_trace
from sflow.errors import InputError, ProtocolError
from sflow.model import Job, OutFile, OutValue, Task, TaskId
from sflow.model.infra import VcpuId
from sflow.node.plan import FileRoute, InputFile, plan_from_wire, plan_to_wire

T = TaskId
A, B = "10.0.0.1:7070", "10.0.0.2:7070"


def task(tid: int, files: list[tuple[str, list[int]]] = (), value: tuple[str, list[int]] | None = None) -> Task:  # type: ignore[assignment]
    return Task(
        T(tid),
        1.0,
        f"run {tid}",
        out_files=tuple(OutFile(p, 1, tuple(T(d) for d in ds)) for p, ds in files),
        out_value=OutValue(value[0], 0, tuple(T(d) for d in value[1])) if value else None,
    )


def place(where: dict[int, str]) -> dict[TaskId, TaskPlacement]:
    return {T(t): TaskPlacement(n, VcpuId(f"{n}-v"), 0) for t, n in where.items()}


def test_diamond_routes_and_results() -> None:
    job = Job(
        3,
        (
            task(1, [("./a", [2]), ("b", [2, 3])]),
            task(2, [("c", [4])], value=("v", [4])),
            task(3, [("d", [4])]),
            task(4, [("r1", []), ("r2", [])]),
        ),
    )
    plan = build_plan(job, place({1: A, 2: B, 3: A, 4: A}), job.order, "abc")
    a, b = plan.nodes[A], plan.nodes[B]
    assert [t.id for t in a.tasks] == [1, 3, 4] and [t.id for t in b.tasks] == [2]
    t1 = a.tasks[0]
    # each file once to B (task 2 there); b stays local for task 3
    assert t1.outputs == (FileRoute("a", (B,), False), FileRoute("b", (B,), False))
    t2 = b.tasks[0]
    assert t2.inputs == (InputFile(T(1), "a"), InputFile(T(1), "b"))
    assert t2.file_args == (InputFile(T(1), "a"),)  # $F^1 names the first file from 1
    assert t2.value is not None and t2.value.nodes == (A,)
    t4 = a.tasks[2]
    assert t4.value_preds == (T(2),) and {i.path for i in t4.inputs} == {"c", "d"}
    assert plan.results == (ResultFile(T(4), "r1", "r1"), ResultFile(T(4), "r2", "r2"))  # every END output


def test_same_result_path_from_two_end_functions_gets_a_prefix() -> None:
    job = Job(1, (task(1, [("out.txt", [])]), task(2, [("out.txt", [])])))
    plan = build_plan(job, place({1: A, 2: B}), job.order, "r")
    assert [r.name for r in plan.results] == ["task-1/out.txt", "task-2/out.txt"]


def test_two_producers_of_one_path_on_a_node_are_refused() -> None:
    job = Job(1, (task(1, [("x", [3])]), task(2, [("x", [3])]), task(3)))
    with pytest.raises(InputError, match="tasks 1 and 2 both put 'x'"):
        build_plan(job, place({1: A, 2: B, 3: A}), job.order, "r")


def test_missing_placement_and_bad_order() -> None:
    job = Job(1, (task(1), task(2)))
    with pytest.raises(InputError, match="no placement"):
        build_plan(job, place({1: A}), job.order, "r")
    with pytest.raises(InputError, match="exactly once"):
        build_plan(job, place({1: A, 2: A}), (T(1),), "r")


def test_schedule_order_by_start_then_topology() -> None:
    job = Job(1, (task(1, [("f", [3])]), task(2), task(3)))
    assert schedule_order(job, {T(1): 0.0, T(2): 0.0, T(3): 1.0}) == (1, 2, 3)
    assert schedule_order(job, {T(1): 2.0, T(2): 0.0, T(3): 5.0}) == (2, 1, 3)
    assert schedule_order(job, None) == job.order


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from([A, B]), min_size=4, max_size=4))
def test_wire_round_trip(nodes: list[str]) -> None:
    job = Job(3, (task(1, [("a", [2, 3])], value=("v", [4])), task(2, [("b", [4])]), task(3, [("c", [4])]), task(4, [("r", [])])))
    plan = build_plan(job, place(dict(zip([1, 2, 3, 4], nodes))), job.order, "r1")
    for node_plan in plan.nodes.values():
        assert plan_from_wire(plan_to_wire(node_plan)) == node_plan


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda w: w["tasks"][0]["outputs"][0].__setitem__(0, "../x"), "escapes the job directory"),
        (lambda w: w["tasks"][0]["inputs"].append([1, "/etc/passwd"]), "absolute path"),
        (lambda w: w["tasks"][0].__setitem__("id", "1"), "wrong type"),
        (lambda w: w.__setitem__("run_id", "../x"), "letters and digits"),
        (lambda w: w["tasks"].append(dict(w["tasks"][0])), "appears twice"),
        (lambda w: w["tasks"][0].pop("cmd"), "missing 'cmd'"),
        (lambda w: w["tasks"][0].__setitem__("value", [1, []]), "expected \\[val"),
    ],
)
def test_wire_reader_checks_every_field(edit: object, error: str) -> None:
    job = Job(3, (task(1, [("a", [])]),))
    wire = plan_to_wire(build_plan(job, place({1: A}), job.order, "r1").nodes[A])
    edit(wire)  # type: ignore[operator]
    with pytest.raises(ProtocolError, match=error):
        plan_from_wire(wire)


def test_trace_round_trip_and_chart(tmp_path: Path) -> None:
    trace = Trace(
        5, "r1", "ip", "heft", 3.0, 2.5,
        (TaskRun(1, A, "v0", 0.0, 1.0, "native", 0.0, 1.0), TaskRun(2, B, "v1", 1.2, 2.5, "docker:x")),
        (TransferRun(1, "a", A, B, "v0", "v1", 10, 1.0, 1.2),),
        ("r",),
    )
    write_trace(tmp_path / "t.json", trace)
    assert load_trace(tmp_path / "t.json") == trace
    bars, transfers = trace_chart(trace)
    assert [b.lane for b in bars] == ["v0", "v1"] and transfers[0].dst_lane == "v1"
    (tmp_path / "bad.json").write_text('{"job_id": 1}')
    with pytest.raises(InputError, match="not a trace"):
        load_trace(tmp_path / "bad.json")
