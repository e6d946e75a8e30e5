"""Faults injected into real ``sflow node --mode icn|auto`` processes mid-job (see faults.py): the
node running a function is killed, stopped (silent, its connections open) or killed and restarted;
its functions are placed again and the job finishes with the same bytes as without the fault."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
from fault_lab import FAST, KILL, PY, RESTART, STOP, marker_job, reference, run_with_fault
from sfc_cluster import IcnNode, node_status, restart, start_node, stop, wait_for, write_env, write_job, write_mapping

from sflow.delegator.local import free_ports
from sflow.secret import generate_secret


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    return generate_secret(tmp_path / "cluster.secret")


def _lost(out: Path) -> list[dict[str, Any]]:
    trace = json.loads((out / "trace.json").read_text())
    assert trace["status"] == "ok"
    return [e for e in trace["events"] if e["kind"] == "node_lost"]


def test_static_icn_a_killed_stopped_or_restarted_node_is_replaced_and_the_job_finishes(
        secret_file: Path, tmp_path: Path) -> None:
    ports = free_ports(6)
    nodes = [start_node(tmp_path, i, secret_file, "icn", port=ports[2 * i], icn_port=ports[2 * i + 1], settings=FAST)
             for i in range(3)]
    expected = reference(tmp_path)
    try:
        env = write_env(tmp_path / "env.json", nodes)
        for k, fault in enumerate((KILL, STOP, RESTART)):
            marker = f"{3 + k}.{k}1803"  # a new job each time: nothing of it is in any store yet
            job = marker_job(marker, 41 + k)
            mapping = write_mapping(tmp_path / f"m{k}.json", job, nodes, {1: 0, 2: 1, 3: 2, 4: 1, 5: 0})
            out = tmp_path / f"out-{k}"
            argv = [PY, "-m", "sflow", "delegate", str(env), str(write_job(tmp_path / f"j{k}.json", job)), "--mode", "icn",
                    "--mapping", str(mapping), "-o", str(out), "--secret-file", str(secret_file), "--timeout", "120"]

            def again(i: int) -> None:
                nodes[i] = restart(nodes[i])

            outcome = run_with_fault(argv, nodes, marker, fault, out / "out.txt", expected, restart=again)
            assert outcome.identical, outcome.stderr
            assert outcome.victim == 1
            assert outcome.failover is not None  # function 2 started again elsewhere
            (lost,) = _lost(out)
            assert lost["node"] == nodes[1].address and 2 in lost["tasks"]
            assert lost["placements"]["2"][0] in {nodes[0].address, nodes[2].address}
            assert f"node {nodes[1].address} lost" in outcome.stderr and "placed again with" in outcome.stderr
            if fault == STOP:
                assert "no answer for" in lost["detail"], lost
                nodes[1].proc.send_signal(signal.SIGCONT)
            elif fault == KILL:
                assert "closed the connection" in lost["detail"], lost
                nodes[1] = restart(nodes[1])
        # the restarted node serves again (it keeps its store)
        assert node_status(nodes[1], secret_file)["icn_status"]["node"]
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGCONT)
            stop(node)


def test_auto_mode_a_node_killed_mid_job_is_routed_around_and_the_job_finishes(
        secret_file: Path, tmp_path: Path) -> None:
    hello = free_ports(3, socket.SOCK_DGRAM)
    nodes: list[IcnNode] = [start_node(tmp_path, i, secret_file, "auto", hello_port=hello[i], settings=FAST,
                                       neighbours=tuple(p for j, p in enumerate(hello) if j != i)) for i in range(3)]
    expected = reference(tmp_path)
    try:
        wait_for(lambda: all(len(node_status(n, secret_file)["icn_status"]["neighbours"]) == 2 for n in nodes),
                 20, "every node to hear its two neighbours")
        env = write_env(tmp_path / "env.json", nodes)
        marker = "3.27183"
        out = tmp_path / "out"
        argv = [PY, "-m", "sflow", "delegate", str(env), str(write_job(tmp_path / "j.json", marker_job(marker))),
                "--mode", "auto", "-o", str(out), "--secret-file", str(secret_file), "--timeout", "120"]
        outcome = run_with_fault(argv, nodes, marker, KILL, out / "out.txt", expected)
        assert outcome.identical, outcome.stderr
        victim = nodes[outcome.victim].address
        trace = json.loads((out / "trace.json").read_text())
        runs = {t["task"]: t for t in trace["tasks"]}
        assert runs[2]["node"] != victim and runs[2]["where"].startswith("executed"), runs[2]
        lost = _lost(out)
        # the END function's node was killed (the delegator asks another) or a neighbour that ran
        # function 2 for it (that node places it again)
        assert [e["node"] for e in lost] in ([victim], []), lost
    finally:
        for node in nodes:
            stop(node)
