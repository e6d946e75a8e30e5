"""The host agent with real processes on this machine (no SSH, no root): a fake node program that
prints the readiness line, exits early, stays silent, or ignores SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sflow.cluster.agent import NodeFiles, process_cmdline, read_pid, start, status, stop

FAKE_NODE = f"""#!{sys.executable}
import os, signal, sys
behaviour = os.environ["FAKE_NODE"]
if behaviour == "exit":
    print("bind: address already in use", file=sys.stderr, flush=True)
    sys.exit(3)
if behaviour == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
icn = " icn=127.0.0.1:6999" if "--mode" in sys.argv and sys.argv[sys.argv.index("--mode") + 1] != "ip" else ""
if behaviour != "silent":
    print(f"sflow-node ready listen=127.0.0.1:7999{{icn}} pid={{os.getpid()}} version=9.9", flush=True)
while True:
    signal.pause()
"""


@pytest.fixture
def files(tmp_path: Path) -> Iterator[NodeFiles]:
    node_files = NodeFiles(tmp_path / "host")
    node_files.directory.mkdir()
    node_files.config.write_text("")
    yield node_files
    pid = read_pid(node_files)
    if pid is not None and process_cmdline(pid) is not None:
        stop(node_files, grace=0.2)


@pytest.fixture
def fake_node(tmp_path: Path) -> Path:
    path = tmp_path / "fake-python"
    path.write_text(FAKE_NODE)
    path.chmod(0o755)
    return path


def test_start_waits_for_readiness_records_the_pid_and_stop_terminates(files: NodeFiles, fake_node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NODE", "ready")
    started = start(files, mode="ip", timeout=20, python=str(fake_node))
    assert started["ok"] and not started["already"], started
    pid = started["pid"]
    assert (started["listen"], started["version"]) == ("127.0.0.1:7999", "9.9")
    assert read_pid(files) == pid
    cmdline = process_cmdline(pid)
    assert cmdline is not None and cmdline[2:5] == ["-m", "sflow", "node"] and str(files.pid) in cmdline
    assert os.getsid(pid) == pid  # its own session: it outlives the SSH session that started it

    again = start(files, mode="ip", timeout=20, python=str(fake_node))
    assert again["ok"] and again["already"] and again["pid"] == pid

    stopped = stop(files, grace=10)
    assert stopped == {"ok": True, "stopped": True, "pid": pid, "signal": "SIGTERM"}
    assert process_cmdline(pid) is None and not files.pid.exists()
    assert stop(files, grace=1)["detail"] == "not running (no pid file)"


def test_a_node_that_exits_early_is_reported_with_its_log(files: NodeFiles, fake_node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NODE", "exit")
    result = start(files, mode="ip", timeout=20, python=str(fake_node))
    assert not result["ok"]
    assert result["error"] == "sflow node exited with status 3 before it was ready"
    assert "address already in use" in result["log_tail"]
    assert not files.pid.exists()


def test_a_silent_node_times_out_and_is_still_stoppable(files: NodeFiles, fake_node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NODE", "silent")
    result = start(files, mode="ip", timeout=0.3, python=str(fake_node))
    assert not result["ok"] and "no readiness line within 0.3 s" in result["error"]
    assert status(files, timeout=1)["state"] == "starting"
    assert stop(files, grace=10)["signal"] == "SIGTERM"


def test_a_node_ignoring_sigterm_gets_sigkill_after_the_grace_period(files: NodeFiles, fake_node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NODE", "stubborn")
    pid = start(files, mode="ip", timeout=20, python=str(fake_node))["pid"]
    result = stop(files, grace=0.3)
    assert (result["ok"], result["signal"], result["pid"]) == (True, "SIGKILL", pid)
    assert process_cmdline(pid) is None


def test_a_pid_file_naming_another_program_is_never_signalled(files: NodeFiles) -> None:
    other = subprocess.Popen(["sleep", "300"])
    try:
        files.pid.write_text(f"{other.pid}\n")
        result = stop(files, grace=0.2)
        assert result["ok"] and not result["stopped"]
        assert "belongs to another program; not signalled" in result["detail"]
        assert other.poll() is None
        assert not files.pid.exists()
    finally:
        other.kill()
        other.wait()


def test_status_of_a_node_that_is_not_running(files: NodeFiles) -> None:
    assert status(files, timeout=1) == {"ok": False, "state": "down", "error": "sflow node is not running"}


def test_the_mode_is_passed_to_the_node(files: NodeFiles, fake_node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NODE", "ready")
    result = start(files, mode="icn", timeout=20, python=str(fake_node))
    assert result["ok"], result
    cmdline = process_cmdline(result["pid"]) or []
    assert cmdline[cmdline.index("--mode") + 1] == "icn"
    assert result["icn"] == "127.0.0.1:6999"  # an ICN node's readiness line names its forwarder too
