"""Real ``sflow node`` processes on loopback for the IP-chaining integration tests."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sflow.delegator.local import local_environment
from sflow.jsonio import environment_to_dict
from sflow.node.readiness import parse_readiness
from sflow.node import auth
from sflow.node.protocol import FrameDecoder, Message, encode

PY = sys.executable
VCPUS = 2


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def processes_with(marker: str) -> list[int]:
    """The processes whose command line contains ``marker`` (pytest's own excepted)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline:
            pids.append(int(entry.name))
    return pids


@dataclass
class Node:
    proc: subprocess.Popen[str]
    address: str
    workdir: Path
    pid_file: Path
    log: Path

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])


def start_node(base: Path, index: int, secret_file: Path, timeout: float = 20.0, listen: str = "127.0.0.1:0",
               settings: Mapping[str, str] | None = None, workdir: Path | None = None) -> Node:
    """A node process; ``settings`` are further ``SFLOW_*`` variables (a shorter heartbeat…)."""
    pid_file, log = base / f"node{index}.pid", base / f"node{index}.log"
    workdir = workdir or base / f"node{index}"
    proc = subprocess.Popen(
        [PY, "-m", "sflow", "node", "--listen", listen, "--workdir", str(workdir), "--pid-file", str(pid_file),
         "--secret-file", str(secret_file), "--log-file", str(log)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, SFLOW_NODE_VCPUS=str(VCPUS), **(settings or {})),
    )
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not sel.select(remaining):
            proc.kill()
            raise AssertionError(f"node {index} printed no readiness line within {timeout} s")
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"node {index} exited: {log.read_text() if log.exists() else ''}")
        ready = parse_readiness(line)
        if ready is not None:
            assert ready.pid == proc.pid
            return Node(proc, ready.listen, workdir, pid_file, log)


def stop_node(node: Node, timeout: float = 20.0) -> int:
    if node.proc.poll() is None:
        node.proc.send_signal(signal.SIGTERM)
    return node.proc.wait(timeout)


def write_env(path: Path, nodes: list[Node]) -> Path:
    path.write_text(json.dumps(environment_to_dict(local_environment([n.address for n in nodes], VCPUS))))
    return path


def vcpu(node_index: int, k: int = 0) -> str:
    return f"0^{node_index}^0^0^{k}"


def write_mapping(path: Path, job: Mapping[str, Any], nodes: list[Node], where: Mapping[int, tuple[int, int]]) -> Path:
    """A mapping file placing task id → (node index, vCPU index on that node)."""
    tasks = []
    for t in job["task_list"]:
        n, k = where[t["task_id"]]
        tasks.append({**t, "ip": nodes[n].address, "vm_id": f"node{n}", "vcpu_id": vcpu(n, k)})
    path.write_text(json.dumps({**job, "task_list": tasks}))
    return path


def write_job(path: Path, job: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(job))
    return path


def sflow(*args: str, timeout: float = 90.0, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "sflow", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def shell(script: str, cwd: Path) -> None:
    """Run the same commands locally (the reference for byte-for-byte comparisons)."""
    cwd.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sh", "-ec", script], cwd=cwd, check=True)


class RawClient:
    """A blocking client speaking the frame protocol by hand (for hostile or partial peers)."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.decoder = FrameDecoder()

    def send(self, msg_type: str, **fields: Any) -> None:
        self.sock.sendall(encode(msg_type, fields))

    def recv(self) -> Message | None:
        """The next message, or None when the node closed the connection."""
        while True:
            msg = self.decoder.next_message()
            if msg is not None:
                return msg
            data = self.sock.recv(65536)
            if not data:
                return None
            self.decoder.feed(data)

    def authenticate(self, secret: bytes) -> Message:
        nonce = auth.new_nonce()
        self.send("hello", nonce=nonce)
        challenge = self.recv()
        assert challenge is not None and challenge["t"] == "challenge"
        auth.verify(auth.server_proof(secret, nonce, challenge["nonce"]), challenge["proof"], "node")
        self.send("auth", proof=auth.client_proof(secret, nonce, challenge["nonce"]))
        ready = self.recv()
        assert ready is not None and ready["t"] == "ready", ready
        return ready

    def close(self) -> None:
        self.sock.close()
