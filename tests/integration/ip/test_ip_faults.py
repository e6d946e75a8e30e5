"""Faults injected into real node processes in IP mode: a node killed (and restarted) or stopped
mid-job — the job is re-planned and finishes with the same bytes; the delegator killed — the
nodes drop the job; a full disk on a node — a clear error and nothing partial kept.

The nodes run with a short heartbeat (0.5 s × 3) so that a silent node is noticed in about two
seconds; the default bound is 8 s."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_lab import FAST, FULL_DISK_JOB, kill_delegator_mid_job, marker_job, reference, run_on_full_disk, small_tmpfs
from ip_cluster import PY, Node, processes_with, sflow, start_node, stop_node, wait_for, write_env, write_job, write_mapping



def fork_join(marker: str) -> dict[str, Any]:
    return marker_job(marker, 31)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[Node], Path]]:
    secret = tmp_path / "secret"
    assert sflow("keygen", "-o", str(secret)).returncode == 0
    nodes = [start_node(tmp_path, i, secret, settings=FAST) for i in range(3)]
    yield nodes, secret
    for node in nodes:
        if node.proc.poll() is None:
            os.kill(node.proc.pid, signal.SIGCONT)
            stop_node(node)


def delegate_argv(tmp_path: Path, nodes: list[Node], secret: Path, job: dict[str, Any],
                  where: dict[int, tuple[int, int]], *extra: str) -> list[str]:
    env = write_env(tmp_path / "env.json", nodes)
    mapping = write_mapping(tmp_path / "m.json", job, nodes, where)
    return [PY, "-m", "sflow", "delegate", str(env), str(write_job(tmp_path / "j.json", job)), "--mapping", str(mapping),
            "-o", str(tmp_path / "out"), "--secret-file", str(secret), "--timeout", "120", *extra]


def delegate(tmp_path: Path, nodes: list[Node], secret: Path, job: dict[str, Any],
             where: dict[int, tuple[int, int]], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(delegate_argv(tmp_path, nodes, secret, job, where, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, **FAST))


def finish(delegator: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = delegator.communicate(timeout=120)
    finally:
        if delegator.poll() is None:
            delegator.kill()
    return delegator.returncode, out, err


PLACES = {1: (0, 0), 2: (1, 0), 3: (2, 0), 4: (1, 1), 5: (0, 0)}


def test_a_node_killed_mid_job_is_re_planned_and_its_restart_cleans_what_it_left(
        cluster: tuple[list[Node], Path], tmp_path: Path) -> None:
    nodes, secret = cluster
    marker = "4.61803"
    delegator = delegate(tmp_path, nodes, secret, fork_join(marker), PLACES)
    wait_for(lambda: bool(processes_with(f"sleep {marker}")), 30, "function 2 to start on node 1")
    orphans = processes_with(f"sleep {marker}")
    nodes[1].proc.kill()  # SIGKILL: it cleans nothing
    nodes[1].proc.wait()
    if os.geteuid() == 0:
        # A root node's functions run under its spawner, which kills them when the node dies.
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in orphans), 10,
                 "the spawner to kill the dead node's function")
    else:
        assert all(Path(f"/proc/{pid}").exists() for pid in orphans)  # its function runs on, orphaned
    # Restarted on its port and directory, the node removes what its killed self left behind.
    nodes[1] = start_node(tmp_path, 1, secret, listen=nodes[1].address, settings=FAST, workdir=nodes[1].workdir)
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in orphans), 10, "the orphaned function killed")
    assert not any(nodes[1].workdir.iterdir())
    code, out, err = finish(delegator)
    assert code == 0, err
    assert (tmp_path / "out" / "out.txt").read_bytes() == reference(tmp_path)
    assert "value: function 5: joined" in out
    assert f"node {nodes[1].address} lost" in err and "re-planned" in err
    trace = json.loads((tmp_path / "out" / "trace.json").read_text())
    assert trace["status"] == "ok" and trace["values"] == {"5": "joined"}
    (lost,) = [e for e in trace["events"] if e["kind"] == "node_lost"]
    assert lost["node"] == nodes[1].address and 2 in lost["tasks"]
    assert {p[0] for p in lost["placements"].values()} <= {nodes[0].address, nodes[2].address}
    runs = {r["task"]: r for r in trace["tasks"]}
    assert runs[2]["node"] == lost["placements"]["2"][0] and runs[2]["attempt"] == 2


def test_a_stopped_node_is_declared_lost_within_the_heartbeat_bound(cluster: tuple[list[Node], Path],
                                                                  tmp_path: Path) -> None:
    nodes, secret = cluster
    marker = "1.71828"
    delegator = delegate(tmp_path, nodes, secret, fork_join(marker), PLACES)
    wait_for(lambda: bool(processes_with(f"sleep {marker}")), 30, "function 2 to start on node 1")
    os.kill(nodes[1].proc.pid, signal.SIGSTOP)  # silent, its connections open
    code, out, err = finish(delegator)
    assert code == 0, err
    assert (tmp_path / "out" / "out.txt").read_bytes() == reference(tmp_path)
    trace = json.loads((tmp_path / "out" / "trace.json").read_text())
    (lost,) = [e for e in trace["events"] if e["kind"] == "node_lost"]
    assert lost["node"] == nodes[1].address and "no heartbeat" in lost["detail"]
    silence, limit = (float(x) for x in lost["detail"].split(" for ")[1].replace(" s (limit", "").rstrip(" s)").split())
    assert limit == 1.5 and silence < limit + 0.5 * 2  # noticed on the first check past the limit
    # Woken up, the node finds its delegator gone and drops the job.
    os.kill(nodes[1].proc.pid, signal.SIGCONT)
    wait_for(lambda: not any(nodes[1].workdir.iterdir()), 20, "the stopped node to drop the job")


def test_a_killed_delegator_leaves_no_work_on_the_nodes(cluster: tuple[list[Node], Path], tmp_path: Path) -> None:
    nodes, secret = cluster
    marker = "13.14159"
    argv = delegate_argv(tmp_path, nodes, secret, fork_join(marker), PLACES)
    took = kill_delegator_mid_job(argv, [n.workdir for n in nodes], marker, 20)
    assert took is not None, "the nodes did not drop the orphaned job within 20 s"
    status = json.loads(sflow("status", "--connect", nodes[1].address, "--json", "--secret-file", str(secret)).stdout)
    assert status["jobs"] == [] and status["running"] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_gives_a_clear_error_and_keeps_nothing_partial(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    assert sflow("keygen", "-o", str(secret)).returncode == 0
    nodes: list[Node] = []
    with small_tmpfs(tmp_path / "small") as small:
        try:
            nodes = [start_node(tmp_path, 0, secret), start_node(tmp_path, 1, secret, workdir=small / "work")]
            argv = delegate_argv(tmp_path, nodes, secret, FULL_DISK_JOB, {1: (0, 0), 2: (1, 0)})
            outcome = run_on_full_disk(argv, tmp_path / "out" / "n.txt", small / "work")
            assert outcome.clear and outcome.clean, outcome
            assert f"node {nodes[1].address}: input 'big.bin'" in outcome.stderr, outcome.stderr
            trace = json.loads((tmp_path / "out" / "trace.json").read_text())
            assert trace["status"] == "failed" and "No space left on device" in trace["error"]
        finally:
            for node in nodes:
                stop_node(node)


def test_a_failed_function_is_retried_in_a_fresh_directory(cluster: tuple[list[Node], Path], tmp_path: Path,
                                                          shared_dir: Path) -> None:
    nodes, secret = cluster
    count = shared_dir / "count"
    # Fails on its first run, leaving a partial output behind; succeeds on its second.
    flaky = (f"test -d . && n=$(cat {count} 2>/dev/null || echo 0); echo $((n+1)) > {count}; "
             f"if [ $n -lt 1 ]; then echo partial > out.txt; echo 'not yet' >&2; exit 4; fi; "
             "listing=$(ls -A); echo \"$listing\" > listing.txt; cat $F^1 > out.txt")
    job = {"job_id": 33, "task_list": [
        {"task_id": 1, "workload": 1, "cmd": "echo in > in.txt",
         "out_file_list": [{"path": "in.txt", "size": 0.001, "dest_task_id": [2]}]},
        {"task_id": 2, "workload": 1, "cmd": flaky,
         "out_file_list": [{"path": "out.txt", "size": 0.001, "dest_task_id": []},
                           {"path": "listing.txt", "size": 0.001, "dest_task_id": []}]},
    ]}
    env = dict(os.environ, SFLOW_DELEGATOR_RETRIES="1")
    delegator = subprocess.Popen(
        [PY, "-m", "sflow", "delegate", str(write_env(tmp_path / "env.json", nodes)), str(write_job(tmp_path / "j.json", job)),
         "--mapping", str(write_mapping(tmp_path / "m.json", job, nodes, {1: (0, 0), 2: (1, 0)})),
         "-o", str(tmp_path / "out"), "--secret-file", str(secret)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    code, out, err = finish(delegator)
    assert code == 0, err
    assert (tmp_path / "out" / "out.txt").read_text() == "in\n"
    assert (tmp_path / "out" / "listing.txt").read_text() == "in.txt\n"  # no out.txt of the failed run
    assert "running it again (attempt 2 of 2)" in err
    trace = json.loads((tmp_path / "out" / "trace.json").read_text())
    assert [(r["attempt"], r["where"].split(":")[0]) for r in trace["tasks"] if r["task"] == 2] == [
        (1, "failed"), (2, "native")]
    assert [e["kind"] for e in trace["events"]] == ["retry"]
