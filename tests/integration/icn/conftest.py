"""Fixtures for the ICN integration tests: a real ``sflow forwarder`` process on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from icn_processes import RunningForwarder, port_of, ready_addresses, sflow


@pytest.fixture(scope="module")
def forwarder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningForwarder]:
    pytest.importorskip("ndn", reason="python-ndn (the independent NDN peer) is not installed")
    unix_path = tmp_path_factory.mktemp("icn") / "forwarder.sock"
    process = sflow("forwarder", "--listen", "127.0.0.1:0", "--unix", str(unix_path), name="sflow forwarder")
    running = RunningForwarder(process, port_of(ready_addresses(process), "tcp4://"), unix_path)
    yield running
    status = process.terminate()
    assert status == 0, process.stderr_tail()
    assert not unix_path.exists(), "the Unix socket file was not removed on SIGTERM"
