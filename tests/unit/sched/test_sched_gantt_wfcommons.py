"""Gantt charts and the WfCommons importer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sched_builders import CANONICAL, make_job, two_dc_env
from sflow.errors import InputError
from sflow.jsonio import job_from_dict
from sflow.model.workflow import TaskId
from sflow.sched.gantt import Bar, Transfer, draw_gantt, schedule_chart
from sflow.sched.problem import Problem
from sflow.sched.registry import get_scheduler
from sflow.wfcommons import convert

# -- Gantt ------------------------------------------------------------------------------------------


def test_schedule_chart_has_a_bar_per_task_and_inter_host_transfers() -> None:
    env = two_dc_env()
    job = make_job(*CANONICAL["fork"])
    problem = Problem.from_env_job(env, job)
    schedule = get_scheduler("round-robin").schedule(problem)
    bars, transfers = schedule_chart(problem, schedule)
    assert sorted(int(b.label) for b in bars) == [1, 2, 3, 4, 5]
    host = dict(zip(problem.proc_ids, problem.hosts))
    crossing = [(s, d) for (s, d) in job.edges if host[schedule.slots[s].vcpu] != host[schedule.slots[d].vcpu]]
    assert len(transfers) == len(crossing) > 0
    for t in transfers:
        assert t.end > t.start


@pytest.mark.parametrize("ext", ["png", "svg"])
def test_draw_gantt_writes_the_file(tmp_path: Path, ext: str) -> None:
    bars = [Bar("v0", "h0", "1", 0, 2), Bar("v1", "h0", "2", 2, 3), Bar("v2", "h1", "3", 4, 6)]
    transfers = [Transfer("v1", "v2", 3, 4, "2→3")]
    out = tmp_path / f"chart.{ext}"
    draw_gantt(bars, transfers, out, title="t")
    assert out.stat().st_size > 1000


def test_draw_gantt_refuses_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unsupported chart format"):
        draw_gantt([], [], tmp_path / "chart.bmp")


# -- WfCommons --------------------------------------------------------------------------------------

V14: dict[str, Any] = {
    "name": "tiny-1.4",
    "schemaVersion": "1.4",
    "workflow": {
        "makespanInSeconds": 10,
        "executedAt": "20230101T000000+0000",
        "tasks": [
            {"name": "split", "id": "split_1", "type": "compute", "runtimeInSeconds": 2.0,
             "parents": [], "children": ["work_1", "work_2"],
             "files": [{"link": "input", "name": "in.txt", "sizeInBytes": 1000},
                       {"link": "output", "name": "a.txt", "sizeInBytes": 3_000_000},
                       {"link": "output", "name": "b.txt", "sizeInBytes": 5_000_000}]},
            {"name": "work", "id": "work_1", "type": "compute", "runtimeInSeconds": 4.5,
             "parents": ["split_1"], "children": ["merge_1"],
             "files": [{"link": "input", "name": "a.txt", "sizeInBytes": 3_000_000},
                       {"link": "output", "name": "a.out", "sizeInBytes": 1_000_000}]},
            {"name": "work", "id": "work_2", "type": "compute", "runtimeInSeconds": 1.0,
             "parents": ["split_1"], "children": ["merge_1"],
             "files": [{"link": "input", "name": "b.txt", "sizeInBytes": 5_000_000}]},
            {"name": "merge", "id": "merge_1", "type": "compute", "runtimeInSeconds": 0.5,
             "parents": ["work_1", "work_2"], "children": [],
             "files": [{"link": "input", "name": "a.out", "sizeInBytes": 1_000_000},
                       {"link": "output", "name": "result/final.txt", "sizeInBytes": 10}]},
        ],
    },
}

V15: dict[str, Any] = {
    "name": "tiny-1.5",
    "schemaVersion": "1.5",
    "workflow": {
        "specification": {
            "tasks": [
                {"name": "split", "id": "t1", "parents": [], "children": ["t2", "t3"],
                 "inputFiles": ["in"], "outputFiles": ["a", "b"]},
                {"name": "work", "id": "t2", "parents": ["t1"], "children": ["t4"],
                 "inputFiles": ["a"], "outputFiles": ["aout"]},
                {"name": "work", "id": "t3", "parents": ["t1"], "children": ["t4"],
                 "inputFiles": ["b"], "outputFiles": []},
                {"name": "merge", "id": "t4", "parents": ["t2", "t3"], "children": [],
                 "inputFiles": ["aout"], "outputFiles": ["final"]},
            ],
            "files": [
                {"id": "in", "sizeInBytes": 1000},
                {"id": "a", "sizeInBytes": 3_000_000},
                {"id": "b", "sizeInBytes": 5_000_000},
                {"id": "aout", "sizeInBytes": 1_000_000},
                {"id": "final", "sizeInBytes": 10},
            ],
        },
        "execution": {
            "makespanInSeconds": 10,
            "executedAt": "20230101T000000+0000",
            "tasks": [
                {"id": "t1", "runtimeInSeconds": 2.0},
                {"id": "t2", "runtimeInSeconds": 4.5},
                {"id": "t3", "runtimeInSeconds": 1.0},
                {"id": "t4", "runtimeInSeconds": 0.5},
            ],
        },
    },
}


@pytest.mark.parametrize("instance", [V14, V15], ids=["1.4", "1.5"])
def test_wfcommons_both_versions_give_the_same_graph(instance: dict[str, Any]) -> None:
    data = convert(instance, "tiny.json", reference_mips=2000)
    job = job_from_dict(data, "converted")
    assert [t.workload for t in job.tasks] == [4000, 9000, 2000, 1000]
    assert {k: e.size for k, e in job.edges.items()} == {(1, 2): 3.0, (1, 3): 5.0, (2, 4): 1.0, (3, 4): 0.0}
    assert job.start_tasks == (1,) and job.end_tasks == (4,)
    assert all(t.cmd.startswith("true ") for t in job.tasks)
    assert data["wfcommons"]["reference_mips"] == 2000
    # The control dependency 3 → 4 (no file) travels as an empty value.
    assert job.edges[(TaskId(3), TaskId(4))].value


def test_wfcommons_file_names_become_safe_relative_paths() -> None:
    data = convert(V14, "tiny.json")
    merge = data["task_list"][3]
    assert merge["out_file_list"][0]["path"] == "./result_final.txt"
    assert merge["out_file_list"][0]["dest_task_id"] == []


def test_wfcommons_errors_name_the_place() -> None:
    bad = json.loads(json.dumps(V14))
    del bad["workflow"]["tasks"][1]["runtimeInSeconds"]
    with pytest.raises(InputError, match=r"tiny.json: \$.workflow.tasks\[1\]: missing required field 'runtimeInSeconds'"):
        convert(bad, "tiny.json")
    bad = json.loads(json.dumps(V15))
    bad["workflow"]["specification"]["tasks"][0]["children"].append("t9")
    with pytest.raises(InputError, match="unknown task 't9'"):
        convert(bad, "tiny.json")
    bad = json.loads(json.dumps(V15))
    bad["workflow"]["specification"]["tasks"][0]["parents"] = ["t4"]
    with pytest.raises(InputError, match="cycle"):
        convert(bad, "tiny.json")
    with pytest.raises(InputError, match="reference-mips"):
        convert(V14, "tiny.json", reference_mips=0)
