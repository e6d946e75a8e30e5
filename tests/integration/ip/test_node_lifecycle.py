"""SIGTERM while a function runs; ``sflow run`` with the local default cluster; a Docker function."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from ip_cluster import PY, processes_with, sflow, shell, start_node, stop_node, wait_for, write_env, write_job, write_mapping

REPO = Path(__file__).resolve().parents[3]


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


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _engine() -> Any:
    import docker

    return docker.from_env()


def _sflow_containers(job_id: int) -> list[dict[str, Any]]:
    """The engine's summaries of the job's containers ("Id", "State"): listed without inspecting
    each, which fails for one removed (or still being created) meanwhile."""
    return list(_engine().api.containers(all=True, filters={"label": f"sflow.job={job_id}"}))


@contextmanager
def _sflow_run(tmp_path: Path, job: dict[str, Any], started: Callable[[], bool]
               ) -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    """``sflow run JOB`` on two local nodes, once ``started()`` says its function runs; killed
    afterwards if the test left it running."""
    before = set(Path("/tmp").glob("sflow-run-*"))
    env = dict(os.environ, SFLOW_SECURITY_SECRET_FILE=str(tmp_path / "no-secret-here"))
    run = subprocess.Popen([PY, "-m", "sflow", "run", str(write_job(tmp_path / "j.json", job)), "--nodes", "2",
                            "-a", "round-robin", "-o", str(tmp_path / "out")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        wait_for(started, 60, "the function to start")
        nodes = [p for p in _children(run.pid) if "node" in processes_cmd(p)]
        assert len(nodes) == 2
        assert set(Path("/tmp").glob("sflow-run-*")) == before  # nothing of the run's in /tmp
        yield run, nodes
    finally:
        if run.poll() is None:
            run.terminate()
            run.communicate(timeout=60)


def processes_cmd(pid: int) -> list[str]:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0"))
    except OSError:
        return []


def test_sigkill_of_sflow_run_takes_its_local_nodes_and_their_functions(tmp_path: Path) -> None:
    marker = "41.4142"
    job = {"job_id": 23, "task_list": [{"task_id": 1, "workload": 1, "cmd": f"sleep {marker} && echo x > o.txt",
                                        "out_file_list": [{"path": "o.txt", "size": 1, "dest_task_id": []}]}]}
    with _sflow_run(tmp_path, job, lambda: bool(processes_with(f"sleep {marker}"))) as (run, nodes):
        run.kill()
        run.wait()
        wait_for(lambda: not any(_alive(p) for p in nodes), 20, "the local nodes to stop with sflow run")
        wait_for(lambda: not processes_with(f"sleep {marker}"), 10, "their function to be killed")
        assert not [d for d in (tmp_path / "out" / "nodes").glob("node-*/23-*")]  # job directories removed


def test_sighup_stops_sflow_run_cleanly_containers_included(tmp_path: Path) -> None:
    job = {"job_id": 24, "task_list": [{"task_id": 1, "workload": 1, "cmd": "DUMMY sh -c 'sleep 42.4242; echo x > o.txt'",
                                        "docker-imagename": "sflow-busybox",
                                        "out_file_list": [{"path": "o.txt", "size": 1, "dest_task_id": []}]}]}
    running = lambda: any(c["State"] == "running" for c in _sflow_containers(24))  # noqa: E731
    with _sflow_run(tmp_path, job, running) as (run, nodes):
        run.send_signal(signal.SIGHUP)  # the terminal closed
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 130 and "interrupted" in stderr
        assert not any(_alive(p) for p in nodes)
        assert _sflow_containers(24) == []
        assert not list((tmp_path / "out" / "nodes").glob(".run-*.secret"))  # the run's own secret is gone


def test_a_node_removes_the_containers_a_killed_node_left(tmp_path: Path) -> None:
    secret = tmp_path / "s"
    assert sflow("keygen", "-o", str(secret)).returncode == 0
    node = start_node(tmp_path, 0, secret)
    job = {"job_id": 25, "task_list": [{"task_id": 1, "workload": 1, "cmd": "DUMMY sh -c 'sleep 43.4343'",
                                        "docker-imagename": "sflow-busybox",
                                        "out_file_list": [{"path": "o.txt", "size": 1, "dest_task_id": []}]}]}
    env = write_env(tmp_path / "env.json", [node])
    mapping = write_mapping(tmp_path / "m.json", job, [node], {1: (0, 0)})
    delegator = subprocess.Popen(
        [PY, "-m", "sflow", "delegate", str(env), str(write_job(tmp_path / "j.json", job)), "--mapping", str(mapping),
         "-o", str(tmp_path / "out"), "--secret-file", str(secret)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    restarted = None
    try:
        wait_for(lambda: any(c["State"] == "running" for c in _sflow_containers(25)), 60, "the container to run")
        node.proc.kill()  # its container stays behind, running
        node.proc.wait()
        assert _sflow_containers(25)
        restarted = start_node(tmp_path, 0, secret, listen=node.address)
        wait_for(lambda: not _sflow_containers(25), 30, "the orphaned container to be removed")
    finally:
        for left in (node, restarted):
            if left is not None:
                stop_node(left)  # a failing test leaves no node behind
        if delegator.poll() is None:
            delegator.kill()
        for c in _sflow_containers(25):
            _engine().api.remove_container(c["Id"], force=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root node runs its functions through a spawner")
def test_sflow_run_interrupted_ends_even_when_a_stuck_spawner_holds_its_nodes_output(tmp_path: Path) -> None:
    """The spawner shares its node's standard error; stuck (SIGSTOP), it cannot die with the node.
    ``sflow run`` still ends: at the end of the nodes' grace it kills what was below them."""
    marker = "44.4544"
    job = {"job_id": 26, "task_list": [{"task_id": 1, "workload": 1, "cmd": f"sleep {marker} && echo x > o.txt",
                                        "out_file_list": [{"path": "o.txt", "size": 1, "dest_task_id": []}]}]}
    with _sflow_run(tmp_path, job, lambda: bool(processes_with(f"sleep {marker}"))) as (run, nodes):
        below = [p for node in nodes for p in _children(node)]
        spawners = [p for p in below if "-I" in processes_cmd(p) and "-c" in processes_cmd(p)]
        assert spawners, [processes_cmd(p) for p in below]
        for spawner in spawners:
            os.kill(spawner, signal.SIGSTOP)
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 130 and "interrupted" in stderr
        assert not any(_alive(p) for p in nodes + spawners)
        wait_for(lambda: not processes_with(f"sleep {marker}"), 10, "the function to be killed")
