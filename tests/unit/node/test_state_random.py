"""Random DAGs on random placements: every node's state machine, driven together, runs each
function exactly once, after all its inputs, one at a time per vCPU, and returns every result."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sflow.delegator.plan import TaskPlacement, build_plan, schedule_order
from sflow.model import Job, OutFile, OutValue, Task, TaskId
from sflow.model.infra import VcpuId
from sflow.node.state import Action, AllDone, JobState, ReturnFile, Run, SendFile, SendValue

NODES = ("n0:1", "n1:1", "n2:1")


@st.composite
def scenario(draw: st.DrawFn) -> tuple[Job, dict[TaskId, TaskPlacement], int]:
    n = draw(st.integers(min_value=1, max_value=12))
    tasks = []
    for i in range(1, n + 1):
        later = list(range(i + 1, n + 1))
        files = []
        for k in range(draw(st.integers(0, 2))):
            dests = draw(st.lists(st.sampled_from(later), unique=True, max_size=3)) if later else []
            files.append(OutFile(f"t{i}/f{k}", 1.0, tuple(TaskId(d) for d in dests)))
        value = None
        if later and draw(st.booleans()):
            value = OutValue(f"v{i}", 0.0, tuple(TaskId(d) for d in draw(st.lists(st.sampled_from(later), unique=True, min_size=1, max_size=2))))
        tasks.append(Task(TaskId(i), 1.0, "x", out_files=tuple(files), out_value=value))
    job = Job(1, tuple(tasks))
    placements = {
        t.id: TaskPlacement(node, VcpuId(f"{node}/v{draw(st.integers(0, 1))}"), 0)
        for t in tasks
        for node in [draw(st.sampled_from(NODES))]
    }
    return job, placements, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_random_dags_run_correctly(case: tuple[Job, dict[TaskId, TaskPlacement], int]) -> None:
    job, placements, seed = case
    rng = random.Random(seed)
    starts = {t: float(i) for i, t in enumerate(job.order)}
    plan = build_plan(job, placements, schedule_order(job, starts), "r")
    states = {node: JobState(p) for node, p in plan.nodes.items()}
    sent: list[tuple[int, str, str]] = []
    running: dict[TaskId, str] = {}
    done: list[TaskId] = []
    returned: set[tuple[int, str]] = set()
    in_flight: list[tuple[str, Action]] = []  # deliveries not yet made, in any order

    def apply(node: str, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, Run):
                tid = a.task.id
                assert tid not in running and tid not in done
                assert all(p in done for p in job.preds[tid]), f"{tid} ran before its inputs"
                busy = {placements[r].vcpu for r in running}
                assert placements[tid].vcpu not in busy, "two functions on one vCPU"
                running[tid] = node
            elif isinstance(a, (SendFile, SendValue)):
                assert a.node != node
                if isinstance(a, SendFile):
                    sent.append((a.task, a.path, a.node))
                in_flight.append((a.node, a))
            elif isinstance(a, ReturnFile):
                returned.add((a.task, a.path))
            else:
                assert isinstance(a, AllDone)

    for node, state in states.items():
        apply(node, state.start())
    while running or in_flight:
        if in_flight and (not running or rng.random() < 0.5):
            node, a = in_flight.pop(rng.randrange(len(in_flight)))
            if isinstance(a, SendFile):
                apply(node, states[node].file_arrived(a.task, a.path))
            elif isinstance(a, SendValue):
                apply(node, states[node].value_arrived(a.task, a.val))
        else:
            tid = rng.choice(sorted(running))
            node = running.pop(tid)
            done.append(tid)
            apply(node, states[node].task_finished(tid, True))
    assert sorted(done) == sorted(job.by_id)
    assert all(s.finished for s in states.values())
    assert returned == {(r.task, r.path) for r in plan.results}
    for t in job.tasks:
        for f in t.out_files:
            if not f.dest:
                assert (t.id, f.path) in returned
    assert len(sent) == len(set(sent)), "a file was sent twice to one node"
