"""Interop over TCP with python-ndn, an independent NDN implementation, through a real
``sflow forwarder`` process: both directions, segmented content and Nacks."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator

import pytest
from icn_processes import Process, RunningForwarder, icn_status, peer, sflow

NDN_BIG = hashlib.sha256(bytes(i % 251 for i in range(60_000))).hexdigest()
SFLOW_BIG = hashlib.sha256(bytes(i % 241 for i in range(100_000))).hexdigest()


@pytest.fixture(scope="module")
def ndn_producer(forwarder: RunningForwarder) -> Iterator[Process]:
    process = peer("ndn_peer.py", str(forwarder.unix_path), "produce")
    assert process.readline(timeout=20) == "ready"
    yield process
    process.terminate()


@pytest.fixture(scope="module")
def sflow_producer(forwarder: RunningForwarder) -> Iterator[Process]:
    process = peer("sflow_peer.py", f"unix://{forwarder.unix_path}", "produce")
    assert process.readline(timeout=20) == "ready"
    yield process
    process.terminate()


def consume(script: str, address: str, names: list[str], timeout: float = 20) -> list[dict[str, object]]:
    process = peer(script, address, "consume", *names)
    try:
        return process.json_lines(len(names), timeout)
    finally:
        process.terminate()


def test_python_ndn_producer_answers_python_ndn_and_sflow_consumers(
    forwarder: RunningForwarder, ndn_producer: Process
) -> None:
    names = ["/interop/ndn/hello/alice", "seg:/interop/ndn/big", "/interop/nobody/here", "/interop/legacy/dave"]
    ndn_results = consume("ndn_peer.py", str(forwarder.port), names)
    assert ndn_results[0]["ok"] and ndn_results[0]["text"] == "ndn says alice"
    assert ndn_results[1]["ok"] and ndn_results[1]["sha256"] == NDN_BIG
    assert ndn_results[2] == {"name": "/interop/nobody/here", "ok": False, "nack": 150}  # Nack NoRoute
    assert ndn_results[3]["ok"] and ndn_results[3]["text"] == "legacy says dave"  # legacy app.register()

    sflow_results = consume("sflow_peer.py", forwarder.address, names)
    assert sflow_results[0]["ok"] and sflow_results[0]["text"] == "ndn says alice"
    assert sflow_results[1]["ok"] and sflow_results[1]["sha256"] == NDN_BIG
    assert sflow_results[2] == {"name": "/interop/nobody/here", "ok": False, "nack": 150}
    assert sflow_results[3]["ok"] and sflow_results[3]["text"] == "legacy says dave"


def test_sflow_producer_answers_python_ndn_consumer(forwarder: RunningForwarder, sflow_producer: Process) -> None:
    names = ["/interop/sflow/hello/bob", "seg:/interop/sflow/big", "/interop/nothing/x"]
    results = consume("ndn_peer.py", str(forwarder.port), names)
    assert results[0]["ok"] and results[0]["text"] == "sflow says bob"
    assert results[1]["ok"] and results[1]["sha256"] == SFLOW_BIG and results[1]["size"] == 100_000
    assert results[2]["nack"] == 150
    via_unix = consume("sflow_peer.py", f"unix://{forwarder.unix_path}", ["seg:/interop/sflow/big"])
    assert via_unix[0]["ok"] and via_unix[0]["sha256"] == SFLOW_BIG


def test_status_command_and_malformed_input(forwarder: RunningForwarder, sflow_producer: Process) -> None:
    with socket.create_connection(("127.0.0.1", forwarder.port), timeout=5) as rogue:
        rogue.sendall(b"\x05\x03\x07\x01\x08" + b"\x42\x00")  # two malformed packets: dropped, face stays
        rogue.sendall(b"\x06\xfd\x30\x00")  # announces a 12288-octet packet: this face is closed
        rogue.settimeout(5)
        assert rogue.recv(10) == b""
    status_run = sflow("icn", "status", "--connect", forwarder.address, "--json", name="sflow icn status")
    assert status_run.wait(20) == 0, status_run.stderr_tail()
    assert status_run.popen.stdout is not None
    status = json.loads(status_run.popen.stdout.read())
    status_run.terminate()
    counters = status["counters"]
    assert counters["n_malformed_packets"] >= 2 and counters["n_oversize_packets"] >= 1
    assert counters["n_satisfied_interests"] > 0 and counters["n_out_nacks"] > 0
    assert any(entry["prefix"] == "/interop/sflow/hello" for entry in status["fib"])
    text_run = sflow("icn", "status", "--connect", f"unix://{forwarder.unix_path}", name="sflow icn status")
    assert text_run.wait(20) == 0, text_run.stderr_tail()
    assert text_run.popen.stdout is not None
    text = text_run.popen.stdout.read()
    text_run.terminate()
    assert "hit ratio" in text and "/interop/sflow/hello" in text


def test_management_over_loopback_tcp_is_refused(forwarder: RunningForwarder) -> None:
    """Loopback TCP is not local for management: any user of the host can connect to it. The
    producers above registered over the Unix socket; the same registration over TCP is refused,
    from python-ndn and from sflow's own endpoint alike."""
    for script, address in (("ndn_peer.py", str(forwarder.port)), ("sflow_peer.py", forwarder.address)):
        process = peer(script, address, "register", "/interop/stolen")
        try:
            assert process.json_lines(1, 20)[0]["registered"] is False
        finally:
            process.terminate()
    assert "/interop/stolen" not in {e["prefix"] for e in icn_status(forwarder.address)["fib"]}

