"""``sflow schedule``, ``sflow schedule --compare``, ``sflow simulate``, ``sflow import wfcommons``
through :func:`sflow.cli.main`, and ``scripts/schedgen.sh`` as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sflow.cli import main
from sflow.jsonio import load_environment, load_job, load_mapping
from sflow.model.workflow import TaskId
from sflow.sched.registry import names
from sflow.sched.validate import find_violations

TINY_WF = {
    "name": "cli",
    "schemaVersion": "1.4",
    "workflow": {
        "tasks": [
            {"name": "a", "id": "a", "runtimeInSeconds": 1, "parents": [], "children": ["b"],
             "files": [{"link": "output", "name": "x", "sizeInBytes": 2_000_000}]},
            {"name": "b", "id": "b", "runtimeInSeconds": 2, "parents": ["a"], "children": [],
             "files": [{"link": "input", "name": "x", "sizeInBytes": 2_000_000}]},
        ]
    },
}


@pytest.mark.parametrize("algorithm", names())
def test_schedule_writes_a_valid_mapping(
    samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], algorithm: str
) -> None:
    env, job = samples / "env_ncl.json", samples / "job_ffmpeg.json"
    out = tmp_path / "mapping.json"
    assert main(["schedule", str(env), str(job), "-a", algorithm, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"algorithm: {algorithm}" in text and "makespan:" in text and "SLR:" in text and "hosts:" in text
    mapping = load_mapping(out)
    assert mapping.schedule is not None
    assert find_violations((load_environment(env), load_job(job)), mapping.schedule) == []
    raw = json.loads(out.read_text())
    assert all({"ip", "vm_id", "vcpu_id"} <= set(t) for t in raw["task_list"])


def test_schedule_default_algorithm_comes_from_the_config(
    samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env, job = samples / "env_ncl.json", samples / "job_ncl.json"
    assert main(["schedule", str(env), str(job)]) == 0
    assert "algorithm: sf-cuv" in capsys.readouterr().out
    (tmp_path / "sflow.toml").write_text('[scheduler]\nalgorithm = "peft"\n')
    assert main(["schedule", str(env), str(job)]) == 0
    assert "algorithm: peft" in capsys.readouterr().out


def test_schedule_with_gantt_and_seed(samples: Path, tmp_path: Path) -> None:
    chart = tmp_path / "chart.svg"
    args = ["schedule", str(samples / "env_ncl.json"), str(samples / "job_ncl.json"), "-a", "coordvnf",
            "--seed", "42", "--gantt", str(chart)]
    assert main([*args, "-o", str(tmp_path / "a.json")]) == 0
    assert main([*args, "-o", str(tmp_path / "b.json")]) == 0
    assert chart.read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()


def test_compare_prints_every_algorithm(samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", str(samples / "env_ncl.json"), str(samples / "job_ncl.json"), "--compare"]) == 0
    out = capsys.readouterr().out
    for name in names():
        assert name in out
    assert "SLR" in out and "speedup" in out and "time (ms)" in out


def test_simulate_replays_a_mapping(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = samples / "env_ncl.json"
    out = tmp_path / "m.json"
    assert main(["schedule", str(env), str(samples / "job_ncl.json"), "-a", "heft", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["simulate", str(env), str(out), "--gantt", str(tmp_path / "sim.png")]) == 0
    text = capsys.readouterr().out
    assert "makespan:" in text and "SLR:" in text and "speedup:" in text and "utilisation" in text
    assert (tmp_path / "sim.png").stat().st_size > 1000


def test_simulate_a_placement_only_mapping(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = samples / "env_ncl.json"
    out = tmp_path / "m.json"
    assert main(["schedule", str(env), str(samples / "job_ffmpeg.json"), "-a", "fws", "-o", str(out)]) == 0
    raw = json.loads(out.read_text())
    del raw["schedule"]
    # The original's double-encoded form: the document as one JSON string.
    (tmp_path / "orig.json").write_text(json.dumps(json.dumps(raw)))
    capsys.readouterr()
    assert main(["simulate", str(env), str(tmp_path / "orig.json")]) == 0
    assert "algorithm: replay" in capsys.readouterr().out


def test_import_wfcommons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "wf.json"
    src.write_text(json.dumps(TINY_WF))
    out = tmp_path / "job.json"
    assert main(["import", "wfcommons", str(src), "-o", str(out), "--reference-mips", "500"]) == 0
    assert "500 MIPS" in capsys.readouterr().out
    job = load_job(out)
    assert [t.workload for t in job.tasks] == [500, 1000]
    assert job.edges[(TaskId(1), TaskId(2))].size == 2.0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["schedule", "{env}", "{missing}", "-a", "heft"], "no such file"),
        (["schedule", "{env}", "{job}", "-a", "nope"], "unknown algorithm 'nope'"),
        (["schedule", "{orphans}", "{job}", "-a", "heft"], "no vCPU of the environment belongs to a VM"),
        (["schedule", "{env}", "{job}", "--compare", "-a", "heft"], "--compare"),
        (["simulate", "{env}", "{bad_mapping}"], "which is not a schedulable vCPU"),
        (["import", "wfcommons", "{missing}", "-o", "{out}"], "no such file"),
        (["import", "wfcommons", "{bad_wf}", "-o", "{out}"], "runtimeInSeconds"),
        (["schedule", "{env}", "{job}", "-a", "heft", "--gantt", "{out}.bmp"], "unsupported chart format"),
    ],
)
def test_bad_input_exits_with_status_2(
    samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    orphans = tmp_path / "orphans.json"
    env_data = json.loads((samples / "env_ncl.json").read_text())
    for dc in env_data["dc_list"]:
        for host in dc["host_list"]:
            host["vm_list"] = []
    orphans.write_text(json.dumps(env_data))
    mapping = tmp_path / "m.json"
    assert main(["schedule", str(samples / "env_ncl.json"), str(samples / "job_ffmpeg.json"), "-a", "heft",
                 "-o", str(mapping)]) == 0
    raw = json.loads(mapping.read_text())
    raw["task_list"][0]["vcpu_id"] = "9^9^9^9^9"
    del raw["schedule"]
    (tmp_path / "bad_mapping.json").write_text(json.dumps(raw))
    bad_wf = json.loads(json.dumps(TINY_WF))
    del bad_wf["workflow"]["tasks"][0]["runtimeInSeconds"]
    (tmp_path / "bad_wf.json").write_text(json.dumps(bad_wf))
    paths = {
        "env": samples / "env_ncl.json", "job": samples / "job_ffmpeg.json", "missing": tmp_path / "missing.json",
        "orphans": orphans, "bad_mapping": tmp_path / "bad_mapping.json", "bad_wf": tmp_path / "bad_wf.json",
        "out": tmp_path / "out",
    }
    capsys.readouterr()
    assert main([a.format(**{k: str(v) for k, v in paths.items()}) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_schedgen_script_keeps_the_original_argument_order(samples: Path, repo: Path, tmp_path: Path) -> None:
    (tmp_path / "sflow.toml").write_text('[scheduler]\nalgorithm = "hclustering"\n')
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [str(repo / "scripts" / "schedgen.sh"), str(samples / "env_ncl.json"), str(samples / "job_ncl.json"), str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PATH": os.environ.get("PATH", "")},
    )
    assert proc.returncode == 0, proc.stderr
    assert "algorithm: hclustering" in proc.stdout
    mapping = load_mapping(out)
    assert mapping.schedule is not None and mapping.schedule.algorithm == "hclustering"
    bad = subprocess.run([str(repo / "scripts" / "schedgen.sh"), "only-one"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_schedule_and_simulate_as_processes_end_with_everything_written(samples: Path, tmp_path: Path) -> None:
    """As programs, the one-shot commands end without freeing what they built (exit_at_once):
    their output, their log lines and the mapping must all be there, and the same as in-process."""
    env, job = samples / "env_ncl.json", samples / "job_ncl.json"
    out = tmp_path / "mapping.json"
    proc = subprocess.run([sys.executable, "-m", "sflow", "-v", "schedule", str(env), str(job), "-a", "heft",
                           "-o", str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("algorithm: heft\n") and proc.stdout.endswith(f"mapping:   {out}\n")
    assert "scheduled algorithm=heft tasks=42" in proc.stderr
    again = tmp_path / "again.json"
    assert main(["schedule", str(env), str(job), "-a", "heft", "-o", str(again)]) == 0
    assert out.read_bytes() == again.read_bytes()
    sim = subprocess.run([sys.executable, "-m", "sflow", "simulate", str(env), str(out)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert sim.returncode == 0, sim.stderr
    assert sim.stdout.startswith("algorithm: heft\n") and "utilisation" in sim.stdout
    bad = subprocess.run([sys.executable, "-m", "sflow", "schedule", str(env), str(tmp_path / "none.json")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and "no such file" in bad.stderr


def test_a_mapping_made_with_its_task_lines_formatted_in_a_child_is_the_same(
    samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sflow.sched import cli as sched_cli

    env, job = samples / "env_ncl.json", samples / "job_ffmpeg.json"
    assert main(["schedule", str(env), str(job), "-a", "heft", "-o", str(tmp_path / "here.json")]) == 0
    forks: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(sched_cli, "_FORK_TASKS", 1)
    monkeypatch.setattr(os, "fork", fork)
    assert main(["schedule", str(env), str(job), "-a", "heft", "-o", str(tmp_path / "forked.json")]) == 0
    assert len(forks) == 1
    assert (tmp_path / "forked.json").read_bytes() == (tmp_path / "here.json").read_bytes()
    assert "mapping:" in capsys.readouterr().out
