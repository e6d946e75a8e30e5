"""The CLI as a separate process meets a taken address and a closed standard output: it says which
address is taken (exit status 2, no traceback), and stops quietly when its reader went away."""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sflow.delegator.local import local_environment
from sflow.jsonio import environment_to_dict
from sflow.secret import generate_secret

REPO = Path(__file__).resolve().parents[3]
TAKEN = "the address is already in use (another process listens there; stop it or choose another port)"


def sflow(*args: str, stdout: int | None = subprocess.PIPE, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFLOW_")}
    return subprocess.run([sys.executable, "-m", "sflow", *args], stdout=stdout, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, env=env, check=False)


@pytest.fixture()
def held() -> Iterator[tuple[int, int]]:
    """A TCP port and a UDP port on loopback that another process (this test) holds."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    udp = socket.socket(type=socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    yield tcp.getsockname()[1], udp.getsockname()[1]
    tcp.close()
    udp.close()


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()[-1]


def test_a_taken_address_is_named_for_every_socket_a_node_listens_on(
    held: tuple[int, int], tmp_path: Path
) -> None:
    tcp, udp = held
    secret = str(generate_secret(tmp_path / "secret"))
    common = ["--secret-file", secret, "--workdir", str(tmp_path / "work"), "--result-store", str(tmp_path / "rs")]

    done = sflow("node", "--listen", f"127.0.0.1:{tcp}", *common)
    assert done.returncode == 2
    assert _last_line(done) == f"sflow: error: cannot listen on TCP 127.0.0.1:{tcp} (--listen, node.listen): {TAKEN}"

    done = sflow("node", "--listen", "127.0.0.1:0", "--mode", "icn", "--icn-listen", f"127.0.0.1:{tcp}", *common)
    assert done.returncode == 2
    assert _last_line(done) == f"sflow: error: cannot listen on TCP 127.0.0.1:{tcp} (--icn-listen, icn.port): {TAKEN}"

    log = tmp_path / "node.log"
    done = sflow("node", "--listen", "127.0.0.1:0", "--mode", "auto", "--icn-listen", "127.0.0.1:0",
                 "--hello-port", str(udp), "--log-file", str(log), *common)
    assert done.returncode == 2
    expected = f"cannot listen on UDP 127.0.0.1:{udp} for hellos (--hello-port, icn.hello_port): {TAKEN}"
    assert done.stderr == f"sflow: error: {expected}\n"
    assert f"event=node_failed error={expected}" in log.read_text()  # the node's log says it too


def test_sflow_run_says_which_address_of_the_environment_is_taken(held: tuple[int, int], tmp_path: Path) -> None:
    tcp, _ = held
    env = tmp_path / "env.json"
    env.write_text(json.dumps(environment_to_dict(local_environment([f"127.0.0.1:{tcp}"], 1))))
    out = tmp_path / "out"
    done = sflow("run", str(REPO / "jobs" / "text-chain.json"), "--env", str(env), "-o", str(out),
                 "--secret-file", str(tmp_path / "absent.secret"))
    assert done.returncode == 2
    log = out / "nodes" / "node-0.log"
    assert done.stderr == (
        f"sflow: error: local node 0 (127.0.0.1:{tcp}, VM node0 in {env}) exited before it was ready (exit status 2): "
        f"cannot listen on TCP 127.0.0.1:{tcp} (--listen, node.listen): {TAKEN}; log: {log}\n")
    assert "event=node_failed" in log.read_text()


def _closed_stdout(*args: str) -> subprocess.CompletedProcess[str]:
    """Run with a standard output whose reader is already gone (as after `| head -1`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return sflow(*args, stdout=write_end)
    finally:
        os.close(write_end)


def test_a_closed_standard_output_ends_quietly(tmp_path: Path) -> None:
    for args in (["config", "show", "--keys"], ["validate", str(REPO / "envs" / "local.json"),
                                                str(REPO / "jobs" / "fork-join.json")]):
        done = _closed_stdout(*args)
        assert (done.returncode, done.stderr) == (141, ""), args
    forwarder = subprocess.Popen([sys.executable, "-m", "sflow", "forwarder", "--listen", "127.0.0.1:0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert forwarder.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(forwarder.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 30
        line = ""
        while "ready" not in line and time.monotonic() < deadline:
            if selector.select(deadline - time.monotonic()):
                line = forwarder.stdout.readline()
        assert "ready" in line, line
        address = line.split("tcp4://")[1].split()[0]
        assert sflow("icn", "status", "--connect", address, "--json").returncode == 0
        done = _closed_stdout("icn", "status", "--connect", address, "--json")
        assert (done.returncode, done.stderr) == (141, "")
    finally:
        forwarder.terminate()
        forwarder.wait(20)
