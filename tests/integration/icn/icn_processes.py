"""Subprocess helpers for the ICN integration tests: start, read lines with deadlines, stop."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PEERS = Path(__file__).resolve().parent / "peers"
REPO = Path(__file__).resolve().parents[3]


class Process:
    """A child process whose stdout is read line by line, each read bounded by a deadline."""

    def __init__(self, args: list[str], name: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        self.name = name
        self.popen = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(REPO), text=True
        )
        self._selector = selectors.DefaultSelector()
        assert self.popen.stdout is not None
        self._selector.register(self.popen.stdout, selectors.EVENT_READ)

    def readline(self, timeout: float) -> str:
        """The next stdout line; fails if none comes before the deadline."""
        deadline = time.monotonic() + timeout
        assert self.popen.stdout is not None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: no output within {timeout} s; stderr:\n{self.stderr_tail()}")
            if self._selector.select(remaining):
                line = self.popen.stdout.readline()
                if not line:
                    raise AssertionError(f"{self.name} exited ({self.popen.poll()}); stderr:\n{self.stderr_tail()}")
                return line.strip()

    def json_lines(self, count: int, timeout: float) -> list[dict[str, Any]]:
        return [json.loads(self.readline(timeout)) for _ in range(count)]

    def stderr_tail(self) -> str:
        if self.popen.poll() is None:
            return "(still running)"
        assert self.popen.stderr is not None
        return self.popen.stderr.read()[-3000:]

    def terminate(self, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout)
            raise AssertionError(f"{self.name} did not stop on SIGTERM within {timeout} s") from None
        finally:
            self._selector.close()
            for stream in (self.popen.stdout, self.popen.stderr):
                if stream is not None:
                    stream.close()

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)


def sflow(*args: str, name: str = "sflow") -> Process:
    return Process([sys.executable, "-m", "sflow", *args], name)


def peer(script: str, *args: str) -> Process:
    return Process([sys.executable, str(PEERS / script), *args], script)


def ready_addresses(process: Process) -> list[str]:
    """The addresses on an ``sflow forwarder``'s ready line (its next stdout line)."""
    line = process.readline(timeout=15)
    assert line.startswith("sflow forwarder ready: "), line
    return line.split()[3:]


def port_of(addresses: list[str], scheme: str) -> int:
    return int(next(a for a in addresses if a.startswith(scheme)).rsplit(":", 1)[1])


@dataclass
class RunningForwarder:
    """An ``sflow forwarder`` process and where it listens."""

    process: Process
    port: int
    unix_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def icn_status(address: str) -> dict[str, Any]:
    """``sflow icn status --json`` of the forwarder at ``address``."""
    run = sflow("icn", "status", "--connect", address, "--json", name="sflow icn status")
    try:
        assert run.wait(20) == 0, run.stderr_tail()
        assert run.popen.stdout is not None
        document: dict[str, Any] = json.loads(run.popen.stdout.read())
        return document
    finally:
        run.terminate()
