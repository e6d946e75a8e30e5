"""The original's samples load unchanged; env, job and mapping formats round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sflow import jsonio
from sflow.cli import main
from sflow.model import Job, OutFile, Task, TaskId
from sflow.model.workflow import OutValue
from sflow.model.infra import Environment
from sflow.model.schedule import Schedule, Slot


def test_original_env_loads(samples: Path) -> None:
    env = jsonio.load_environment(samples / "env_ncl.json")
    assert len(env.vcpus) == 36 and len(env.schedulable) == 36
    assert len(env.vms) == 13  # VM 0^0^8 is repeated word for word in the file
    assert any("0^0^8" in w for w in env.warnings)
    # Two VMs may share an address (the sample gives 0^0^9 and 0^0^12 the same IP).
    assert str(env.vms["0^0^9"].address) == str(env.vms["0^0^12"].address) == "192.168.1.180"
    assert env.vcpus["0^0^0^3^0"].mips == 2500


def test_original_jobs_load(samples: Path) -> None:
    ff = jsonio.load_job(samples / "job_ffmpeg.json")
    assert ff.start_tasks == (1,) and ff.end_tasks == (4,)
    assert ff.edges[(2, 4)].size == 150 and ff.task(2).docker_image == "ffmpeg_2nd"
    ncl = jsonio.load_job(samples / "job_ncl.json")
    assert len(ncl.tasks) == 42 and ncl.start_tasks == (1,) and ncl.end_tasks == (42,)
    assert ncl.task(1).usage == 55.5  # not truncated to an int as the original did


def test_start_end_from_graph_not_file_order(tmp_path: Path) -> None:
    # Ids decrease along the edges and the file lists the END first: the original marked wrong STARTs.
    job = jsonio.job_from_dict({"job_id": 1, "task_list": [
        {"task_id": 1, "workload": 1, "cmd": "true"},
        {"task_id": 3, "workload": 1, "cmd": "true", "out_file_list": [{"path": "x", "size": 1, "dest_task_id": [2]}]},
        {"task_id": 2, "workload": 1, "cmd": "true", "out_file_list": [{"path": "y", "size": 1, "dest_task_id": [1]}]},
    ]})
    assert job.start_tasks == (3,) and job.end_tasks == (1,)
    assert job.order == (3, 2, 1)


def test_two_files_between_one_pair_make_one_edge_with_both() -> None:
    job = jsonio.job_from_dict({"job_id": 1, "task_list": [
        {"task_id": 1, "workload": 1, "cmd": "true", "out_file_list": [
            {"path": "a", "size": 2, "dest_task_id": [2]}, {"path": "b", "size": 3, "dest_task_id": [2]}]},
        {"task_id": 2, "workload": 1, "cmd": "true"},
    ]})
    edge = job.edges[(1, 2)]
    assert edge.size == 5 and edge.files == ("a", "b")
    assert job.preds[2] == (1,)


def test_successor_sizes_add_up_every_output_and_the_value_as_the_edges_do() -> None:
    job = jsonio.job_from_dict({"job_id": 1, "task_list": [
        {"task_id": 1, "workload": 1, "cmd": "true", "out_file_list": [
            {"path": "a", "size": 2, "dest_task_id": [3, 2]}, {"path": "b", "size": 3, "dest_task_id": [3]}],
         "out_value": {"val": "x", "size": 0.5, "dest_task_id": [2, 4]}},
        {"task_id": 2, "workload": 1, "cmd": "true"},
        {"task_id": 3, "workload": 1, "cmd": "true"},
        {"task_id": 4, "workload": 1, "cmd": "true"},
    ]})
    assert job.succs[1] == (3, 2, 4) and job.succ_sizes[1] == (5.0, 2.5, 0.5)
    assert [(e.dst, e.size, e.files, e.value) for e in job.edges.values()] == [
        (3, 5.0, ("a", "b"), False), (2, 2.5, ("a",), True), (4, 0.5, (), True)]
    assert job.preds == {1: (), 2: (1,), 3: (1,), 4: (1,)}


def test_original_samples_round_trip(samples: Path) -> None:
    env = jsonio.load_environment(samples / "env_ncl.json")
    again = jsonio.environment_from_dict(json.loads(json.dumps(jsonio.environment_to_dict(env))))
    assert again == env
    for name in ("job_ffmpeg.json", "job_ncl.json"):
        job = jsonio.load_job(samples / name)
        assert jsonio.job_from_dict(json.loads(json.dumps(jsonio.job_to_dict(job)))) == job


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    n = draw(st.integers(1, 12))
    ids = draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n, unique=True))
    tasks = []
    for i, tid in enumerate(ids):
        later = ids[i + 1 :]
        dests = draw(st.lists(st.sampled_from(later), unique=True, max_size=3)) if later else []
        files = tuple(OutFile(f"out/{tid}_{k}.dat", float(draw(st.integers(0, 500))), (TaskId(d),)) for k, d in enumerate(dests))
        tasks.append(Task(TaskId(tid), float(draw(st.integers(0, 10**6))), f"cmd {tid}", out_files=files,
                          docker_image=draw(st.none() | st.just("img"))))
    return Job(draw(st.integers(0, 99)), tuple(tasks))


@settings(max_examples=60, deadline=None)
@given(jobs())
def test_job_round_trip_property(job: Job) -> None:
    assert jsonio.job_from_dict(json.loads(json.dumps(jsonio.job_to_dict(job)))) == job


def test_mapping_round_trip_and_double_encoding(samples: Path) -> None:
    env = jsonio.load_environment(samples / "env_ncl.json")
    job = jsonio.load_job(samples / "job_ffmpeg.json")
    vcpus = [v.id for v in env.schedulable]
    slots = {t.id: Slot(t.id, vcpus[i], float(i), float(i) + 1.5) for i, t in enumerate(job.tasks)}
    schedule = Schedule("test", slots)
    doc = jsonio.mapping_to_dict(job, env, schedule)
    assert doc["task_list"][0]["ip"] == "192.168.1.174" and doc["task_list"][0]["vm_id"] == "0^0^0"
    assert list(doc["task_list"][0])[-3:] == ["ip", "vm_id", "vcpu_id"]
    assert doc["schedule"]["makespan"] == 4.5
    parsed = jsonio.mapping_from_dict(json.loads(json.dumps(doc)))
    assert parsed.job == job and parsed.schedule == schedule
    assert parsed.placements[1].vm_id == "0^0^0"
    # The original wrote the document as one JSON string literal.
    legacy = {k: v for k, v in doc.items() if k != "schedule"}
    double = json.loads(json.dumps(json.dumps(legacy, separators=(",", ":"))))
    old = jsonio.mapping_from_dict(double)
    assert old.schedule is None and old.placements[4].vcpu_id == vcpus[3]


def test_validate_prints_summary(samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(samples / "env_ncl.json"), str(samples / "job_ncl.json")]) == 0
    out = capsys.readouterr().out
    assert "42 functions, 60 edges" in out
    assert "START: 1" in out and "END:   42" in out
    assert "critical path by workload: 1 -> 2 -> 22 -> 42 (28000 MI)" in out
    assert "1 DCs, 1 hosts, 36 vCPUs (36 schedulable), 13 VMs" in out
    assert "VM 0^0^12 at 192.168.1.180" in out


def test_validate_reports_orphan_vcpus(tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    env = json.loads((repo / "envs" / "local.json").read_text())
    env["dc_list"][0]["host_list"][0]["cpu_list"][0]["core_list"][0]["vcpu_list"].append({"vcpu_id": "spare", "mips": 100})
    (tmp_path / "env.json").write_text(json.dumps(env))
    assert main(["validate", str(tmp_path / "env.json"), str(repo / "jobs" / "text-chain.json")]) == 0
    assert "belong to no VM and are never scheduled: spare" in capsys.readouterr().out


def test_project_samples_are_valid(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    envs = sorted((repo / "envs").glob("*.json"))
    job_files = sorted((repo / "jobs").glob("*.json"))
    assert envs and job_files
    for env in envs:
        for job in job_files:
            assert main(["validate", str(env), str(job)]) == 0, (env, job)


def test_networkx_view(samples: Path) -> None:
    import networkx as nx

    job = jsonio.load_job(samples / "job_ffmpeg.json")
    g = job.to_networkx()
    assert nx.is_directed_acyclic_graph(g)
    assert g.nodes[2]["workload"] == 100000 and g.edges[2, 4]["size"] == 150
    assert sorted(g.edges) == sorted(job.edges)


_TASK_VARIANTS: list[dict[str, object]] = [
    {},
    {"type": None, "usage": None},
    {"task_id": 1.0, "type": 3.0},
    {"workload": 0, "usage": 0, "type": 0},
    {"out_file_list": [{"path": "./a", "size": 1, "dest_task_id": [2, 2]}, {"path": "b", "size": 0.5}]},
    {"out_value": {"val": 7, "dest_task_id": [2]}},
    {"out_value": {"val": "x", "size": None, "dest_task_id": [2]}},
    {"out_value": None, "docker-tarname": None, "docker-imagename": "busybox"},
    {"docker-tarname": "img.tar", "docker-imagename": None},
]


@pytest.mark.parametrize("variant", _TASK_VARIANTS)
def test_the_fast_task_reader_reads_as_the_field_by_field_one(variant: dict[str, object],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    first = {"task_id": 1, "workload": 5.5, "cmd": "true", "type": 1, "usage": 0.0,
             "out_file_list": [{"path": "./o", "size": 2.0, "dest_task_id": [2]}], **variant}
    doc = {"job_id": 1, "task_list": [first, {"task_id": 2, "workload": 1, "cmd": "true"}]}
    fast = jsonio.job_from_dict(json.loads(json.dumps(doc)))
    monkeypatch.setattr(jsonio, "_task_fast", lambda raw: None)
    assert jsonio.job_from_dict(json.loads(json.dumps(doc))).tasks == fast.tasks


@pytest.mark.parametrize("name", ["ffmpeg.json", "ffmpeg-docker.json", "fork-join.json", "text-chain.json"])
def test_the_fast_task_reader_reads_the_samples_as_the_field_by_field_one(name: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.loads((Path(__file__).resolve().parents[3] / "jobs" / name).read_text())
    fast = jsonio.job_from_dict(data)
    monkeypatch.setattr(jsonio, "_task_fast", lambda raw: None)
    assert jsonio.job_from_dict(data).tasks == fast.tasks


def test_written_json_has_one_line_per_member_down_to_depth_two_and_reads_back() -> None:
    doc = {"job_id": 1, "task_list": [{"task_id": 1, "cmd": "é", "out_file_list": [{"path": "./a", "size": 1.5}]}],
           "schedule": {"algorithm": "heft", "tasks": {"1": {"start": 0.0, "finish": 2.25}}, "mixed": [1, [2]]},
           "empty": [], "none": {}}
    text = jsonio.dumps_layout(doc)
    assert json.loads(text) == doc
    assert text == "\n".join([
        "{",
        '  "job_id": 1,',
        '  "task_list": [',
        '    {"task_id": 1, "cmd": "\\u00e9", "out_file_list": [{"path": "./a", "size": 1.5}]}',
        "  ],",
        '  "schedule": {',
        '    "algorithm": "heft",',
        '    "tasks": {',
        '      "1": {"start": 0.0, "finish": 2.25}',
        "    },",
        '    "mixed": [1, [2]]',
        "  },",
        '  "empty": [],',
        '  "none": {}',
        "}",
    ])


def _mapping_by_the_encoder(job: Job, env: Environment, schedule: Schedule) -> str:
    """The mapping as a dict laid out by :func:`jsonio.dumps_layout` (the C encoder writes every
    line): what the pre-formatted writer must write byte for byte."""
    def num(x: float) -> float | int:
        return int(x) if float(x).is_integer() else x

    tasks = []
    for t in job.tasks:
        d: dict[str, object] = {"task_id": t.id, "workload": num(t.workload), "type": t.type,
                                "usage": num(t.usage), "cmd": t.cmd}
        if t.out_files:
            d["out_file_list"] = [{"path": f.path, "size": num(f.size), "dest_task_id": list(f.dest)}
                                  for f in t.out_files]
        if t.out_value is not None:
            d["out_value"] = {"val": t.out_value.val, "size": num(t.out_value.size),
                              "dest_task_id": list(t.out_value.dest)}
        if t.docker_tar is not None:
            d["docker-tarname"] = t.docker_tar
        if t.docker_image is not None:
            d["docker-imagename"] = t.docker_image
        vm = env.vm_for(schedule.vcpu_of(t.id))
        d.update({"ip": str(vm.address), "vm_id": vm.id, "vcpu_id": schedule.vcpu_of(t.id)})
        tasks.append(d)
    times = {str(t): {"start": s.start, "finish": s.finish} for t, s in sorted(schedule.slots.items())}
    doc = {"job_id": job.id, "task_list": tasks,
           "schedule": {"algorithm": schedule.algorithm, "makespan": schedule.makespan, "tasks": times}}
    return jsonio.dumps_layout(doc) + "\n"


def test_the_mapping_is_written_as_the_encoder_would_write_it(samples: Path, tmp_path: Path) -> None:
    env = jsonio.load_environment(samples / "env_ncl.json")
    vcpus = [v.id for v in env.schedulable]
    tasks = (
        Task(TaskId(3), 1e20, 'say "é\\n"\t', 2, 55.5,
             (OutFile("out/a b.txt", 0.0, (TaskId(1), TaskId(7))), OutFile("./c", 1.25, ())),
             OutValue("v\u2603", 3.0, (TaskId(7),)), "img.tar", "img"),
        Task(TaskId(1), 0.1 + 0.2, "true", usage=float("inf")),
        Task(TaskId(7), 2.5e-7, "x", docker_image="busybox"),
    )
    job = Job(42, tasks)
    slots = {t.id: Slot(t.id, vcpus[k * 5], 1 / 3 + k, 2 / 3 + k * 1e6) for k, t in enumerate(tasks)}
    schedule = Schedule("heft/mean,comm×2", slots)
    expected = _mapping_by_the_encoder(job, env, schedule)
    assert jsonio.mapping_json(job, env, schedule) == expected
    jsonio.write_mapping(tmp_path / "m.json", job, env, schedule)
    assert (tmp_path / "m.json").read_text() == expected
    assert jsonio.mapping_to_dict(job, env, schedule) == json.loads(expected)


@settings(max_examples=40, deadline=None)
@given(jobs())
def test_mappings_of_random_jobs_are_written_as_the_encoder_would_write_them(job: Job) -> None:
    env = jsonio.environment_from_dict(json.loads((Path(__file__).resolve().parents[3] / "envs" / "local.json")
                                                  .read_text()))
    vcpus = [v.id for v in env.schedulable]
    slots = {t.id: Slot(t.id, vcpus[k % len(vcpus)], k * 0.7, k * 0.7 + t.workload / 1000)
             for k, t in enumerate(job.tasks)}
    schedule = Schedule("heft", slots)
    expected = _mapping_by_the_encoder(job, env, schedule)
    assert jsonio.mapping_json(job, env, schedule) == expected
    # As ``sflow schedule`` makes a large one: the tasks' lines opened first, the schedule from
    # its columns (what crosses to the child that formats it).
    again = Schedule.from_columns(schedule.columns())
    assert again == schedule
    assert jsonio.mapping_json(job, env, again, jsonio.mapping_opened(job)) == expected
