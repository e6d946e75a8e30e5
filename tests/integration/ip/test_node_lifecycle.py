"""SIGTERM while a function runs; ``sflow run`` with the local default cluster; a Docker function."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from ip_cluster import PY, sflow, shell, start_node, stop_node, wait_for, write_env, write_job, write_mapping

REPO = Path(__file__).resolve().parents[3]


def processes_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline:
            pids.append(int(entry.name))
    return pids


def test_sigterm_while_a_function_runs_leaves_no_child(tmp_path: Path) -> None:
    secret = tmp_path / "s"
    assert sflow("keygen", "-o", str(secret)).returncode == 0
    node = start_node(tmp_path, 0, secret)
    marker = "31415.92"
    job = {"job_id": 21, "task_list": [
        {"task_id": 1, "workload": 1, "cmd": f"sleep {marker} && echo done > out.txt",
         "out_file_list": [{"path": "out.txt", "size": 1, "dest_task_id": []}]}]}
    env = write_env(tmp_path / "env.json", [node])
    mapping = write_mapping(tmp_path / "m.json", job, [node], {1: (0, 0)})
    delegator = subprocess.Popen(
        [PY, "-m", "sflow", "delegate", str(env), str(write_job(tmp_path / "j.json", job)), "--mapping", str(mapping),
         "-o", str(tmp_path / "out"), "--secret-file", str(secret)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: bool(processes_with(f"sleep {marker}")), 20, "the function to start")
        status = json.loads(sflow("status", "--connect", node.address, "--json", "--secret-file", str(secret)).stdout)
        assert status["running"] == [[status["jobs"][0], 1]]
        assert stop_node(node) == 0
        wait_for(lambda: not processes_with(f"sleep {marker}"), 10, "the function's process to be gone")
        assert not node.pid_file.exists()
        _, stderr = delegator.communicate(timeout=20)
    finally:
        if delegator.poll() is None:
            delegator.kill()
    assert delegator.returncode == 1 and "was lost" in stderr and "no node is left to run functions 1" in stderr
    assert not (tmp_path / "out" / "out.txt").exists()
    assert not any(node.workdir.iterdir())


def test_sflow_run_with_the_local_default_cluster(tmp_path: Path) -> None:
    env = dict(os.environ, SFLOW_SECURITY_SECRET_FILE=str(tmp_path / "no-secret-here"))
    out = tmp_path / "out"
    result = subprocess.run(
        [PY, "-m", "sflow", "run", str(REPO / "jobs" / "text-chain.json"), "-o", str(out), "--nodes", "2", "-a", "round-robin"],
        capture_output=True, text=True, timeout=90, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    ref = tmp_path / "ref"
    job = json.loads((REPO / "jobs" / "text-chain.json").read_text())
    cmds = [t["cmd"] for t in job["task_list"]]
    script = "mkdir -p out; " + "; ".join(cmds).replace("$F^1", "out/lines.txt").replace("$F^2", "out/upper.txt").replace(
        "$F^3", "out/sorted.txt")
    shell(script, ref)
    for name in ("out/count.txt", "out/top.txt"):
        assert (out / name).read_bytes() == (ref / name).read_bytes()
    generated = json.loads((out / "env.json").read_text())
    assert len(generated["dc_list"][0]["host_list"]) == 2
    trace = json.loads((out / "trace.json").read_text())
    assert len({r["node"] for r in trace["tasks"]}) == 2  # round-robin used both local nodes
    assert "makespan:" in result.stdout
    assert all("exited" not in (out / "nodes" / f"node-{i}.log").read_text() for i in range(2))
    assert not processes_with(str(out / "nodes"))  # the nodes were stopped


def test_a_docker_function_end_to_end(tmp_path: Path) -> None:
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("no Docker engine is reachable")
    if subprocess.run(["docker", "image", "inspect", "sflow-busybox"], capture_output=True).returncode != 0:
        built = subprocess.run(["bash", str(REPO / "dockerfiles" / "build.sh"), "sflow-busybox"], capture_output=True, text=True)
        if built.returncode != 0:
            pytest.skip(f"the sflow-busybox image is absent and could not be built: {built.stderr[-300:]}")
    secret = tmp_path / "s"
    assert sflow("keygen", "-o", str(secret)).returncode == 0
    nodes = [start_node(tmp_path, i, secret) for i in range(2)]
    try:
        job = {"job_id": 22, "task_list": [
            {"task_id": 1, "workload": 1, "cmd": "seq 1 500 > n.txt",
             "out_file_list": [{"path": "n.txt", "size": 1, "dest_task_id": [2]}]},
            {"task_id": 2, "workload": 1, "cmd": "DUMMY sh -c 'sort -r n.txt > r.txt'",
             "docker-imagename": "sflow-busybox",
             "out_file_list": [{"path": "r.txt", "size": 1, "dest_task_id": []}]},
        ]}
        env = write_env(tmp_path / "env.json", nodes)
        mapping = write_mapping(tmp_path / "m.json", job, nodes, {1: (0, 0), 2: (1, 0)})
        result = sflow("delegate", str(env), str(write_job(tmp_path / "j.json", job)), "--mapping", str(mapping),
                       "-o", str(tmp_path / "out"), "--secret-file", str(secret))
        assert result.returncode == 0, result.stderr
        shell("seq 1 500 > n.txt; sort -r n.txt > r.txt", tmp_path / "ref")
        assert (tmp_path / "out/r.txt").read_bytes() == (tmp_path / "ref/r.txt").read_bytes()
        trace = json.loads((tmp_path / "out/trace.json").read_text())
        assert {r["task"]: r["where"] for r in trace["tasks"]} == {1: "native", 2: "docker:sflow-busybox"}
    finally:
        for node in nodes:
            assert stop_node(node) == 0
