"""Calibration from traces: samples per function and host, unmeasured rows, output sizes, fitted
links, hand-offs, and traces read tolerantly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sflow.delegator.calibrate import calibrate, fit_link, is_measured
from sflow.delegator.trace import TaskRun, Trace, TransferRun, load_trace, trace_to_dict
from sflow.errors import InputError
from sflow.jsonio import job_from_dict
from sflow.model.costs import function_key
from sflow.model.workflow import Job, TaskId

A, B = "10.0.0.1:7070", "10.0.0.2:7070"


def fork_job() -> Job:
    """1 → 2 (on A with 1), 1 → 3 (on B); 2, 3 → 4 (on A)."""
    return job_from_dict({"job_id": 5, "task_list": [
        {"task_id": 1, "workload": 1, "cmd": "gen", "out_file_list": [
            {"path": "./big", "size": 9, "dest_task_id": [2, 3]}, {"path": "./small", "size": 9, "dest_task_id": [3]}]},
        {"task_id": 2, "workload": 1, "cmd": "a $F^1", "out_file_list": [{"path": "./x", "size": 1, "dest_task_id": [4]}]},
        {"task_id": 3, "workload": 1, "cmd": "b $F^1", "out_file_list": [{"path": "./y", "size": 1, "dest_task_id": [4]}]},
        {"task_id": 4, "workload": 1, "cmd": "c $F^2 $F^3"},
    ]}, "<job>")


def trace(run_id: str = "r1", scale: float = 1.0) -> Trace:
    tasks = (
        TaskRun(1, A, "v0", 0.0, 1.0 * scale, "native"),
        TaskRun(2, A, "v0", 1.0 * scale + 0.01, 2.0 * scale, "native"),
        TaskRun(3, B, "v1", 1.5 * scale, 2.5 * scale, "docker"),
        TaskRun(4, A, "v0", 2.6 * scale, 3.0 * scale, "native"),
    )
    transfers = (
        # From the end of task 1 (1.0) to arrival: 0.2 s for 2 MB and 0.1 s for 1 MB → 0.1 s per MB, no latency.
        TransferRun(1, "big", A, B, "v0", "v1", 2_000_000, 1.05 * scale, 1.0 * scale + 0.2),
        TransferRun(1, "small", A, B, "v0", "v1", 1_000_000, 1.02 * scale, 1.0 * scale + 0.1),
        TransferRun(3, "y", B, A, "v1", "v0", 500, 2.5 * scale, 2.5 * scale + 0.05),
    )
    return Trace(5, run_id, "ip", "heft", 10.0, 3.0 * scale, tasks, transfers, ("z",))


def test_samples_outputs_links_and_hand_off() -> None:
    job = fork_job()
    result = calibrate([("t1.json", trace()), ("t2.json", trace("r2", 1.0))], {5: ("job.json", job)})
    costs = result.costs
    assert result.notes == ()
    assert costs.runs == ("job 5 run r1 (ip)", "job 5 run r2 (ip)")
    by_task = {f.task_id: f for f in costs.functions}
    assert by_task[1].key == function_key(job.by_id[TaskId(1)]) and by_task[1].label == "gen"
    assert by_task[1].seconds == {A: (1.0, 1.0)}
    assert by_task[3].seconds == {B: (1.0, 1.0)}
    assert by_task[1].outputs == {"big": 2_000_000, "small": 1_000_000}
    assert by_task[3].outputs == {"y": 500}
    assert {h.name: h.vcpus for h in costs.hosts} == {A: ("v0",), B: ("v1",)}
    links = {(lk.src, lk.dst): lk for lk in costs.links}
    ab = links[(A, B)]
    assert ab.samples == 4 and ab.latency == pytest.approx(0.0, abs=1e-9) and ab.bandwidth == pytest.approx(10.0)
    ba = links[(B, A)]
    assert ba.bandwidth is None and ba.latency is None and ba.mean_seconds == pytest.approx(0.05)
    # Task 2 started 0.01 s after task 1 on its node; task 4 waited for task 3's file, not for task 2.
    aa = links[(A, A)]
    assert aa.samples == 2 and aa.latency == pytest.approx(0.01)
    assert (B, B) not in links


def test_unmeasured_rows_and_traces_without_a_job() -> None:
    base = trace()
    rows = (
        base.tasks[0],
        TaskRun(2, A, "v0", 0.0, 0.0, "cache hit (content store)"),
        TaskRun(3, "-", "v1", 0.0, 0.0, "not needed (a later result was cached)"),
        TaskRun(4, A, "v0", 2.6, 3.0, "executed (native)"),
    )
    icn = Trace(5, "r3", "icn", "heft", None, 3.0, rows, (), ())
    assert [is_measured(r) for r in rows] == [True, False, False, True]
    result = calibrate([("t.json", icn)], {})
    assert {f.task_id for f in result.costs.functions} == {1, 4}
    assert all(f.key is None for f in result.costs.functions)
    assert any("no job file for job 5" in n for n in result.notes)
    assert any("2 function(s) answered from a cache or not run" in n for n in result.notes)


def test_a_job_file_that_lacks_a_traced_function_is_an_error() -> None:
    small = job_from_dict({"job_id": 5, "task_list": [{"task_id": 1, "workload": 1, "cmd": "gen"}]}, "small.json")
    with pytest.raises(InputError, match="function 2 of job 5 is not in the job file small.json"):
        calibrate([("t.json", trace())], {5: ("small.json", small)})


def test_fit_link_rules() -> None:
    line = fit_link(A, B, [(1.0, 0.3), (3.0, 0.7), (2.0, 0.5)])
    assert line.latency == pytest.approx(0.1) and line.bandwidth == pytest.approx(5.0)
    one_size = fit_link(A, B, [(1.0, 0.3), (1.1, 0.5)])
    assert one_size.bandwidth is None and one_size.latency is None and one_size.mean_mb == pytest.approx(1.05)
    flat = fit_link(A, B, [(1.0, 0.5), (3.0, 0.3)])
    assert flat.bandwidth is None and flat.latency == pytest.approx(0.4)
    through_origin = fit_link(A, B, [(1.0, 0.05), (3.0, 0.6)])
    assert through_origin.latency == 0.0 and through_origin.bandwidth == pytest.approx(10 / 1.85)
    hand_off = fit_link(A, A, [(0.0, 0.01), (0.0, 0.03), (0.0, 0.02)])
    assert hand_off.latency == pytest.approx(0.02) and hand_off.bandwidth is None


def test_traces_with_fields_added_later_still_load(tmp_path: Path) -> None:
    data = trace_to_dict(trace())
    data["future"] = {"anything": 1}
    for row in data["tasks"]:
        row["cached"] = False
        row["extra"] = "x"
    for x in data["transfers"]:
        x["receiver_done"] = x["finish"]
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(data))
    result = calibrate([(str(path), load_trace(path))], {5: ("job.json", fork_job())})
    assert len(result.costs.functions) == 4


def test_a_file_had_arrived_when_its_reader_started() -> None:
    base = trace()
    late = TransferRun(1, "./big", A, B, "v0", "v1", 2_000_000, 1.05, 1.9)  # reported after task 3 began (1.5)
    result = calibrate([("t.json", Trace(5, "r", "ip", "heft", 1.0, 3.0, base.tasks, (late,), ()))],
                       {5: ("job.json", fork_job())})
    link = {(lk.src, lk.dst): lk for lk in result.costs.links}[(A, B)]
    assert link.mean_seconds == pytest.approx(0.5)  # 1.0 (task 1's end) → 1.5, not → 1.9
    unknown_job = calibrate([("t.json", Trace(5, "r", "ip", "heft", 1.0, 3.0, base.tasks, (late,), ()))], {})
    assert {(lk.src, lk.dst): lk for lk in unknown_job.costs.links}[(A, B)].mean_seconds == pytest.approx(0.9)
