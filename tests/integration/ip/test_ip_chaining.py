"""IP chaining on three real node processes on loopback: outputs compared byte for byte with the
same commands run locally, a 200 MB file, failures, hostile clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ip_cluster import (
    Node,
    RawClient,
    sflow,
    shell,
    start_node,
    stop_node,
    write_env,
    write_job,
    write_mapping,
)

from sflow.secret import read_secret


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ip")


@pytest.fixture(scope="module")
def secret_file(base: Path) -> Path:
    path = base / "cluster.secret"
    result = sflow("keygen", "-o", str(path))
    assert result.returncode == 0, result.stderr
    assert path.stat().st_mode & 0o777 == 0o600
    again = sflow("keygen", "-o", str(path))
    assert again.returncode != 0 and "--force" in again.stderr
    return path


@pytest.fixture(scope="module")
def nodes(base: Path, secret_file: Path) -> Iterator[list[Node]]:
    started = [start_node(base, i, secret_file) for i in range(3)]
    yield started
    for node in started:
        assert stop_node(node) == 0
        assert not node.pid_file.exists()


@pytest.fixture(scope="module")
def env(base: Path, nodes: list[Node]) -> Path:
    return write_env(base / "env.json", nodes)


def delegate(
    base: Path, name: str, job: dict[str, Any], nodes: list[Node], env: Path, secret_file: Path,
    where: dict[int, tuple[int, int]],
) -> tuple[Any, Path]:
    job_file = write_job(base / f"{name}.job.json", job)
    mapping = write_mapping(base / f"{name}.mapping.json", job, nodes, where)
    out = base / f"{name}-out"
    result = sflow("delegate", str(env), str(job_file), "--mapping", str(mapping), "-o", str(out),
                   "--secret-file", str(secret_file))
    return result, out


def t(tid: int, cmd: str, files: list[tuple[str, list[int]]]) -> dict[str, Any]:
    return {
        "task_id": tid, "workload": 1000, "cmd": cmd,
        "out_file_list": [{"path": p, "size": 1, "dest_task_id": d} for p, d in files],
    }


def same_bytes(out: Path, ref: Path, *names: str) -> None:
    for name in names:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
        assert (out / name).stat().st_size > 0, name


def test_chain_across_three_nodes(base: Path, nodes: list[Node], env: Path, secret_file: Path) -> None:
    job = {"job_id": 11, "task_list": [
        t(1, "seq 1 5000 | sed 's/$/ lorem ipsum dolor/' > ./text/lines.txt", [("./text/lines.txt", [2])]),
        t(2, "tr a-z A-Z < $F^1 > upper.txt", [("upper.txt", [3])]),
        t(3, "sort -r $F^2 > sorted.txt", [("sorted.txt", [4])]),
        t(4, "wc -l < $F^3 > count.txt && sed -n '1,5p' $F^3 > head.txt", [("count.txt", []), ("head.txt", [])]),
    ]}
    result, out = delegate(base, "chain", job, nodes, env, secret_file, {1: (0, 0), 2: (1, 0), 3: (2, 0), 4: (0, 1)})
    assert result.returncode == 0, result.stderr
    ref = base / "chain-ref"
    shell("mkdir -p text; seq 1 5000 | sed 's/$/ lorem ipsum dolor/' > text/lines.txt; tr a-z A-Z < text/lines.txt > upper.txt;"
          " sort -r upper.txt > sorted.txt; wc -l < sorted.txt > count.txt; sed -n '1,5p' sorted.txt > head.txt", ref)
    same_bytes(out, ref, "count.txt", "head.txt")
    trace = json.loads((out / "trace.json").read_text())
    assert {r["task"]: r["node"] for r in trace["tasks"]} == {
        1: nodes[0].address, 2: nodes[1].address, 3: nodes[2].address, 4: nodes[0].address}
    assert all(r["where"] == "native" for r in trace["tasks"])
    assert [(x["task"], x["dst_node"]) for x in trace["transfers"]] == [
        (1, nodes[1].address), (2, nodes[2].address), (3, nodes[0].address)]
    assert "makespan:" in result.stdout and "real" in result.stdout
    chart = base / "chain.png"
    drawn = sflow("gantt", str(out / "trace.json"), "-o", str(chart))
    assert drawn.returncode == 0, drawn.stderr
    assert chart.read_bytes()[:4] == b"\x89PNG"
    # Job directories are removed from the nodes once the job ends.
    assert all(not any(n.workdir.iterdir()) for n in nodes)


def test_fork_join(base: Path, nodes: list[Node], env: Path, secret_file: Path) -> None:
    job = {"job_id": 12, "task_list": [
        t(1, "seq 1 3000 > nums.txt", [("nums.txt", [2, 3, 4])]),
        t(2, "sed 's/^/a/' $F^1 > a.txt", [("a.txt", [5])]),
        t(3, "tr 0-9 a-j < $F^1 > b.txt", [("b.txt", [5])]),
        t(4, "sort -r $F^1 > c.txt", [("c.txt", [5])]),
        t(5, "cat $F^2 $F^3 $F^4 > joined.txt && wc -c < joined.txt > size.txt", [("joined.txt", []), ("size.txt", [])]),
    ]}
    result, out = delegate(base, "fork", job, nodes, env, secret_file,
                           {1: (0, 0), 2: (1, 0), 3: (2, 0), 4: (0, 1), 5: (1, 1)})
    assert result.returncode == 0, result.stderr
    ref = base / "fork-ref"
    shell("seq 1 3000 > nums.txt; sed 's/^/a/' nums.txt > a.txt; tr 0-9 a-j < nums.txt > b.txt; sort -r nums.txt > c.txt;"
          " cat a.txt b.txt c.txt > joined.txt; wc -c < joined.txt > size.txt", ref)
    same_bytes(out, ref, "joined.txt", "size.txt")
    trace = json.loads((out / "trace.json").read_text())
    # nums.txt went once to node 1 and once to node 2; task 4 read it in place on node 0.
    assert sorted(x["dst_node"] for x in trace["transfers"] if x["task"] == 1) == sorted([nodes[1].address, nodes[2].address])
    # A transfer ends when the receiver has the file (its report, not the sender's acknowledgement):
    # never after the function that reads it started there.
    runs = {r["task"]: r for r in trace["tasks"]}
    readers = {1: (2, 3), 2: (5,), 3: (5,), 4: (5,)}
    for x in trace["transfers"]:
        for reader in readers[x["task"]]:
            if runs[reader]["node"] == x["dst_node"]:
                assert x["start"] < x["finish"] <= runs[reader]["start"], (x, runs[reader])


def test_diamond_with_two_files_between_one_pair(base: Path, nodes: list[Node], env: Path, secret_file: Path) -> None:
    job = {"job_id": 13, "task_list": [
        t(1, "seq 1 1000 > x.txt && seq 1000 -1 1 > y.txt", [("x.txt", [2, 3]), ("y.txt", [2])]),
        t(2, "paste x.txt y.txt > p.txt", [("p.txt", [4])]),
        t(3, "sort $F^1 > r.txt", [("r.txt", [4])]),
        t(4, "cat $F^2 $F^3 | sort > final.txt", [("final.txt", [])]),
    ]}
    result, out = delegate(base, "diamond", job, nodes, env, secret_file, {1: (0, 0), 2: (1, 0), 3: (2, 0), 4: (2, 1)})
    assert result.returncode == 0, result.stderr
    ref = base / "diamond-ref"
    shell("seq 1 1000 > x.txt; seq 1000 -1 1 > y.txt; paste x.txt y.txt > p.txt; sort x.txt > r.txt;"
          " cat p.txt r.txt | sort > final.txt", ref)
    same_bytes(out, ref, "final.txt")
    trace = json.loads((out / "trace.json").read_text())
    to_node1 = sorted(x["path"] for x in trace["transfers"] if x["task"] == 1 and x["dst_node"] == nodes[1].address)
    assert to_node1 == ["x.txt", "y.txt"]  # both files, each counted before task 2 ran


def test_200_mb_file_crosses_nodes(base: Path, nodes: list[Node], env: Path, secret_file: Path) -> None:
    job = {"job_id": 14, "task_list": [
        t(1, "head -c 200M /dev/urandom > big.bin && sha256sum < big.bin > sum1.txt", [("big.bin", [2]), ("sum1.txt", [])]),
        t(2, "sha256sum < $F^1 > sum2.txt", [("sum2.txt", [])]),
    ]}
    result, out = delegate(base, "big", job, nodes, env, secret_file, {1: (0, 0), 2: (1, 0)})
    assert result.returncode == 0, result.stderr
    assert (out / "sum1.txt").read_text() == (out / "sum2.txt").read_text()
    trace = json.loads((out / "trace.json").read_text())
    (transfer,) = trace["transfers"]
    assert transfer["bytes"] == 200 * 1024 * 1024 and transfer["dst_node"] == nodes[1].address
    second = next(r for r in trace["tasks"] if r["task"] == 2)
    assert transfer["start"] < transfer["finish"] <= second["start"]


def test_failing_function_is_reported_and_the_job_stops(base: Path, nodes: list[Node], env: Path, secret_file: Path) -> None:
    job = {"job_id": 15, "task_list": [
        t(1, "echo fine > ok.txt", [("ok.txt", [2, 3])]),
        t(2, "echo first line >&2; echo boom-on-stderr >&2; exit 3", [("never.txt", [4])]),
        t(3, "sleep 30; echo late > late.txt", [("late.txt", [4])]),
        t(4, "cat $F^2 $F^3 > end.txt", [("end.txt", [])]),
    ]}
    result, out = delegate(base, "fail", job, nodes, env, secret_file, {1: (0, 0), 2: (1, 0), 3: (2, 0), 4: (0, 0)})
    assert result.returncode == 1
    assert f"function 2 failed on node {nodes[1].address}" in result.stderr
    assert "exit status 3" in result.stderr and "boom-on-stderr" in result.stderr
    # The other nodes stopped the job's work: task 3's sleep is gone and no job directory is left.
    status = json.loads(sflow("status", "--connect", nodes[2].address, "--json", "--secret-file", str(secret_file)).stdout)
    assert status["running"] == [] and status["jobs"] == []


def test_missing_declared_output_fails_the_function(base: Path, nodes: list[Node], env: Path, secret_file: Path) -> None:
    job = {"job_id": 16, "task_list": [t(1, "true", [("missing.txt", [])])]}
    result, _ = delegate(base, "missing", job, nodes, env, secret_file, {1: (2, 1)})
    assert result.returncode == 1
    assert f"function 1 failed on node {nodes[2].address}" in result.stderr and "missing.txt" in result.stderr


def test_path_traversal_out_file_is_rejected(base: Path, nodes: list[Node], env: Path, secret_file: Path) -> None:
    job = {"job_id": 17, "task_list": [t(1, "echo x > ../../escape.txt", [("../../escape.txt", [])])]}
    job_file = write_job(base / "traversal.json", job)
    result = sflow("delegate", str(env), str(job_file), "-o", str(base / "trav-out"), "--secret-file", str(secret_file))
    assert result.returncode == 2 and "escapes the job directory" in result.stderr
    # A hostile delegator that skips the loader: the node itself refuses the plan.
    client = RawClient(nodes[0].address)
    client.authenticate(read_secret(secret_file))
    plan = {"job_id": 17, "run_id": "evil", "node": nodes[0].address, "tasks": [{
        "id": 1, "cmd": "echo x > ../../escape.txt", "vcpu": "0^0^0^0^0", "cpu_index": 0, "docker_image": None,
        "docker_tar": None, "inputs": [], "value_preds": [], "file_args": [],
        "outputs": [["../../escape.txt", [], True]], "value": None}]}
    client.send("job", job="17-evil", plan=plan)
    reply = client.recv()
    client.close()
    assert reply is not None and reply["t"] == "rejected" and "escapes the job directory" in reply["reason"]
    assert not (nodes[0].workdir / "17-evil").exists()
    assert not list(base.rglob("escape.txt"))


def test_unauthenticated_client_is_rejected_and_nothing_starts(base: Path, nodes: list[Node], secret_file: Path) -> None:
    def counters() -> dict[str, int]:
        reply = sflow("status", "--connect", nodes[1].address, "--json", "--secret-file", str(secret_file))
        assert reply.returncode == 0, reply.stderr
        return json.loads(reply.stdout)["counters"]

    before = counters()
    marker = base / "marker-unauth"
    client = RawClient(nodes[1].address)
    plan = {"job_id": 18, "run_id": "x", "node": nodes[1].address, "tasks": [{
        "id": 1, "cmd": f"touch {marker}", "vcpu": "0^1^0^0^0", "cpu_index": 0, "docker_image": None,
        "docker_tar": None, "inputs": [], "value_preds": [], "file_args": [], "outputs": [], "value": None}]}
    client.send("job", job="18-x", plan=plan)  # one frame: a second could meet a reset socket
    replies = []
    while (msg := client.recv()) is not None:
        replies.append(msg)
    client.close()
    assert [m["t"] for m in replies] == ["error"]
    assert "before authentication" in replies[0]["message"] or "exceeds the limit" in replies[0]["message"]
    after = counters()
    assert after.get("rejected", 0) == before.get("rejected", 0) + 1
    assert after.get("functions_started", 0) == before.get("functions_started", 0)
    assert not marker.exists()
    # A client with the wrong secret fails too, and the node keeps serving.
    wrong = RawClient(nodes[1].address)
    with pytest.raises(Exception, match="does not hold the cluster secret"):
        wrong.authenticate(b"w" * 32)
    wrong.close()
    assert counters()["rejected"] >= after["rejected"]


def test_status_command(nodes: list[Node], secret_file: Path) -> None:
    result = sflow("status", "--connect", nodes[0].address, "--secret-file", str(secret_file))
    assert result.returncode == 0, result.stderr
    assert f"node {nodes[0].address}" in result.stdout and "vCPUs: 2" in result.stdout
    assert "running functions: 0" in result.stdout and "uptime" in result.stdout
    bad = sflow("status", "--connect", "127.0.0.1:1", "--secret-file", str(secret_file))
    assert bad.returncode != 0 and "127.0.0.1:1" in bad.stderr


def test_scheduled_run_with_a_value_between_nodes(base: Path, nodes: list[Node], env: Path, secret_file: Path) -> None:
    job = {"job_id": 19, "task_list": [
        {**t(1, "seq 1 100 > s.txt", [("s.txt", [2])]), "out_value": {"val": "it's $(not run)", "size": 0, "dest_task_id": [2]}},
        t(2, "echo $V^1 > v.txt && wc -l < $F^1 >> v.txt", [("v.txt", [])]),
    ]}
    job_file = write_job(base / "value.json", job)
    mapping = write_mapping(base / "value.mapping.json", job, nodes, {1: (0, 0), 2: (2, 0)})
    out = base / "value-out"
    result = sflow("delegate", str(env), str(job_file), "--mapping", str(mapping), "-o", str(out), "--secret-file", str(secret_file))
    assert result.returncode == 0, result.stderr
    assert (out / "v.txt").read_text() == "it's $(not run)\n100\n"
    # The same job scheduled by sflow itself (HEFT) gives the same bytes.
    out2 = base / "value-heft"
    result = sflow("delegate", str(env), str(job_file), "-a", "heft", "-o", str(out2), "--secret-file", str(secret_file))
    assert result.returncode == 0, result.stderr
    assert (out2 / "v.txt").read_bytes() == (out / "v.txt").read_bytes()
    assert "predicted by heft" in result.stdout


def test_unreachable_node_is_a_clear_error(base: Path, nodes: list[Node], secret_file: Path) -> None:
    closed = Node(nodes[0].proc, "127.0.0.1:1", nodes[0].workdir, nodes[0].pid_file, nodes[0].log)
    bad_env = write_env(base / "bad-env.json", [nodes[0], closed])
    job = {"job_id": 20, "task_list": [t(1, "true", []), t(2, "true", [])]}
    job_file = write_job(base / "unreach.json", job)
    mapping = write_mapping(base / "unreach.mapping.json", job, [nodes[0], closed], {1: (0, 0), 2: (1, 0)})
    result = sflow("delegate", str(bad_env), str(job_file), "--mapping", str(mapping), "-o", str(base / "unreach-out"),
                   "--secret-file", str(secret_file))
    assert result.returncode == 1 and "cannot reach node 127.0.0.1:1" in result.stderr
    wrong_secret = base / "other.secret"
    assert sflow("keygen", "-o", str(wrong_secret)).returncode == 0
    result = sflow("delegate", str(bad_env), str(job_file), "--mapping", str(mapping), "-o", str(base / "unreach-out"),
                   "--secret-file", str(wrong_secret))
    assert result.returncode == 1 and "cannot reach node" in result.stderr
