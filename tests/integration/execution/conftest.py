"""Fixtures for the execution layer's integration tests: a real reactor, spun per call.

``wait(d)`` runs Twisted's global reactor until ``d`` fires and then ``crash()``es it, the way
``twisted.trial`` does, so every test can use the real reactor (real processes, real threads)
without a reactor thread and without restarting limits. The executor is shut down after each test.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import pytest
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from sflow.config import Config
from sflow.node.execution import ExecRequest, ExecResult, Executor

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[3]
BUSYBOX = "sflow-busybox"
FFMPEG = "sflow-ffmpeg"
reactor: Any = _reactor


def wait(d: Deferred[T], timeout: float = 30.0) -> T:
    """Spin the reactor until ``d`` fires (or ``timeout`` passes) and return its result."""
    box: list[Any] = []

    def done(result: Any) -> None:
        box.append(result)
        if reactor.running:
            reactor.crash()

    d.addBoth(done)
    if not box:
        call = reactor.callLater(timeout, reactor.crash)
        reactor.run()
        if call.active():
            call.cancel()
    if not box:
        raise TimeoutError(f"Deferred did not fire within {timeout}s")
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]  # type: ignore[no-any-return]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Spin the reactor until ``predicate()`` holds, checking every 20 ms, with a deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout}s")
        d: Deferred[None] = Deferred()
        reactor.callLater(0.02, d.callback, None)
        wait(d)


def request(workdir: Path, cmd: str, **fields: Any) -> ExecRequest:
    base: dict[str, Any] = dict(
        job_id=1,
        run="run-1",
        task_id=1,
        cmd=cmd,
        workdir=workdir,
        files={},
        values={},
        outputs=(),
        docker_image=None,
        docker_tar=None,
        cpus=None,
        timeout=30.0,
    )
    base.update(fields)
    return ExecRequest(**base)


@pytest.fixture
def make_executor() -> Iterator[Callable[..., Executor]]:
    made: list[Executor] = []

    def make(config: Config | None = None, **kwargs: Any) -> Executor:
        executor = Executor(reactor, config or Config(), **kwargs)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        wait(executor.shutdown(), timeout=30)


def run(executor: Executor, req: ExecRequest, timeout: float = 40.0) -> ExecResult:
    return wait(executor.run(req), timeout)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    """The Docker engine, with the sample images built (skips only when no engine answers)."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine is reachable: {exc}")
    build = REPO / "dockerfiles" / "build.sh"
    result = subprocess.run(["bash", str(build), BUSYBOX, FFMPEG], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"dockerfiles/build.sh failed:\n{result.stderr}")
    return client
