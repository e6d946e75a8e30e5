"""An attacker on the path between a delegator and a real node (a TCP proxy): it reads nothing of a
job, a flipped byte drops the connection before anything runs, a replayed session is refused."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ip_cluster import Node, sflow, start_node, stop_node, wait_for, write_env, write_job, write_mapping
from tcp_proxy import Proxy

CMD_MARK = "cmd-7b1c"
VALUE_MARK = "value-5e8f"
FILE_MARK = b"file-content-9d2e"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("attacks")


@pytest.fixture(scope="module")
def secret_file(base: Path) -> Path:
    path = base / "cluster.secret"
    assert sflow("keygen", "-o", str(path)).returncode == 0
    return path


@pytest.fixture(scope="module")
def node(base: Path, secret_file: Path) -> Iterator[Node]:
    started = start_node(base, 0, secret_file)
    yield started
    assert stop_node(started) == 0


def counters(node: Node, secret_file: Path) -> dict[str, int]:
    reply = sflow("status", "--connect", node.address, "--json", "--secret-file", str(secret_file))
    assert reply.returncode == 0, reply.stderr
    return dict(json.loads(reply.stdout)["counters"])


def delegate_through(base: Path, name: str, job: dict[str, Any], node: Node, proxy: Proxy, secret_file: Path) -> Any:
    """``sflow delegate`` of ``job`` (every function on ``node``), reaching the node through ``proxy``."""
    seen = dataclasses.replace(node, address=proxy.address)
    env = write_env(base / f"{name}.env.json", [seen])
    mapping = write_mapping(base / f"{name}.mapping.json", job, [seen], {t["task_id"]: (0, 0) for t in job["task_list"]})
    return sflow("delegate", str(env), str(write_job(base / f"{name}.job.json", job)), "--mapping", str(mapping),
                 "-o", str(base / f"{name}-out"), "--secret-file", str(secret_file))


def test_recorded_bytes_hold_no_command_value_or_file_and_a_replay_is_refused(
    base: Path, node: Node, secret_file: Path
) -> None:
    job = {"job_id": 41, "task_list": [
        {"task_id": 1, "workload": 1000, "cmd": f"echo {CMD_MARK} > /dev/null; printf 'file-%s-9d2e' content > a.txt",
         "out_file_list": [{"path": "a.txt", "size": 1, "dest_task_id": [2]}],
         "out_value": {"val": VALUE_MARK, "size": 0, "dest_task_id": [2]}},
        {"task_id": 2, "workload": 1000, "cmd": "cat $F^1 > result.txt; echo $V^1 >> result.txt",
         "out_file_list": [{"path": "result.txt", "size": 1, "dest_task_id": []}]},
    ]}
    proxy = Proxy(node.address)
    try:
        result = delegate_through(base, "record", job, node, proxy, secret_file)
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    out = (base / "record-out" / "result.txt").read_bytes()
    assert FILE_MARK in out and VALUE_MARK.encode() in out  # it did cross the proxy
    assert proxy.sessions and all(s.up and s.down for s in proxy.sessions)
    for session in proxy.sessions:
        for direction in (session.up, session.down):
            for mark in (CMD_MARK.encode(), VALUE_MARK.encode(), FILE_MARK, b"printf", b"result.txt"):
                assert mark not in direction, mark

    # (c) the delegator's recorded bytes sent again, straight to the node: refused, nothing runs
    before = counters(node, secret_file)
    recorded = bytes(proxy.sessions[0].up)
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(recorded)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert b"does not hold the cluster secret" in answer
    after = counters(node, secret_file)
    assert after["functions_started"] == before["functions_started"]
    assert after["rejected"] == before.get("rejected", 0) + 1  # an unauthenticated connection
    wait_for(lambda: "does not hold the cluster secret" in node.log.read_text(), 10, "the refusal in the node's log")


@pytest.mark.parametrize(("frame", "upstream"), [(2, True), (3, True), (1, False)])
def test_a_flipped_byte_drops_the_connection_and_nothing_runs(
    base: Path, node: Node, secret_file: Path, frame: int, upstream: bool
) -> None:
    # upstream frames 0 and 1 are hello and auth, 2 and 3 the job and its start; downstream 0 is
    # the challenge, 1 the node's sealed ready
    marker = base / f"ran-{frame}-{upstream}"
    job = {"job_id": 42, "task_list": [
        {"task_id": 1, "workload": 1000, "cmd": f"touch {marker}", "out_file_list": []},
    ]}
    before = counters(node, secret_file)
    proxy = Proxy(node.address, flip_frame=frame, upstream=upstream)
    try:
        result = delegate_through(base, f"flip{frame}{upstream}", job, node, proxy, secret_file)
    finally:
        proxy.close()
    assert proxy.sessions and proxy.sessions[0].flipped_at is not None
    assert result.returncode != 0
    assert not marker.exists()
    after = counters(node, secret_file)
    assert after["functions_started"] == before["functions_started"]
    if upstream:
        wait_for(lambda: "integrity check" in node.log.read_text(), 10, "the integrity failure in the node's log")
    else:
        assert "integrity check" in result.stderr, result.stderr


def test_a_rotated_secret_no_longer_reaches_a_node_holding_the_old_one(base: Path, node: Node, secret_file: Path) -> None:
    rotated = base / "rotated.secret"
    rotated.write_bytes(secret_file.read_bytes())
    rotated.chmod(0o600)
    done = sflow("keygen", "--rotate", "-o", str(rotated))
    assert done.returncode == 0 and "sflow cluster deploy" in done.stdout, done.stderr
    assert rotated.read_bytes() != secret_file.read_bytes() and rotated.stat().st_mode & 0o777 == 0o600
    refused = sflow("status", "--connect", node.address, "--secret-file", str(rotated))
    assert refused.returncode != 0 and "does not hold the cluster secret" in refused.stderr
    missing = sflow("keygen", "--rotate", "-o", str(base / "none.secret"))
    assert missing.returncode == 2 and "no cluster secret to rotate" in missing.stderr
    assert not (base / "none.secret").exists()
