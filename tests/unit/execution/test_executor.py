"""The executor's decisions with a fake clock and fake runners: where a function runs, timeouts,
cancellation, shutdown, and how an outcome becomes a result. No processes, no Docker."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from sflow.config import Config
from sflow.node.owner import OWNER_LABEL, current_owner
from sflow.node.execution import FINISH_GRACE, ExecRequest, ExecResult, Executor
from sflow.node.runners import ContainerSpec, Outcome


class FakeReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.triggers: list[tuple[str, str, Callable[..., Any]]] = []

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        f(*args, **kw)

    def addSystemEventTrigger(self, phase: str, event: str, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        self.triggers.append((phase, event, f))

    def spawnProcess(self, *args: Any, **kw: Any) -> Any:
        raise AssertionError("unit tests use fake runners")


@dataclass
class FakeFunction:
    done: Deferred[Outcome] = field(default_factory=Deferred)
    kills: int = 0

    def kill(self) -> None:
        self.kills += 1


@dataclass
class FakeRunners:
    native: list[tuple[str, Path, tuple[int, ...] | None, FakeFunction]] = field(default_factory=list)
    docker: list[tuple[ContainerSpec, FakeFunction]] = field(default_factory=list)
    closed: bool = False

    def start(self, shell: str, workdir: Path, cpus: tuple[int, ...] | None = None) -> FakeFunction:
        f = FakeFunction()
        self.native.append((shell, workdir, cpus, f))
        return f

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeContainers:
    started: list[tuple[ContainerSpec, FakeFunction]] = field(default_factory=list)

    def start(self, spec: ContainerSpec) -> FakeFunction:
        f = FakeFunction()
        self.started.append((spec, f))
        return f


@pytest.fixture
def env(tmp_path: Path) -> tuple[FakeReactor, FakeRunners, FakeContainers, Executor]:
    reactor = FakeReactor()
    native, containers = FakeRunners(), FakeContainers()
    executor = Executor(reactor, Config(), native_runner=native, container_runner=containers)  # type: ignore[arg-type]
    return reactor, native, containers, executor


def req(workdir: Path, cmd: str, **kw: Any) -> ExecRequest:
    fields: dict[str, Any] = dict(job_id=1, run="run-1", task_id=2, cmd=cmd, workdir=workdir, files={}, values={}, outputs=(),
                                  docker_image=None, docker_tar=None, cpus=None, timeout=5.0)
    fields.update(kw)
    return ExecRequest(**fields)


def result_of(d: Deferred[ExecResult]) -> ExecResult:
    box: list[ExecResult] = []

    def keep(r: ExecResult) -> ExecResult:
        box.append(r)
        return r

    d.addCallback(keep)
    assert box, "the result has not fired"
    return box[0]


OK = Outcome(0, None, "out\n", "")

Env = tuple[FakeReactor, FakeRunners, FakeContainers, Executor]


def test_installed_program_runs_natively(env: Env, tmp_path: Path) -> None:
    reactor, native, containers, executor = env
    d = executor.run(req(tmp_path, "sh -c 'echo $V^1'", values={1: "v"}, cpus=(0,), docker_image="img"))
    shell, workdir, cpus, f = native.native[0]
    assert (shell, workdir, cpus) == ("sh -c 'echo 'v''", tmp_path, (0,))
    assert not containers.started and not d.called
    f.done.callback(OK)
    r = result_of(d)
    assert (r.ok, r.where, r.exit_status, r.stdout_tail) == (True, "native", 0, "out\n")


def test_shell_words_run_natively(env: Env, tmp_path: Path) -> None:
    _, native, _, executor = env
    executor.run(req(tmp_path, "cd . && echo x"))
    executor.run(req(tmp_path, "(exit 0)"))
    assert len(native.native) == 2


def test_missing_program_goes_to_docker(env: Env, tmp_path: Path) -> None:
    _, native, containers, executor = env
    job = tmp_path / "job"
    d = executor.run(req(job, "nclconvert-not-installed $F^1 out.png", files={1: "in/a.png"}, docker_image="nclconvert",
                         docker_tar="nclconvert.tar", cpus=(1,)))
    assert not native.native
    spec, f = containers.started[0]
    owner = job.stat()
    assert spec.image == "nclconvert" and spec.tar == "nclconvert.tar"
    assert spec.workdir == job and spec.cpus == (1,) and spec.user == f"{owner.st_uid}:{owner.st_gid}"
    assert spec.command.shell == "nclconvert-not-installed in/a.png out.png" and not spec.command.dummy
    # the owner label names this process: a node started after it died removes the container
    assert dict(spec.labels) == {"sflow.job": "1", "sflow.task": "2", OWNER_LABEL: current_owner().token}
    f.done.callback(OK)
    assert result_of(d).where == "docker:nclconvert"


def test_dummy_always_goes_to_docker(env: Env, tmp_path: Path) -> None:
    _, native, containers, executor = env
    executor.run(req(tmp_path, "DUMMY -i x", docker_image="ffmpeg_2nd"))
    assert not native.native and containers.started[0][0].command.args == ("-i", "x")


@pytest.mark.parametrize(
    ("outcome", "outputs", "reason"),
    [
        (Outcome(None, None, "", "", "image x not found"), (), "image x not found"),
        (Outcome(None, 9, "", ""), (), "killed by signal 9"),
        (Outcome(2, None, "", "err\n"), ("a",), "exit status 2"),
        (Outcome(0, None, "", ""), ("a", "sub/b"), "declared output sub/b was not produced"),
        (Outcome(0, None, "", ""), ("a",), ""),
    ],
)
def test_outcome_to_result(env: Env, tmp_path: Path, outcome: Outcome, outputs: tuple[str, ...], reason: str) -> None:
    _, native, _, executor = env
    (tmp_path / "a").write_text("x")
    d = executor.run(req(tmp_path, "true", outputs=outputs))
    native.native[0][3].done.callback(outcome)
    r = result_of(d)
    assert (r.ok, r.reason, r.exit_status, r.stderr_tail) == (not reason, reason, outcome.exit_status, outcome.stderr_tail)


def test_timeout_kills_and_reports(env: Env, tmp_path: Path) -> None:
    reactor, native, _, executor = env
    d = executor.run(req(tmp_path, "true", timeout=5.0))
    f = native.native[0][3]
    reactor.advance(4.9)
    assert f.kills == 0
    reactor.advance(0.1)
    assert f.kills == 1 and not d.called
    f.done.callback(Outcome(None, 15, "", "bye\n"))
    r = result_of(d)
    assert (r.ok, r.reason, r.stderr_tail) == (False, "timeout after 5s", "bye\n")


def test_a_function_that_will_not_die_is_reported_anyway(env: Env, tmp_path: Path) -> None:
    reactor, native, _, executor = env
    d = executor.run(req(tmp_path, "true", timeout=1.5))
    reactor.advance(1.5)
    assert not d.called
    reactor.advance(FINISH_GRACE)
    assert result_of(d).reason == "timeout after 1.5s"
    native.native[0][3].done.callback(OK)  # a late end changes nothing
    assert result_of(d).reason == "timeout after 1.5s"


def test_no_timeout(env: Env, tmp_path: Path) -> None:
    reactor, native, _, executor = env
    executor.run(req(tmp_path, "true", timeout=0))
    reactor.advance(10**6)
    assert native.native[0][3].kills == 0


def test_cancel_run_stops_only_that_run(env: Env, tmp_path: Path) -> None:
    _, native, _, executor = env
    a = executor.run(req(tmp_path, "true", run="a"))
    b = executor.run(req(tmp_path, "true", run="b"))
    executor.cancel_run("a")
    executor.cancel_run("c")
    fa, fb = native.native[0][3], native.native[1][3]
    assert (fa.kills, fb.kills) == (1, 0)
    fa.done.callback(Outcome(None, 15, "", ""))
    assert result_of(a).reason == "cancelled" and not b.called
    fb.done.callback(OK)
    assert result_of(b).ok


def test_shutdown_waits_for_functions_and_refuses_new_ones(env: Env, tmp_path: Path) -> None:
    reactor, native, _, executor = env
    d = executor.run(req(tmp_path, "true"))
    closed = executor.shutdown()
    assert native.native[0][3].kills == 1 and not closed.called and not native.closed
    native.native[0][3].done.callback(Outcome(None, 15, "", ""))
    assert result_of(d).reason == "the node is shutting down" and closed.called
    assert native.closed  # the native runner's spawner goes once nothing runs
    later = result_of(executor.run(req(tmp_path, "true")))
    assert (later.ok, later.reason) == (False, "the node is shutting down")
    assert executor.shutdown().called
    assert ("before", "shutdown") in [(p, e) for p, e, _ in reactor.triggers]


def test_unexpected_errors_become_failed_results(env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, native, _, executor = env

    def broken(*args: Any, **kw: Any) -> FakeFunction:
        raise RuntimeError("bug")

    native.start = broken  # type: ignore[method-assign]
    r = result_of(executor.run(req(tmp_path, "true")))
    assert (r.ok, r.reason) == (False, "internal error: bug")
    assert "function execution crashed" in caplog.text


def test_the_job_directory_is_made_when_absent_and_a_file_in_its_place_is_an_error(env: Env, tmp_path: Path) -> None:
    _, native, _, executor = env
    made = tmp_path / "jobs" / "a"
    executor.run(req(made, "true"))
    assert made.is_dir() and native.native[0][1] == made
    occupied = tmp_path / "file"
    occupied.write_text("x")
    r = result_of(executor.run(req(occupied, "true")))
    assert not r.ok and r.reason.startswith(f"cannot create the job directory {occupied}: ")
    assert len(native.native) == 1  # nothing started there


def test_the_job_directory_is_looked_at_once_and_handed_to_the_function_user(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One lstat tells whether a directory made ahead is there and whose it is; it is handed to
    the function user on what that lstat said; a declared output's directory takes the owner the
    executor gave the job directory, without looking at it again."""
    from sflow.node.function_user import FunctionUser

    _, native, _, executor = env
    executor.function_user = FunctionUser("fn", 12345, 12346, "/nonexistent")
    looked: list[str] = []
    changed: list[tuple[str, int, int]] = []
    lstat, stat = os.lstat, os.stat
    monkeypatch.setattr(os, "lstat", lambda path, *a, **k: looked.append(str(path)) or lstat(path, *a, **k))
    monkeypatch.setattr(os, "stat", lambda path, *a, **k: looked.append(str(path)) or stat(path, *a, **k))
    monkeypatch.setattr(os, "lchown", lambda path, uid, gid: changed.append((str(path), uid, gid)))
    ahead = tmp_path / "ahead"
    ahead.mkdir()
    executor.run(req(ahead, "true", outputs=("./out/d.txt",)))
    assert looked.count(str(ahead)) == 1 and len(native.native) == 1 and (ahead / "out").is_dir()
    assert (str(ahead), 12345, 12346) in changed  # (the node's lstat said it was not the user's)
