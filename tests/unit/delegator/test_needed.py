"""Which functions a static ICN run starts at once: exactly those the requests from END reach."""

from __future__ import annotations

import json
from typing import Any

from sflow.delegator.needed import must_run
from sflow.jsonio import job_from_dict
from sflow.model.workflow import Job, TaskId
from sflow.sfc.install import MAX_HELD_INPUTS, Held, held_from_wire
from sflow.sfc.names import build_specs


def _job(tasks: list[dict[str, Any]]) -> Job:
    return job_from_dict(json.loads(json.dumps({"job_id": 1, "task_list": tasks})))


def _chain(n: int) -> Job:
    return _job([{"task_id": i, "workload": 1, "cmd": f"s{i}" + (f" $F^{i - 1}" if i > 1 else "") + f" > ./o{i}",
                  "out_file_list": [{"path": f"./o{i}", "size": 0.1, "dest_task_id": [i + 1] if i < n else []}]}
                 for i in range(1, n + 1)])


def _fork_join() -> Job:
    def task(tid: int, cmd: str, out: str, to: list[int]) -> dict[str, Any]:
        return {"task_id": tid, "workload": 1, "cmd": f"{cmd} > ./{out}",
                "out_file_list": [{"path": f"./{out}", "size": 0.1, "dest_task_id": to}]}

    return _job([task(1, "a", "a", [2, 3]), task(2, "b $F^1", "b", [4]), task(3, "c $F^1", "c", [4]),
                 task(4, "d $F^2 $F^3", "d", [])])


def _run(job: Job, held: dict[int, Held | None]) -> list[int]:
    return [int(t) for t in must_run(job, build_specs(job, {}), {TaskId(t): h for t, h in held.items()})]


NOTHING = Held.of(False, [False])


def test_nothing_held_means_every_function_in_job_order() -> None:
    job = _fork_join()
    assert _run(job, {1: Held.of(False, []), 2: NOTHING, 3: NOTHING, 4: Held.of(False, [False, False])}) == [1, 2, 3, 4]


def test_a_held_end_result_means_nothing_runs() -> None:
    assert _run(_chain(3), {1: Held.of(False, []), 2: NOTHING, 3: Held.of(True, [False])}) == []


def test_the_requests_stop_at_an_input_the_consumer_holds_or_its_producer_holds() -> None:
    job = _chain(4)
    # 4's node holds input 3: nothing upstream of 4 is asked for
    assert _run(job, {1: Held.of(False, []), 2: NOTHING, 3: NOTHING, 4: Held.of(False, [True])}) == [4]
    # 3's own node holds it: 4 fetches it; 1 and 2 are not asked for
    assert _run(job, {1: Held.of(False, []), 2: NOTHING, 3: Held.of(True, [False]), 4: NOTHING}) == [4]
    # 2 is held: 3 and 4 run; 1 does not
    assert _run(job, {1: Held.of(False, []), 2: Held.of(True, [False]), 3: NOTHING, 4: NOTHING}) == [3, 4]


def test_one_branch_held_the_other_not() -> None:
    job = _fork_join()
    # 4's node holds 2's result (input 0), not 3's; 3 needs 1, which nobody holds
    held = {1: Held.of(False, []), 2: NOTHING, 3: NOTHING, 4: Held.of(False, [True, False])}
    assert _run(job, held) == [1, 3, 4]


def test_unknown_holdings_leave_a_function_to_the_requests() -> None:
    job = _chain(3)
    # 2's node did not say (an older node): 2 and what is above it are not started
    assert _run(job, {1: Held.of(False, []), 2: None, 3: NOTHING}) == [3]
    # 3's node did not say what it holds of its inputs
    assert _run(job, {1: Held.of(False, []), 2: NOTHING, 3: Held(False, None)}) == [3]
    # END's node did not answer at all
    assert _run(job, {1: Held.of(False, []), 2: NOTHING}) == []


def test_held_flags_on_the_wire() -> None:
    held = Held.of(True, [True, False, False, False, False, False, False, False, True])
    assert held.inputs == b"\x01\x01"
    assert [held.input(k) for k in (0, 1, 8, 16)] == [True, False, True, None]
    assert Held.of(False, [True] * (MAX_HELD_INPUTS + 1)).input(0) is None
    wire = [held.to_wire(), "junk", [True], [1, b""], [False, None]]
    assert held_from_wire(wire, 6) == [held, None, None, None, Held(False, None), None]
    assert held_from_wire(None, 2) == [None, None]
