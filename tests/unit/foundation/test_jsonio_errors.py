"""Every malformed input gets its own clear error naming the file, JSON path and id."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sflow import jsonio
from sflow.cli import main
from sflow.errors import InputError

ENV: dict[str, Any] = {
    "dc_list": [
        {
            "dc_id": 0,
            "bw": 125,
            "host_list": [
                {
                    "host_id": "0^0",
                    "bw": 125,
                    "cpu_list": [
                        {
                            "cpu_id": "0^0^0",
                            "mips": 3000,
                            "core_list": [
                                {
                                    "core_id": "0^0^0^0",
                                    "maxusage": 100,
                                    "vcpu_list": [{"vcpu_id": "a", "mips": 2000}, {"vcpu_id": "b"}],
                                }
                            ],
                        }
                    ],
                    "vm_list": [{"vm_id": "vm1", "ip": "127.0.0.1:7001", "vcpu_list": [{"vcpu_id": "a"}]}],
                }
            ],
        }
    ]
}

JOB: dict[str, Any] = {
    "job_id": 7,
    "task_list": [
        {"task_id": 5, "workload": 100, "cmd": "echo a > ./a", "out_file_list": [{"path": "./a", "size": 1, "dest_task_id": [9]}]},
        {"task_id": 9, "workload": 200, "cmd": "cat $F^5 > ./b", "out_file_list": [{"path": "./b", "size": 1, "dest_task_id": []}]},
    ],
}


def env_error(data: Any) -> InputError:
    with pytest.raises(InputError) as info:
        jsonio.environment_from_dict(data, "env.json")
    return info.value


def job_error(data: Any) -> InputError:
    with pytest.raises(InputError) as info:
        jsonio.job_from_dict(data, "job.json")
    return info.value


def edit(base: dict[str, Any], fn: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    fn(doc)
    return doc


def test_good_inputs_load() -> None:
    env = jsonio.environment_from_dict(ENV, "env.json")
    assert [v.id for v in env.schedulable] == ["a"]
    assert env.orphan_vcpus == ("b",)
    assert env.vcpus["b"].mips == 3000  # falls back to the CPU's mips
    assert env.vms["vm1"].address.port == 7001
    job = jsonio.job_from_dict(JOB, "job.json")
    assert job.start_tasks == (5,) and job.end_tasks == (9,)


def test_unknown_dest_task_id() -> None:
    err = job_error(edit(JOB, lambda d: d["task_list"][0]["out_file_list"][0].update(dest_task_id=[9, 42])))
    assert err.source == "job.json"
    assert err.where == "$.task_list[0].out_file_list[0].dest_task_id[1]"
    assert "task 42" in err.message and "does not exist" in err.message


def test_duplicate_task_id() -> None:
    err = job_error(edit(JOB, lambda d: d["task_list"][1].update(task_id=5)))
    assert err.where == "$.task_list[1].task_id"
    assert "duplicate task_id 5" in err.message and "$.task_list[0]" in err.message


def test_cycle() -> None:
    err = job_error(edit(JOB, lambda d: d["task_list"][1]["out_file_list"][0].update(dest_task_id=[5])))
    assert "cycle" in err.message and "5 -> 9 -> 5" in err.message


def test_self_loop_is_a_cycle() -> None:
    err = job_error(edit(JOB, lambda d: d["task_list"][1]["out_file_list"][0].update(dest_task_id=[9])))
    assert "cycle" in err.message and "9 -> 9" in err.message


@pytest.mark.parametrize("field,value,needle", [
    ("workload", -1, "non-negative"),
    ("workload", "lots", "expected a number"),
    ("workload", True, "expected a number"),
])
def test_bad_workload(field: str, value: Any, needle: str) -> None:
    err = job_error(edit(JOB, lambda d: d["task_list"][1].update({field: value})))
    assert err.where == f"$.task_list[1].{field}" and needle in err.message and "task 9" in err.message


def test_bad_size() -> None:
    err = job_error(edit(JOB, lambda d: d["task_list"][0]["out_file_list"][0].update(size=-3)))
    assert err.where == "$.task_list[0].out_file_list[0].size" and "non-negative" in err.message


def test_missing_required_field() -> None:
    err = job_error(edit(JOB, lambda d: d["task_list"][0].pop("cmd")))
    assert err.where == "$.task_list[0]" and "'cmd'" in err.message and "task 5" in err.message
    err = job_error(edit(JOB, lambda d: d.pop("job_id")))
    assert err.where == "$" and "'job_id'" in err.message


def test_path_traversal_out_file_rejected() -> None:
    err = job_error(edit(JOB, lambda d: d["task_list"][0]["out_file_list"][0].update(path="../../etc/passwd")))
    assert err.where.endswith(".path") and "escapes the job directory" in err.message
    err = job_error(edit(JOB, lambda d: d["task_list"][0]["out_file_list"][0].update(path="/etc/passwd")))
    assert "absolute path" in err.message


def test_duplicate_vcpu_id() -> None:
    core = lambda d: d["dc_list"][0]["host_list"][0]["cpu_list"][0]["core_list"][0]  # noqa: E731
    err = env_error(edit(ENV, lambda d: core(d)["vcpu_list"][1].update(vcpu_id="a")))
    assert err.where.endswith("vcpu_list[1].vcpu_id") and "duplicate vcpu_id 'a'" in err.message


def test_duplicate_vm_id_with_different_content() -> None:
    def add(d: dict[str, Any]) -> None:
        d["dc_list"][0]["host_list"][0]["vm_list"].append({"vm_id": "vm1", "ip": "127.0.0.1:7002", "vcpu_list": [{"vcpu_id": "b"}]})
    err = env_error(edit(ENV, add))
    assert err.where.endswith("vm_list[1].vm_id") and "duplicate vm_id 'vm1'" in err.message


def test_vcpu_in_two_vms() -> None:
    def add(d: dict[str, Any]) -> None:
        d["dc_list"][0]["host_list"][0]["vm_list"].append({"vm_id": "vm2", "ip": "127.0.0.1", "vcpu_list": [{"vcpu_id": "a"}]})
    err = env_error(edit(ENV, add))
    assert "vCPU 'a' is listed in VM 'vm1' and in VM 'vm2'" in err.message


def test_vm_names_unknown_vcpu() -> None:
    err = env_error(edit(ENV, lambda d: d["dc_list"][0]["host_list"][0]["vm_list"][0]["vcpu_list"].append({"vcpu_id": "zz"})))
    assert err.where.endswith("vm_list[0].vcpu_list[1].vcpu_id") and "unknown vCPU 'zz'" in err.message


@pytest.mark.parametrize("where,fn", [
    ("$.dc_list[0].bw", lambda d: d["dc_list"][0].update(bw=-5)),
    ("$.dc_list[0].host_list[0].bw", lambda d: d["dc_list"][0]["host_list"][0].update(bw="fast")),
    ("$.dc_list[0].host_list[0].cpu_list[0].core_list[0].vcpu_list[0].mips",
     lambda d: d["dc_list"][0]["host_list"][0]["cpu_list"][0]["core_list"][0]["vcpu_list"][0].update(mips=0)),
])
def test_bad_speeds_and_bandwidths(where: str, fn: Any) -> None:
    err = env_error(edit(ENV, fn))
    assert err.where == where


def test_missing_required_env_field() -> None:
    err = env_error(edit(ENV, lambda d: d["dc_list"][0].pop("bw")))
    assert err.where == "$.dc_list[0]" and "'bw'" in err.message


def test_bad_vm_address() -> None:
    err = env_error(edit(ENV, lambda d: d["dc_list"][0]["host_list"][0]["vm_list"][0].update(ip="127.0.0.1:99999")))
    assert "bad port" in err.message and "VM vm1" in err.message
    err = env_error(edit(ENV, lambda d: d["dc_list"][0]["host_list"][0]["vm_list"][0].update(port=7002)))
    assert "disagree" in err.message


def test_separate_port_field() -> None:
    doc = edit(ENV, lambda d: d["dc_list"][0]["host_list"][0]["vm_list"][0].update(ip="::1", port=7005))
    env = jsonio.environment_from_dict(doc, "env.json")
    assert str(env.vms["vm1"].address) == "[::1]:7005"


def test_not_json_file(tmp_path: Path) -> None:
    p = tmp_path / "job.json"
    p.write_text("{ not json")
    with pytest.raises(InputError) as info:
        jsonio.load_job(p)
    assert str(p) in str(info.value) and "not valid JSON: line 1" in str(info.value)
    with pytest.raises(InputError, match="no such file"):
        jsonio.load_job(tmp_path / "missing.json")


def test_not_an_object() -> None:
    err = job_error([1, 2])
    assert err.where == "$" and "expected an object, found an array" in err.message


def test_cli_exit_status_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = tmp_path / "env.json"
    env.write_text(json.dumps(ENV))
    job = tmp_path / "job.json"
    job.write_text(json.dumps(edit(JOB, lambda d: d["task_list"][1].update(task_id=5))))
    assert main(["validate", str(env), str(job)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{job}: $.task_list[1].task_id: duplicate task_id 5" in err


def test_cycle_behind_and_beside_acyclic_parts() -> None:
    # 1 -> 2 -> 3 -> 4 -> 2 (a cycle entered from 1), and 4 -> 5, 6 -> 5 outside it
    from sflow.model.workflow import OutValue, Task, TaskId, find_cycle

    def task(i: int, *dests: int) -> Task:
        return Task(TaskId(i), 1.0, "true", out_value=OutValue("v", 0.0, tuple(TaskId(d) for d in dests)) if dests else None)

    tasks = [task(1, 2), task(2, 3), task(3, 4), task(4, 2, 5), task(5), task(6, 5)]
    assert find_cycle(tasks) == [2, 3, 4, 2]
    assert find_cycle([task(1, 2), task(2, 3), task(3), task(6, 3)]) is None
    chain = [task(i, i + 1) for i in range(1, 50_000)] + [task(50_000)]
    assert find_cycle(chain) is None  # linear: no recursion, no quadratic search
    assert find_cycle(chain[:-1] + [task(50_000, 1)]) == [*range(1, 50_001), 1]
