"""A join of hundreds of inputs through ``sflow run`` in icn and auto modes: its description is far
larger than one Interest, so it is installed in parts (sflow.sfc.install), and it runs with every
input, files and values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
from sfc_cluster import sflow

from sflow.jsonio import job_from_dict
from sflow.model.workflow import TaskId
from sflow.sfc.names import build_specs, spec_to_wire
from sflow.sfc.service import MAX_INSTALL_PARAMS

WIDTH = 300


def wide_join(width: int) -> tuple[dict[str, Any], str]:
    """A start, ``width - 2`` distinct middle functions (odd ones give a file, even ones a value),
    and a join that reads them all; the join's expected output."""
    n = width
    middle = list(range(2, n))
    tasks: list[dict[str, Any]] = [{"task_id": 1, "workload": 1, "cmd": "true start",
                                    "out_value": {"val": "go", "size": 0, "dest_task_id": middle}}]
    for i in middle:
        task: dict[str, Any] = {"task_id": i, "workload": 1}
        if i % 2:
            task["cmd"] = f"echo $V^1-{i} > ./out/p{i}.txt"
            task["out_file_list"] = [{"path": f"./out/p{i}.txt", "size": 0.001, "dest_task_id": [n]}]
        else:
            task["cmd"] = f"true {i}"
            task["out_value"] = {"val": f"v{i}", "size": 0, "dest_task_id": [n]}
        tasks.append(task)
    files = " ".join(f"$F^{i}" for i in middle if i % 2)
    values = " ".join(f"$V^{i}" for i in middle if not i % 2)
    tasks.append({"task_id": n, "workload": 1, "cmd": f"cat {files} > ./out/join.txt && echo {values} >> ./out/join.txt",
                  "out_file_list": [{"path": "./out/join.txt", "size": 0.001, "dest_task_id": []}]})
    expected = "".join(f"go-{i}\n" for i in middle if i % 2) + " ".join(f"v{i}" for i in middle if not i % 2) + "\n"
    return {"job_id": 31, "task_list": tasks}, expected


@pytest.mark.parametrize("mode", ["icn", "auto"])
def test_a_join_of_hundreds_of_inputs_runs_in_icn_and_auto_modes(mode: str, tmp_path: Path) -> None:
    job, expected = wide_join(WIDTH)
    path = tmp_path / "wide-join.json"
    path.write_text(json.dumps(job))
    specs = build_specs(job_from_dict(job), {})
    assert len(msgpack.packb(spec_to_wire(specs[TaskId(WIDTH)]))) > 3 * MAX_INSTALL_PARAMS  # it needs parts
    out = tmp_path / "out"
    done = sflow("run", str(path), "--mode", mode, "--nodes", "3", "-o", str(out),
                 "--secret-file", str(tmp_path / "secret"), timeout=240)
    assert done.returncode == 0, done.stderr
    assert (out / "out" / "join.txt").read_text() == expected
    trace = json.loads((out / "trace.json").read_text())
    how = {r["task"]: r["where"] for r in trace["tasks"]}
    assert sorted(how) == list(range(1, WIDTH + 1))
    assert all(w.startswith("executed") for w in how.values()), {t: w for t, w in how.items() if "executed" not in w}
    if mode == "icn":
        assert len({r["node"] for r in trace["tasks"]}) == 3
