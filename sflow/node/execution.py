"""Running one function on this node (sflow-original.md §4.2 step 4, §4.4; defects of §8.3 fixed).

:class:`Executor` expands the command, fetches missing ``$R^`` inputs from the file server, runs
the function natively when its program is installed and otherwise in Docker, enforces the
timeout, checks that every declared output exists, and reports an :class:`ExecResult`. A failing
function is a result with ``ok=False`` and a reason, never an exception: a non-zero exit status,
a declared output that was not produced, a timeout, an unreachable file server or a missing image
fail the function and leave the node running (the original ignored exit codes, waited forever
for missing outputs and exited the worker on FTP errors).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import stat
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from sflow.config import Config
from sflow.errors import InputError
from sflow.model.paths import UnsafePath, job_relative
from sflow.model.workflow import TaskId
from sflow.node.command import DUMMY, SHELL_WORDS, Expanded, expand
from sflow.node.fetch import FetchError, fetch_input
from sflow.node.function_user import FunctionUser, hand_over, resolve_function_user
from sflow.node.owner import OWNER_LABEL, current_owner
from sflow.ssh import SshOptions
from sflow.node.runners import (
    TAIL_BYTES,
    ContainerSpec,
    ContainerStarter,
    DelayedCall,
    NativeStarter,
    Outcome,
    Reactor,
    RunningFunction,
)
from sflow.node.runners.docker import ContainerPolicy, DockerRunner
from sflow.node.runners.native import KILL_GRACE, NativeRunner

log = logging.getLogger(__name__)

# After a stop (timeout, cancel, shutdown), how long to wait for the function to be gone before
# reporting the result anyway.
FINISH_GRACE = 2 * KILL_GRACE + 1.0


@dataclass(frozen=True, slots=True)
class ExecRequest:
    """One function to run. ``job_id`` is the job's id (it names ``$R^`` files on the file server);
    ``run`` names the run the function belongs to, which is what :meth:`Executor.cancel_run` stops
    (one job id may run more than once at a time). ``workdir`` is the job's working directory on
    this node; ``files`` and ``values`` map a predecessor id to the job-relative path of the file it
    sent and to the value it sent; ``outputs`` are the declared ``out_file`` paths (job-relative)."""

    job_id: int
    run: str
    task_id: int
    cmd: str  # the task's template; see sflow.node.command
    workdir: Path
    files: Mapping[int, str]
    values: Mapping[int, str]
    outputs: tuple[str, ...]
    docker_image: str | None
    docker_tar: str | None
    cpus: tuple[int, ...] | None  # host CPU ids to pin to (None: no pinning)
    timeout: float  # seconds from run() to kill, fetching included (0 or less: no limit)


@dataclass(frozen=True, slots=True)
class ExecResult:
    """How a function ended. ``reason`` is "" when ``ok``; ``where`` is ``"native"``,
    ``"docker:<image>"``, or "" when the function failed before a runner was chosen; ``started``
    and ``finished`` are wall-clock times (``time.time()``) for traces."""

    ok: bool
    exit_status: int | None
    reason: str
    stderr_tail: str
    stdout_tail: str
    where: str
    started: float
    finished: float
    #: CPU seconds and peak resident memory (KiB) of the function, when its runner measured them
    cpu_s: float | None = None
    max_rss_kb: int | None = None


#: functions whose resource usage a node keeps for its status (the most recent)
USAGE_KEPT = 2048


@dataclass(eq=False, slots=True)
class _Run:
    request: ExecRequest
    started: float
    result: Deferred[ExecResult] = field(default_factory=Deferred)
    where: str = ""
    function: RunningFunction | None = None
    stop_reason: str | None = None
    timers: list[DelayedCall] = field(default_factory=list)
    done: bool = False


def job_file(workdir: Path, path: str) -> Path:
    """``workdir/path`` for a job-relative ``path``; raises :class:`UnsafePath` when the path is
    absolute, climbs out with ``..``, or leads out of ``workdir`` through a symlink.

    Only a symlink beneath ``workdir`` can lead out of it (the path has no ``..``), so only the
    path's own components are looked at (``lstat``, up to the first that is not there); the whole
    path is resolved only when one of them is a symlink. (Resolving every time took two
    ``lstat`` per component of the whole path, directories above ``workdir`` included, several
    times per function.)"""
    relative = job_relative(path)
    target = workdir / relative
    probe = workdir
    for part in relative.split("/"):
        probe = probe / part
        try:
            mode = os.lstat(probe).st_mode
        except OSError:
            break  # not there (or not a directory): nothing beneath it can be a symlink
        if stat.S_ISLNK(mode):
            if not target.resolve().is_relative_to(workdir.resolve()):
                raise UnsafePath(f"path {path!r} leads outside the job directory through a symlink")
            break
    return target


class Executor:
    """Runs functions for the node daemon. ``run`` never errbacks for a function's failure."""

    def __init__(
        self,
        reactor: Reactor,
        config: Config,
        *,
        ssh: SshOptions | None = None,
        docker_client_factory: Callable[[], docker.DockerClient] = docker.from_env,
        tail_bytes: int = TAIL_BYTES,
        max_threads: int = 32,
        native_runner: NativeStarter | None = None,
        container_runner: ContainerStarter | None = None,
    ) -> None:
        """``ssh`` says how SFTP checks host keys (default: ``security.known_hosts`` and
        ``security.accept_new_host_keys`` of ``config``); ``docker_client_factory`` makes the Docker
        client (default: from the environment, ``DOCKER_HOST`` or the local socket);
        ``native_runner`` and ``container_runner`` replace the real runners (tests).

        When this process is root, functions run as ``node.run_as``
        (:func:`~sflow.node.function_user.resolve_function_user`; :class:`~sflow.errors.ConfigError`
        when that user cannot be used), and the job directories they run in are handed to it."""
        self._reactor = reactor
        self._config = config
        #: who functions run as, when not as this process's user (this process is root)
        self.function_user: FunctionUser | None = resolve_function_user(config.node.run_as)
        policy = ContainerPolicy.from_settings(config.node)
        self._ssh = ssh or SshOptions(config.security.known_hosts, config.security.accept_new_host_keys)
        # Blocking work (file server, image loads, waiting for containers) runs here; its own pool
        # so that long container waits never starve the reactor's pool.
        self._pool = ThreadPool(minthreads=0, maxthreads=max_threads, name="sflow-exec")
        self._pool.start()
        self._native: NativeStarter = native_runner or NativeRunner(
            reactor, tail_bytes=tail_bytes, user=self.function_user)
        if container_runner is None:
            runner = DockerRunner(
                reactor, self._pool, config.image_repository, self._ssh, client_factory=docker_client_factory,
                tail_bytes=tail_bytes, policy=policy,
            )
            # Once the reactor runs: a node that fails to start (a taken port) has started no thread
            # that would keep its process from exiting.
            reactor.callWhenRunning(runner.warm)
            container_runner = runner
        self._docker: ContainerStarter = container_runner
        self._runs: dict[str, set[_Run]] = {}
        self._usage: deque[dict[str, Any]] = deque(maxlen=USAGE_KEPT)
        self._idle: list[Deferred[None]] = []
        self._closing = False
        reactor.addSystemEventTrigger("before", "shutdown", self.shutdown)

    # Public API --------------------------------------------------------------------------------

    def run(self, request: ExecRequest) -> Deferred[ExecResult]:
        """Run one function; the Deferred fires with its :class:`ExecResult`."""
        run = _Run(request, time.time())
        if self._closing:
            return succeed(self._result(run, "the node is shutting down"))
        self._runs.setdefault(request.run, set()).add(run)
        if 0 < request.timeout < math.inf:
            run.timers.append(
                self._reactor.callLater(request.timeout, self._stop, run, f"timeout after {request.timeout:g}s")
            )
        log.debug("function accepted job=%s task=%s", request.job_id, request.task_id)
        outcome: Deferred[ExecResult] = Deferred.fromCoroutine(self._execute(run))
        outcome.addCallbacks(lambda r: self._finish(run, r), lambda f: self._finish(run, self._crashed(run, f)))
        return run.result

    def prepare_directory(self, directory: Path) -> None:
        """A directory just made for a function, made the function user's when functions run
        as one (blocking: for a caller that makes directories ahead, off the reactor)."""
        if self.function_user is not None:
            hand_over(directory, self.function_user)

    def recent_usage(self) -> list[dict[str, Any]]:
        """The most recent functions' run, task, runner, wall-clock start and end, CPU seconds and
        peak resident memory (KiB; None where the runner does not measure them): for the node's
        status."""
        return list(self._usage)

    def cancel_run(self, run_key: str) -> None:
        """Stop every function of run ``run_key`` still running here; each reports "cancelled"."""
        runs = list(self._runs.get(run_key, ()))
        if runs:
            log.info("cancelling run=%s functions=%s", run_key, len(runs))
        for run in runs:
            self._stop(run, "cancelled")

    def shutdown(self) -> Deferred[None]:
        """Stop everything running, wait until every function has reported, and release the
        thread pool (the node is going down). Safe to call more than once."""
        if not self._closing:
            self._closing = True
            runs = [run for job in self._runs.values() for run in job]
            log.info("executor shutting down running=%s", len(runs))
            for run in runs:
                self._stop(run, "the node is shutting down")
        idle: Deferred[None] = Deferred()
        if self._runs:
            self._idle.append(idle)
        else:
            idle.callback(None)
        idle.addCallback(self._stop_pool)
        return idle

    def _stop_pool(self, _: object) -> None:
        self._native.close()  # its spawner, when functions run as another user
        if not self._pool.joined:
            self._pool.stop()

    # The steps of one function ---------------------------------------------------------------

    async def _execute(self, run: _Run) -> ExecResult:
        req = run.request
        try:
            command = expand(
                req.cmd,
                files={TaskId(k): v for k, v in req.files.items()},
                values={TaskId(k): v for k, v in req.values.items()},
                source=f"job {req.job_id} task {req.task_id} cmd",
            )
        except InputError as exc:
            return self._result(run, str(exc))
        workdir = Path(os.path.abspath(req.workdir))
        try:
            # Made already, as a rule (ICN functions get one made ahead): mkdir would lock the
            # parent directory, where other functions' directories are being made and removed.
            # (One lstat tells both whether it is there and whose it is.)
            try:
                made: os.stat_result | None = os.lstat(workdir)
            except FileNotFoundError:
                made = None
            if made is None or not stat.S_ISDIR(made.st_mode):
                workdir.mkdir(parents=True, exist_ok=True)
                made = None
            if self.function_user is not None:
                hand_over(workdir, self.function_user, made)
        except OSError as exc:
            return self._result(run, f"cannot create the job directory {workdir}: {exc.strerror or exc}")
        problem = _cpu_problem(req.cpus)
        if problem:
            return self._result(run, problem)
        user = self.function_user
        try:
            _make_output_dirs(workdir, req.outputs, (user.uid, user.gid) if user is not None else None)
        except UnsafePath as exc:
            return self._result(run, f"declared output: {exc}")
        except OSError as exc:
            return self._result(run, f"cannot create the directory of a declared output: {exc}")

        for path in command.remote_inputs:
            try:
                dest = job_file(workdir, path)
            except UnsafePath as exc:
                return self._result(run, f"$R^{path}: {exc}")
            if dest.exists():
                continue
            try:
                await deferToThreadPool(
                    self._reactor,  # type: ignore[arg-type]
                    self._pool,
                    fetch_input,
                    self._config.file_server,
                    req.job_id,
                    path,
                    dest,
                    self._ssh,
                )
            except FetchError as exc:
                return self._result(run, f"cannot fetch $R^{path} from the file server: {exc}")
            if run.stop_reason is not None:
                return self._result(run, run.stop_reason)

        if run.stop_reason is not None:
            return self._result(run, run.stop_reason)
        function = self._start(run, command, workdir)
        if isinstance(function, str):
            return self._result(run, function)
        run.function = function
        log.debug("function started job=%s task=%s where=%s shell=%r", req.job_id, req.task_id, run.where, command.shell)
        outcome = await function.done
        return self._result(run, self._failure(run, outcome, workdir), outcome)

    def _start(self, run: _Run, command: Expanded, workdir: Path) -> RunningFunction | str:
        """Start the function natively or in Docker; a string is the reason it cannot start."""
        req = run.request
        if not command.dummy and _installed(command.program, workdir, self.function_user):
            run.where = "native"
            try:
                return self._native.start(command.shell, workdir, req.cpus)
            except OSError as exc:
                return f"cannot start /bin/sh: {exc.strerror or exc}"
        if not req.docker_image:
            if command.dummy:
                return f"{DUMMY} runs a Docker image's entrypoint, but the task names no docker image"
            return f"program {command.program!r} is not installed on this node and the task names no docker image"
        run.where = f"docker:{req.docker_image}"
        owner = workdir.stat()  # the function user's, when this node is root
        return self._docker.start(
            ContainerSpec(
                image=req.docker_image,
                tar=req.docker_tar,
                command=command,
                workdir=workdir,
                user=f"{owner.st_uid}:{owner.st_gid}",
                cpus=req.cpus,
                labels={"sflow.job": str(req.job_id), "sflow.task": str(req.task_id), OWNER_LABEL: current_owner().token},
            )
        )

    def _failure(self, run: _Run, outcome: Outcome, workdir: Path) -> str:
        """The reason the function failed, or "" when it succeeded."""
        if run.stop_reason is not None:
            return run.stop_reason
        if outcome.error:
            return outcome.error
        if outcome.exit_status is None:
            return f"killed by signal {outcome.signal}" if outcome.signal is not None else "ended abnormally"
        if outcome.exit_status != 0:
            return f"exit status {outcome.exit_status}"
        for path in run.request.outputs:
            try:
                if not job_file(workdir, path).is_file():
                    return f"declared output {path} was not produced"
            except UnsafePath as exc:
                return f"declared output {path}: {exc}"
        return ""

    # Bookkeeping -------------------------------------------------------------------------------

    def _result(self, run: _Run, reason: str, outcome: Outcome | None = None) -> ExecResult:
        return ExecResult(
            ok=not reason,
            exit_status=outcome.exit_status if outcome is not None else None,
            reason=reason,
            stderr_tail=outcome.stderr_tail if outcome is not None else "",
            stdout_tail=outcome.stdout_tail if outcome is not None else "",
            where=run.where,
            started=run.started,
            finished=time.time(),
            cpu_s=outcome.cpu_s if outcome is not None else None,
            max_rss_kb=outcome.max_rss_kb if outcome is not None else None,
        )

    def _stop(self, run: _Run, reason: str) -> None:
        if run.done or run.stop_reason is not None:
            return
        run.stop_reason = reason
        log.info("stopping function job=%s task=%s reason=%s", run.request.job_id, run.request.task_id, reason)
        if run.function is None:
            # Nothing is running yet (inputs or an image are being fetched): report now; the
            # pending step sees stop_reason and starts nothing.
            self._finish(run, self._result(run, reason))
            return
        run.function.kill()
        run.timers.append(self._reactor.callLater(FINISH_GRACE, lambda: self._finish(run, self._result(run, reason))))

    def _finish(self, run: _Run, result: ExecResult) -> None:
        if run.done:
            return
        run.done = True
        for timer in run.timers:
            if timer.active():
                timer.cancel()
        req = run.request
        group = self._runs.get(req.run)
        if group is not None:
            group.discard(run)
            if not group:
                del self._runs[req.run]
        log.debug(
            "function finished job=%s task=%s ok=%s where=%s exit_status=%s reason=%r seconds=%.3f",
            req.job_id,
            req.task_id,
            result.ok,
            result.where or "-",
            result.exit_status,
            result.reason,
            result.finished - result.started,
        )
        self._usage.append({"run": req.run, "task": req.task_id, "where": result.where, "started": result.started,
                            "finished": result.finished, "cpu_s": result.cpu_s, "max_rss_kb": result.max_rss_kb})
        run.result.callback(result)
        if not self._runs:
            waiters, self._idle = self._idle, []
            for waiter in waiters:
                waiter.callback(None)

    def _crashed(self, run: _Run, failure: Failure) -> ExecResult:
        log.error(
            "function execution crashed job=%s task=%s",
            run.request.job_id,
            run.request.task_id,
            exc_info=(failure.type, failure.value, failure.getTracebackObject()),
        )
        return self._result(run, f"internal error: {failure.getErrorMessage()}")


def _make_output_dirs(workdir: Path, outputs: tuple[str, ...], owner: tuple[int, int] | None = None) -> None:
    """Create the directories declared outputs go to (``./out/a.txt`` needs ``out/``), owned like
    the job directory so that a function running as its owner can write there (the node may have
    made some of them already, as root). An output that is there already — received as root from
    the node that ran the function before it was lost and re-planned here — is handed over too, so
    that the function can write it again. ``owner``: the job directory's uid and gid, when the
    caller knows them."""
    if not outputs:
        return
    if owner is None:
        st = workdir.stat()
        owner = (st.st_uid, st.st_gid)
    uid, gid = owner
    chown = os.getuid() == 0 and owner != (0, 0)
    for path in outputs:
        target = job_file(workdir, path)
        parent = target.parent
        if parent != workdir:  # (there already; its mkdir would lock the directory above it)
            parent.mkdir(parents=True, exist_ok=True)
        if not chown:
            continue
        try:
            st = target.lstat()
        except FileNotFoundError:
            pass
        else:
            if (st.st_uid, st.st_gid) != owner:
                os.lchown(target, uid, gid)
        for made in (parent, *parent.parents):
            if made == workdir or not made.is_relative_to(workdir):
                break
            st = made.lstat()
            if (st.st_uid, st.st_gid) != owner:
                os.lchown(made, uid, gid)


def _installed(program: str, workdir: Path, user: FunctionUser | None = None) -> bool:
    """Whether ``program`` (the template's first word) can run natively: a shell builtin or
    reserved word, an executable on PATH, or an executable path (relative to the job directory) —
    for ``user`` when functions run as that user (the PATH it gets and the files it may run)."""
    if program in SHELL_WORDS:
        return True
    if "/" in program:
        path = workdir / program
        return path.is_file() and os.access(path, os.X_OK) and (user is None or user.can(path, stat.S_IXOTH, start=workdir))
    if user is None:
        return shutil.which(program) is not None
    return shutil.which(program, path=user.search_path(os.environ.get("PATH", os.defpath))) is not None


def _cpu_problem(cpus: tuple[int, ...] | None) -> str:
    if cpus is None:
        return ""
    if not cpus:
        return "pinning asked for an empty set of CPUs"
    allowed = os.sched_getaffinity(0)
    missing = sorted(set(cpus) - allowed)
    if missing:
        return (
            f"CPU {', '.join(map(str, missing))} is not available on this node "
            f"(available: {', '.join(map(str, sorted(allowed)))})"
        )
    return ""

