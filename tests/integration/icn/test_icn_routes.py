"""Two ``sflow forwarder`` processes chained by static routes (``--route``) over TCP and UDP; a
python-ndn consumer on the first reaches an sflow producer on the second."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from icn_processes import icn_status, peer, port_of, ready_addresses, sflow

SFLOW_BIG = hashlib.sha256(bytes(i % 241 for i in range(100_000))).hexdigest()


def status(address: str) -> dict[str, Any]:
    return icn_status(address)


def fib_prefixes(address: str) -> set[str]:
    return {entry["prefix"] for entry in status(address)["fib"]}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    pytest.importorskip("ndn", reason="python-ndn (the independent NDN peer) is not installed")
    sock = tmp_path_factory.mktemp("far") / "far.sock"
    far = sflow("forwarder", "--listen", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--unix", str(sock),
                name="far forwarder")
    processes = [far]
    try:
        far_addresses = ready_addresses(far)
        far_tcp, far_udp = port_of(far_addresses, "tcp4://"), port_of(far_addresses, "udp4://")
        # the producer registers its prefixes over the Unix socket (management is for local users)
        producer = peer("sflow_peer.py", f"unix://{sock}", "produce")
        processes.append(producer)
        assert producer.readline(timeout=20) == "ready"
        near = sflow(
            "forwarder", "--listen", "127.0.0.1:0",
            "--route", f"/interop/sflow=tcp4://127.0.0.1:{far_tcp},10",
            # /interop/sflow/big also inherits the TCP route (CHILD_INHERIT); UDP is cheaper
            "--route", f"/interop/sflow/big=udp4://127.0.0.1:{far_udp}",
            name="near forwarder",
        )
        processes.append(near)
        near_tcp = port_of(ready_addresses(near), "tcp4://")
        deadline = time.monotonic() + 20
        while not {"/interop/sflow", "/interop/sflow/big"} <= fib_prefixes(f"127.0.0.1:{near_tcp}"):
            assert time.monotonic() < deadline, "the static routes did not appear in the FIB"
        yield near_tcp, far_tcp
    finally:
        for process in reversed(processes):
            assert process.terminate() == 0, process.stderr_tail()


def test_consumer_reaches_producer_two_forwarders_away(chain: tuple[int, int]) -> None:
    near_tcp, far_tcp = chain
    consumer = peer("ndn_peer.py", str(near_tcp), "consume", "/interop/sflow/hello/carol", "seg:/interop/sflow/big")
    try:
        hello, big = consumer.json_lines(2, timeout=20)
    finally:
        consumer.terminate()
    assert hello["ok"] and hello["text"] == "sflow says carol"  # over the TCP route
    assert big["ok"] and big["sha256"] == SFLOW_BIG  # 8 kB segments over the UDP route
    udp_faces = [f for f in status(f"127.0.0.1:{far_tcp}")["faces"] if f["remote"].startswith("udp4://")]
    assert udp_faces and sum(f["counters"]["n_in_interests"] for f in udp_faces) >= 13
