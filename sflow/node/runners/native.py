"""Native execution: ``/bin/sh -c <command>`` in the job directory, in its own session (a root
node's: its own process group, started by the function spawner).

The node starts the shell with ``posix_spawn`` (glibc spawns with ``clone(CLONE_VM|CLONE_VFORK)``,
so a node of any size starts a function as fast as a small program does), with no interpreter in
between:

* ``POSIX_SPAWN_SETSID``: the shell leads a new session and process group whose id is its pid, so
  a kill reaches every process of a pipeline or a background job;
* every signal back to its default disposition and an empty signal mask (the node ignores
  ``SIGPIPE``; ``yes | head`` must end), stdin from ``/dev/null``, stdout and stderr to pipes that
  the reactor reads while the function runs, keeping only a bounded tail: a function printing
  gigabytes neither blocks on a full pipe nor fills the node's memory. The node's own descriptors
  are close-on-exec and never reach the function;
* pinning: the reactor thread pins itself to the function's CPUs for the moment of the spawn
  (:func:`sflow.node.runners.spawner.pinned`) and puts its own mask back at once: the shell is
  born pinned (a child inherits its parent thread's mask), never runs unpinned, and affinity is
  inherited by everything it starts;
* cwd: Python's ``posix_spawn`` has no ``chdir`` action, and ``chdir`` in the node would move every
  thread; so the script's first command is ``cd -- <job directory>`` (the directory is quoted;
  status 126 if it is gone). It is on the function's first line, so the shell's line numbers in
  error messages are the command's own;
* user: a node running as root never runs a function as root (:mod:`sflow.node.function_user`).
  ``posix_spawn`` cannot change user, so such a node does not spawn its functions itself: a
  resident *spawner* (:mod:`sflow.node.runners.spawner`), started once through util-linux's
  ``nsenter -S UID -G GID`` as the function user (primary group only, ``no_new_privs``, not
  dumpable), starts each function's shell with ``posix_spawn`` on request
  (:mod:`sflow.node.runners.spawner_link` is the node's end). The node creates the output pipes
  and opens the job directory (``O_PATH``, as root, so it works when the node's directories above
  it are closed to the function user) and passes them over a Unix socket (``SCM_RIGHTS``); the
  spawner enters it (``fchdir``), holds and pins the shell as below, gives it its own process
  group in the spawner's session, reaps it and reports its exact wait status and ``rusage``. The node reads the pipes as below and kills
  through the spawner; if the spawner dies, the node kills what it had started and fails those
  functions with an error that says so, and the next function starts a new spawner;
* exit: a pidfd (``pidfd_open``, Linux ≥ 5.3) in the reactor becomes readable when the shell exits;
  the node reaps exactly that pid, without a SIGCHLD round trip through the reactor.

Measured alternatives (``benchmarks/spawn.py`` prints them side by side with a bare
``subprocess.run(["/bin/sh", "-c", "true"])``): the former Python launcher (``python -I -S``, then
``setsid``, ``sched_setaffinity`` and ``exec``) cost 12–25× a bare shell; an exec chain through
``taskset`` costs about 1.8–2.1× (one more dynamically linked program per function). Pinning:
the former way held the shell on a pipe (its script began by reading a line from fd 3) while the
node set its mask from outside, then released it: one more wake-up of the shell, on a CPU that
may be idle. On a quiet machine (load 0.4–0.5, ``--rounds 300``) that made a pinned function
2.5× a bare pinned shell (2.7× through the spawner); born pinned, it is 1.24–1.36× (1.45–1.53×
through the spawner, 1.26–1.31× a bare unpinned shell). The spawning thread's migration onto the
function's CPU for the moment of the spawn measured cheaper than the extra wake-up.

Changing user (``--alternatives`` again, as root): ``nsenter -S -G -w`` before every shell (the
former way) is one more small dynamically linked program per function, with its locale set-up
(about 1.2 ms); ``setpriv --reuid --regid`` costs more (it looks the user up through NSS even for a
numeric uid, and cannot change directory); ``subprocess`` with ``user=`` must ``fork`` the whole
node (CPython does not ``vfork`` when the child changes user). A resident spawner that already runs
as the user takes the change of user off the path: what it adds is one request and one report
over a ``SOCK_SEQPACKET`` socket (the round trip alone is about 0.08 ms) and its own wake-ups.
Measured as root (``benchmarks/spawn.py --rounds 300 --alternatives``, 300 interleaved rounds
per run, seven runs while other work loaded the 2 CPUs to a load of 5–9, so noisy; medians): a bare
shell 1.0–2.3 ms; through the spawner 1.26–1.75× that (five runs of seven within 1.5×); pinned,
1.46–2.19× a bare pinned shell (one run of seven within 1.5×); the per-function ``nsenter`` chain
2.9–4.8×, the ``setpriv`` chain 3.9–6.8×, ``subprocess`` with ``user=`` 6–7.9×; the socket round
trip alone 0.08–0.11 ms. A pinned function must wait for its CPU once when that CPU is busy: the
floor's parent is on it already (it was moved there outside the timing), the spawner is not. In calmer
moments (load about 4) the spawner's path was 1.35–1.41× a bare shell against 1.17–1.34× for
the node's own ``posix_spawn`` (a non-root node): about 0.15 ms more than spawning itself (two
more wake-ups and a little Python in the spawner), and no longer a program per function.

A new session per function costs more than it seems on a busy machine: with the kernel's
autogroup scheduling (``kernel.sched_autogroup_enabled``, Debian's default) every session is a
scheduling group of its own, and starting a shell with ``setsid`` measured up to several
milliseconds more than with ``setpgid`` under load, the same shell, in the same run. The
spawner therefore leads one session and gives each function a process group in it; the non-root
node's own spawn above still uses ``setsid`` (its functions must not share the node's session),
and shows that cost under load (``sflow`` 2.3–4.1× against 1.26–1.75× through the spawner in the
same runs).
"""

from __future__ import annotations

import fcntl
import logging
import os
import resource
import shlex
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from sflow.node.function_user import FunctionUser
from sflow.node.runners import TAIL_BYTES, DelayedCall, Outcome, Reactor, Tail
from sflow.node.runners.spawner import pinned
from sflow.node.runners.spawner_link import SpawnerLink

log = logging.getLogger(__name__)

# Seconds between SIGTERM and SIGKILL, and before pipes still held open by escaped grandchildren
# are closed after the shell itself has exited.
KILL_GRACE = 2.0

SHELL = "/bin/sh"

# Exit status of the shell when it could not enter the job directory or was never released.
CANNOT_START = 126

#: every signal a process can have a disposition for: all go back to SIG_DFL in the function
_DEFAULT_SIGNALS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}

_READ_SIZE = 65536


def spawn_script(shell: str, workdir: Path) -> str:
    """The ``/bin/sh -c`` script that runs ``shell`` in ``workdir``, on one line ahead of the
    command (so that the shell's line numbers in its errors are the command's own)."""
    return f"cd -- {shlex.quote(str(workdir))} || exit {CANNOT_START}; " + shell


def function_environment() -> dict[str, str]:
    """The node's environment without sflow's own settings: ``SFLOW_*`` variables may carry
    passwords (``SFLOW_FILE_SERVER_PASSWORD``), and functions are the job author's code."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SFLOW_")}


class _Watched(ABC):
    """A descriptor of the function's that the reactor watches for reading (an
    ``IReadDescriptor``): an output pipe or the shell's pidfd. Closed once, by whoever is first."""

    __slots__ = ("_fd", "_function")

    def __init__(self, fd: int, function: _Function) -> None:
        self._fd = fd
        self._function = function

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:
        return "sflow-function"

    @abstractmethod
    def doRead(self) -> None:
        """The descriptor is readable (each kind reads its own)."""

    def connectionLost(self, reason: Failure) -> None:
        self.close()

    def close(self) -> None:
        if self._fd < 0:
            return
        self._function.reactor.removeReader(self)
        os.close(self._fd)
        self._fd = -1
        self._closed()

    def _closed(self) -> None:
        """What closing means to the function (nothing by default)."""


class _Pipe(_Watched):
    """One of the function's output pipes, read into a bounded tail."""

    __slots__ = ("_tail",)

    def __init__(self, fd: int, tail: Tail, function: _Function) -> None:
        super().__init__(fd, function)
        self._tail = tail

    def doRead(self) -> None:
        self._read()

    def _read(self) -> bool:
        """Read what is there; False when nothing more is there for now (or ever: closed)."""
        try:
            data = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return False
        except OSError as exc:
            log.debug("function pipe read failed fd=%s error=%s", self._fd, exc)
            data = b""
        if data:
            self._tail.feed(data)
            return True
        self.close()
        return False

    def drain(self) -> None:
        """Read until the pipe is empty or closed (the shell has exited: usually both at once)."""
        while self._fd >= 0 and self._read():
            pass

    def _closed(self) -> None:
        self._function.pipe_closed(self)


class _Exit(_Watched):
    """The shell's pidfd: readable once the shell has exited; then the shell is reaped."""

    __slots__ = ()

    def doRead(self) -> None:
        self.reap()

    def reap(self) -> None:
        """Reap the shell if it has exited (and tell the function); else nothing."""
        if self._fd < 0:
            return
        usage: resource.struct_rusage | None
        try:
            # wait4: the exit status and the shell's resource usage (with its waited-for children)
            pid, status, usage = os.wait4(self._function.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status, usage = self._function.pid, -1, None  # reaped elsewhere: the status is lost
        if pid == 0:
            return  # not yet (or a spurious wake-up)
        self.close()
        self._function.exited(status, usage)


class _Function:
    """One running function (a ``RunningFunction``): its shell's pid is its process group's id."""

    def __init__(self, reactor: Reactor, pid: int, tail_bytes: int) -> None:
        self.reactor = reactor
        self.pid = pid  # 0 when a spawner started it (the node does not know it)
        #: how a signal reaches the function's process group (``killpg`` from here, or a request
        #: to the spawner that started it)
        self.send_signal: Callable[[int], None] = self._killpg
        self.done: Deferred[Outcome] = Deferred()
        self.stdout = Tail(tail_bytes)
        self.stderr = Tail(tail_bytes)
        self.pipes: list[_Pipe] = []
        self.exit: _Exit | None = None
        self.status: int | None = None  # the wait status once the shell has exited
        self.usage: resource.struct_rusage | None = None
        self.ended = False
        self.killed = False
        self._error = ""
        self._timers: list[DelayedCall] = []

    def watch(self, out_fd: int, err_fd: int, pidfd: int | None) -> None:
        """Read the output pipes; watch the shell's exit through ``pidfd`` (None: whoever started
        it reports its exit through :meth:`exited`)."""
        self.pipes = [_Pipe(out_fd, self.stdout, self), _Pipe(err_fd, self.stderr, self)]
        for pipe in self.pipes:
            self.reactor.addReader(pipe)
        if pidfd is not None:
            self.exit = _Exit(pidfd, self)
            self.reactor.addReader(self.exit)

    # Events ------------------------------------------------------------------------------------

    # The shell's exit closes its pipes and makes its pidfd readable at almost the same moment;
    # whichever the reactor sees first, the other is looked at at once, so that a function costs
    # the node one wake-up, not three.

    def exited(self, status: int, usage: resource.struct_rusage | None = None, *, group_killed: bool = False) -> None:
        """The shell has exited and been reaped (``group_killed``: and what was left of its group
        has been killed already, by the spawner that reaped it)."""
        if self.ended or self.status is not None:
            return
        self.status = status
        self.usage = usage
        # Whatever the shell left behind in its group goes with it; processes that escaped the
        # group but still hold the pipes are cut off after a grace period.
        if not group_killed:
            self._signal_group(signal.SIGKILL)
        for pipe in list(self.pipes):
            pipe.drain()
        if self.pipes:
            self._later(KILL_GRACE, self.close_pipes)
        else:
            self._end()

    def pipe_closed(self, pipe: _Pipe) -> None:
        self.pipes.remove(pipe)
        if self.pipes:
            return
        if self.status is not None:
            self._end()
        elif self.exit is not None:
            self.exit.reap()

    def failed(self, error: str) -> None:
        """The function could not be started, or is lost (its spawner died): end with ``error``
        and what it had written so far."""
        if self.ended:
            return
        for pipe in list(self.pipes):
            pipe.drain()
        self._error = error
        self.close_pipes()
        self._end()

    def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        status = self.status if self.status is not None else -1
        exit_status: int | None = None
        sig: int | None = None
        if os.WIFEXITED(status):
            exit_status = os.WEXITSTATUS(status)
        elif os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
        usage = self.usage
        self.done.callback(Outcome(
            exit_status, sig, self.stdout.text(), self.stderr.text(),
            cpu_s=usage.ru_utime + usage.ru_stime if usage is not None else None,
            max_rss_kb=usage.ru_maxrss if usage is not None else None, error=self._error,
        ))

    # Control -----------------------------------------------------------------------------------

    def kill(self) -> None:
        if self.ended or self.killed:
            return
        self.killed = True
        self._signal_group(signal.SIGTERM)
        self._later(KILL_GRACE, self._signal_group, signal.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        if not self.ended:
            self.send_signal(sig)

    def _killpg(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass  # the whole group is gone already
        except PermissionError as exc:
            log.warning("cannot signal process group pgid=%s signal=%s error=%s", self.pid, sig, exc)

    def close_pipes(self) -> None:
        if self.pipes:
            log.debug("closing pipes held by escaped processes pgid=%s", self.pid)
        for pipe in list(self.pipes):
            pipe.close()

    def _later(self, delay: float, fn: Callable[..., object], *args: object) -> None:
        self._timers.append(self.reactor.callLater(delay, fn, *args))


class NativeRunner:
    """Starts functions as local processes: as ``user`` when given (the node is root), else as
    the node's own user."""

    def __init__(self, reactor: Reactor, *, tail_bytes: int = TAIL_BYTES, user: FunctionUser | None = None) -> None:
        self._reactor = reactor
        self._tail_bytes = tail_bytes
        # The node's environment is fixed once it runs: filtered once, not for every function.
        environment = function_environment()
        _no_inherited_descriptors()
        #: the resident spawner that starts functions as ``user`` (None: the node starts them)
        self.spawner: SpawnerLink | None = None
        if user is not None:
            self.spawner = SpawnerLink(reactor, user, user.environment(environment))
        self._environment = environment

    def start(self, shell: str, workdir: Path, cpus: tuple[int, ...] | None = None) -> _Function:
        """Spawn ``/bin/sh -c shell`` with ``workdir`` (absolute) as cwd, pinned to ``cpus`` when
        given, in :func:`function_environment` (as it was when the runner was made). Raises
        ``OSError`` when the process cannot be spawned or pinned (nothing is left running then);
        through the spawner, a failure to spawn ends the function with an error instead."""
        if self.spawner is not None:
            return self._start_through(self.spawner, shell, workdir, cpus)
        opened: list[int] = []
        try:
            out_r, out_w = _pipe(opened)
            err_r, err_w = _pipe(opened)
            actions: list[tuple[object, ...]] = [
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ]
            with pinned(cpus):
                pid = os.posix_spawn(
                    SHELL,
                    [SHELL, "-c", spawn_script(shell, workdir)],
                    self._environment,
                    file_actions=actions,
                    setsid=True,
                    setsigdef=_DEFAULT_SIGNALS,
                    setsigmask=(),
                )
        except OSError:
            _close_all(opened)
            raise
        for fd in (out_w, err_w):
            os.close(fd)
            opened.remove(fd)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            _close_all(opened)
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        function = _Function(self._reactor, pid, self._tail_bytes)
        function.watch(out_r, err_r, pidfd)
        log.debug("spawned pid=%s cwd=%s cpus=%s", pid, workdir, cpus or "-")
        return function

    def _start_through(self, spawner: SpawnerLink, shell: str, workdir: Path,
                       cpus: tuple[int, ...] | None) -> _Function:
        """Have the spawner start the function (it is already the function user): it enters
        ``workdir`` through a descriptor opened here, pins itself around the spawn, reaps the
        shell and reports its end."""
        opened: list[int] = []
        out_r, out_w = _pipe(opened)
        err_r, err_w = _pipe(opened)
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        function = _Function(self._reactor, 0, self._tail_bytes)
        function.watch(out_r, err_r, None)
        try:
            function.send_signal = spawner.start(function, shell, workdir, cpus, out_w, err_w)  # closes out_w, err_w
        except OSError:
            function.close_pipes()
            raise
        log.debug("spawn requested cwd=%s cpus=%s", workdir, cpus or "-")
        return function

    def close(self) -> None:
        """Stop the spawner, if there is one (what it still runs is killed)."""
        if self.spawner is not None:
            self.spawner.close()


class _Starting(Protocol):
    def callWhenRunning(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> Any: ...


def reap_through_pidfds_only(reactor: _Starting) -> None:
    """For a process whose children are all started by :class:`NativeRunner` (the node): once the
    reactor runs, put SIGCHLD back to its default, so that a function's exit wakes the reactor
    once (its pidfd), not once more for Twisted's SIGCHLD handler, which has nothing to reap.
    SIG_DFL, not SIG_IGN: the children are still reaped here, with their status. Not for a
    process that also starts children through Twisted (``reactor.spawnProcess`` needs the handler)."""
    reactor.callWhenRunning(signal.signal, signal.SIGCHLD, signal.SIG_DFL)


def _no_inherited_descriptors() -> None:
    """Mark every open descriptor above 2 close-on-exec. Python opens its own that way, but the
    node may have inherited some from whoever started it, and ``posix_spawn`` (unlike a fork that
    closes everything) passes on whatever is not close-on-exec."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the directory's own descriptor, closed by now


def _pipe(opened: list[int]) -> tuple[int, int]:
    """A close-on-exec pipe whose ends are above 0–2 (so that the spawn's ``dup2`` onto 0–2 cannot
    overwrite one end with another, even in a node started with its standard streams closed)."""
    ends = []
    for fd in os.pipe2(os.O_CLOEXEC):
        if fd <= 2:
            moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
            os.close(fd)
            fd = moved
        opened.append(fd)
        ends.append(fd)
    return ends[0], ends[1]


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    fds.clear()
