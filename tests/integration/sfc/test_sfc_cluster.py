"""ICN chaining with real ``sflow node --mode icn|auto`` processes on loopback: static and autonomous
modes, results byte-identical to IP mode, caching across runs, changed inputs, a restarted node,
a dead neighbour, python-ndn as an outside consumer, unauthenticated Interests."""

from __future__ import annotations

import copy
import json
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sfc_cluster import (
    PY,
    REPO,
    IcnNode,
    delegate,
    node_status,
    ran,
    restart,
    start_node,
    stop,
    wait_for,
    write_env,
    write_job,
    write_mapping,
)

from sflow.delegator.local import free_ports
from sflow.jsonio import job_from_dict
from sflow.model.workflow import TaskId
from sflow.secret import generate_secret
from sflow.sfc.bundle import decode_bundle
from sflow.sfc.names import build_specs

HERE = Path(__file__).resolve().parent


def fork_join() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPO / "jobs" / "fork-join.json").read_text())
    return data


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_secret(tmp_path_factory.mktemp("secret") / "cluster.secret")


@pytest.fixture(scope="module")
def static_cluster(tmp_path_factory: pytest.TempPathFactory, secret_file: Path) -> Iterator[list[IcnNode]]:
    base = tmp_path_factory.mktemp("icn")
    nodes = [start_node(base, i, secret_file, "icn") for i in range(3)]
    yield nodes
    for node in nodes:
        stop(node)


def outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()
            and p.name not in ("trace.json", "env.json")}


def test_static_mode_matches_ip_caches_and_reexecutes_only_downstream(
    static_cluster: list[IcnNode], secret_file: Path, tmp_path: Path
) -> None:
    nodes = static_cluster
    env = write_env(tmp_path / "env.json", nodes)
    job = fork_join()
    where = {1: 0, 2: 1, 3: 2, 4: 0, 5: 1, 6: 2}
    job_file = write_job(tmp_path / "job.json", job)
    mapping = write_mapping(tmp_path / "mapping.json", job, nodes, where)

    delegate(env, job_file, tmp_path / "ip", "ip", "--mapping", str(mapping), "--secret-file", str(secret_file))
    first = delegate(env, job_file, tmp_path / "icn", "icn", "--mapping", str(mapping), "--secret-file", str(secret_file))
    assert outputs(tmp_path / "icn") == outputs(tmp_path / "ip")
    assert set(ran(first).values()) == {"executed"}
    addresses = {n.address: n.index for n in nodes}
    assert {t["task"]: addresses[t["node"]] for t in first["tasks"]} == where
    # Function 1 feeds four functions on three nodes: it ran once (PIT aggregation + producer).
    def counted(name: str) -> int:
        return sum(node_status(n, secret_file)["icn_status"]["counters"][name] for n in nodes)

    assert counted("executed") == 6
    # The delegator started the six on their nodes at once (they asked for their inputs then,
    # not when the requests from END reached them). A function whose node hears the start after a
    # request from a function started elsewhere has begun already, and is not counted again (the
    # starts go to the nodes at once, and race with those requests); END's start always comes
    # first (the delegator asks for END's result after it, on the same face).
    started = counted("started")
    assert 1 <= started <= 6

    second = delegate(env, job_file, tmp_path / "again", "icn", "--mapping", str(mapping), "--secret-file", str(secret_file))
    assert outputs(tmp_path / "again") == outputs(tmp_path / "ip")
    assert ran(second)[6] == "cache hit" and "executed" not in ran(second).values()
    assert counted("executed") == 6 and counted("started") == started  # END was held: nothing started

    changed = copy.deepcopy(job)
    changed["job_id"] = 999
    changed["task_list"][2]["cmd"] = changed["task_list"][2]["cmd"].replace("NR % n == 1", "NR % n == 1 && 1")
    changed_file = write_job(tmp_path / "changed.json", changed)
    changed_mapping = write_mapping(tmp_path / "changed-mapping.json", changed, nodes, where)
    third = delegate(env, changed_file, tmp_path / "changed", "icn", "--mapping", str(changed_mapping),
                     "--secret-file", str(secret_file))
    assert {t for t, how in ran(third).items() if how == "executed"} == {3, 6}
    assert ran(third)[1] == "cache hit"
    # Of the two that had to be made again, END by the start, 3 by the start or by END's request.
    assert started + 1 <= counted("started") <= started + 2


def test_python_ndn_fetches_a_cached_result_and_cannot_make_anything_run(
    static_cluster: list[IcnNode], secret_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ndn", reason="python-ndn (the independent NDN peer) is not installed")
    nodes = static_cluster
    env = write_env(tmp_path / "env.json", nodes)
    job = json.loads((REPO / "jobs" / "text-chain.json").read_text())
    job_file = write_job(tmp_path / "job.json", job)
    mapping = write_mapping(tmp_path / "mapping.json", job, nodes, {1: 0, 2: 1, 3: 2, 4: 2})
    delegate(env, job_file, tmp_path / "out", "icn", "--mapping", str(mapping), "--secret-file", str(secret_file))
    specs = build_specs(job_from_dict(job), {})
    prefix = specs[TaskId(3)].prefix  # sort -r, ran on node 2
    fetched = consumer(nodes[2].icn_port, "fetch", str(prefix), str(tmp_path / "bundle"))
    assert "error" not in fetched, fetched["error"]
    files = decode_bundle((tmp_path / "bundle").read_bytes())
    reference = subprocess.run(
        ["sh", "-c", "seq 1 20000 | sed 's/$/ the quick brown fox jumps over the lazy dog/' | tr a-z A-Z | sort -r"],
        capture_output=True, check=True,
    ).stdout
    assert files == {"out/sorted.txt": reference}
    # Node 1 fetched function 1's result from node 0: its content store answers for it by name,
    # although node 1 has no route toward function 1 any more.
    fetched = consumer(nodes[1].icn_port, "fetch", str(specs[TaskId(1)].prefix), str(tmp_path / "bundle1"))
    assert "error" not in fetched, fetched["error"]
    lines = subprocess.run(["sh", "-c", "seq 1 20000 | sed 's/$/ the quick brown fox jumps over the lazy dog/'"],
                           capture_output=True, check=True).stdout
    assert decode_bundle((tmp_path / "bundle1").read_bytes()) == {"out/lines.txt": lines}

    before = node_status(nodes[2], secret_file)["icn_status"]["counters"]
    fresh = copy.deepcopy(job)
    fresh["task_list"][3]["cmd"] = "wc -c $F^3 > ./out/count.txt && head -n 3 $F^3 > ./out/top.txt"
    fresh_prefix = build_specs(job_from_dict(fresh), {})[TaskId(4)].prefix
    answer = consumer(nodes[2].icn_port, "compute", str(fresh_prefix))
    assert "error" not in answer, answer["error"]
    assert answer["content_type"] == 3, answer  # an application Nack: nothing is computed for strangers
    # Status needs a signed request: an unsigned one gets no answer at all.
    assert consumer(nodes[2].icn_port, "ask", "/sflow/ctl/status") == {"answered": False}
    after = node_status(nodes[2], secret_file)["icn_status"]["counters"]
    assert after["executed"] == before["executed"]
    assert after["refused"] == before["refused"] + 2


def consumer(port: int, verb: str, name: str, *extra: str) -> dict[str, Any]:
    result = subprocess.run([PY, str(HERE / "ndn_consumer.py"), str(port), verb, name, *extra], capture_output=True,
                            text=True, timeout=30)
    if result.returncode != 0 or not result.stdout.strip():
        return {"error": result.stderr[-2000:]}
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def test_a_restarted_node_does_not_lose_the_job(secret_file: Path, tmp_path: Path, shared_dir: Path) -> None:
    ports = free_ports(4)
    nodes = [start_node(tmp_path, i, secret_file, "icn", port=ports[2 * i], icn_port=ports[2 * i + 1]) for i in range(2)]
    try:
        env = write_env(tmp_path / "env.json", nodes)
        job = {"job_id": 55, "task_list": [
            {"task_id": 1, "workload": 1000, "cmd": f"touch {shared_dir}/started && sleep 2 && echo slow > ./out/a.txt",
             "out_file_list": [{"path": "./out/a.txt", "size": 0.01, "dest_task_id": [2]}]},
            {"task_id": 2, "workload": 1000, "cmd": "tr a-z A-Z < $F^1 > ./out/b.txt",
             "out_file_list": [{"path": "./out/b.txt", "size": 0.01, "dest_task_id": []}]},
        ]}
        job_file = write_job(tmp_path / "job.json", job)
        mapping = write_mapping(tmp_path / "mapping.json", job, nodes, {1: 0, 2: 1})
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["trace"] = delegate(env, job_file, tmp_path / "out", "icn", "--mapping", str(mapping),
                                           "--secret-file", str(secret_file), job_timeout=60)
            except AssertionError as exc:
                result["error"] = str(exc)

        thread = threading.Thread(target=run)
        thread.start()
        wait_for(lambda: (shared_dir / "started").exists(), 30, "function 1 to start on node 0")
        stop(nodes[0], signal.SIGKILL)
        nodes[0] = restart(nodes[0])
        thread.join(90)
        assert "error" not in result, result.get("error")
        assert (tmp_path / "out" / "out" / "b.txt").read_text() == "SLOW\n"
    finally:
        for node in nodes:
            stop(node)


def test_auto_mode_completes_with_a_neighbour_killed(secret_file: Path, tmp_path: Path) -> None:
    hello = free_ports(4, socket.SOCK_DGRAM)
    nodes = [start_node(tmp_path, i, secret_file, "auto", hello_port=hello[i],
                        neighbours=tuple(p for j, p in enumerate(hello) if j != i)) for i in range(4)]
    try:
        wait_for(lambda: all(len(node_status(n, secret_file)["icn_status"]["neighbours"]) == 3 for n in nodes),
                 20, "every node to hear its three neighbours")
        env = write_env(tmp_path / "env.json", nodes)
        job_file = write_job(tmp_path / "job.json", fork_join())
        delegate(env, job_file, tmp_path / "ip", "ip", "--secret-file", str(secret_file))
        stop(nodes[3], signal.SIGKILL)
        trace = delegate(env, job_file, tmp_path / "auto", "auto", "--secret-file", str(secret_file))
        assert outputs(tmp_path / "auto") == outputs(tmp_path / "ip")
        assert set(ran(trace).values()) == {"executed"}
        assert nodes[3].address not in {t["node"] for t in trace["tasks"]}
    finally:
        for node in nodes:
            stop(node)
