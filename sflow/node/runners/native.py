"""Native execution: ``/bin/sh -c <command>`` in the job directory, in its own process group.

A tiny launcher (``python -I -S -c``) calls ``setsid()`` — so that a kill reaches every process of
a pipeline or a background job — and ``sched_setaffinity()`` when the function is pinned, then
forks the shell and waits for it with ``wait4``: it reports the function's CPU time and peak
resident memory (the shell's and its waited-for descendants') on a pipe (fd 3), then exits as the
shell did (the same exit status, or the same signal). The launcher's pid is the process group's
id; it ignores SIGTERM so that a kill's SIGTERM ends the function and the launcher still reports.
stdout and stderr are read while the function runs and only a bounded tail is kept: a function
printing gigabytes neither blocks on a full pipe (the original read only after exit) nor fills
the node's memory.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from sflow.node.runners import TAIL_BYTES, DelayedCall, Outcome, Reactor, Tail

log = logging.getLogger(__name__)

# Seconds between SIGTERM and SIGKILL, and before pipes still held open by escaped grandchildren
# are closed after the shell itself has exited.
KILL_GRACE = 2.0

_LAUNCHER = (
    "import os,sys,signal\n"
    "os.setsid()\n"
    "if sys.argv[1]:\n"
    "    os.sched_setaffinity(0, [int(c) for c in sys.argv[1].split(',')])\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.close(3)\n"
    "    os.execv('/bin/sh', ['/bin/sh', '-c', sys.argv[2]])\n"
    "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
    "    signal.signal(s, signal.SIG_IGN)\n"
    "_, status, ru = os.wait4(pid, 0)\n"
    "os.write(3, b'%.6f %d\\n' % (ru.ru_utime + ru.ru_stime, ru.ru_maxrss))\n"
    "if os.WIFSIGNALED(status):\n"
    "    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)\n"
    "    os.kill(os.getpid(), os.WTERMSIG(status))\n"
    "os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)\n"
)
#: the descriptor on which the launcher reports the shell's resource usage
USAGE_FD = 3


class _Function(ProcessProtocol):
    def __init__(self, reactor: Reactor, tail_bytes: int) -> None:
        self.reactor = reactor
        self.done: Deferred[Outcome] = Deferred()
        self.stdout = Tail(tail_bytes)
        self.stderr = Tail(tail_bytes)
        self.pgid: int | None = None
        self._usage = b""
        self.exited = False
        self.ended = False
        self.killed = False
        self._timers: list[DelayedCall] = []

    # Twisted callbacks -------------------------------------------------------------------------

    def connectionMade(self) -> None:
        cast(Any, self.transport).closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.stdout.feed(data)

    def errReceived(self, data: bytes) -> None:
        self.stderr.feed(data)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == USAGE_FD:
            self._usage = (self._usage + data)[-256:]
        else:
            super().childDataReceived(childFD, data)

    def _resources(self) -> tuple[float | None, int | None]:
        """(CPU seconds, peak RSS in KiB) the launcher reported, or (None, None)."""
        fields = self._usage.split()
        try:
            return float(fields[0]), int(fields[1])
        except (IndexError, ValueError):
            return None, None

    def processExited(self, reason: Failure) -> None:
        self.exited = True
        # Whatever the shell left behind in its group goes with it; processes that escaped the
        # group but still hold the pipes are cut off after a grace period.
        self._signal_group(signal.SIGKILL)
        self._later(KILL_GRACE, self._close_pipes)

    def processEnded(self, reason: Failure) -> None:
        self.ended = True
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        status: int | None = 0
        sig: int | None = None
        if isinstance(reason.value, ProcessTerminated):
            status = reason.value.exitCode
            sig = reason.value.signal
        elif not isinstance(reason.value, ProcessDone):
            status = None
        cpu_s, max_rss_kb = self._resources()
        self.done.callback(Outcome(status, sig, self.stdout.text(), self.stderr.text(), cpu_s=cpu_s,
                                   max_rss_kb=max_rss_kb))

    # Control -----------------------------------------------------------------------------------

    def kill(self) -> None:
        if self.ended or self.killed:
            return
        self.killed = True
        self._signal_group(signal.SIGTERM)
        self._later(KILL_GRACE, self._signal_group, signal.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        if self.pgid is None or self.ended:
            return
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            pass  # the whole group is gone already
        except PermissionError as exc:
            log.warning("cannot signal process group pgid=%s signal=%s error=%s", self.pgid, sig, exc)

    def _close_pipes(self) -> None:
        if not self.ended and self.transport is not None:
            log.debug("closing pipes held by escaped processes pgid=%s", self.pgid)
            cast(Any, self.transport).loseConnection()

    def _later(self, delay: float, fn: Callable[..., object], *args: object) -> None:
        self._timers.append(self.reactor.callLater(delay, fn, *args))


def function_environment() -> dict[str, str]:
    """The node's environment without sflow's own settings: ``SFLOW_*`` variables may carry
    passwords (``SFLOW_FILE_SERVER_PASSWORD``), and functions are the job author's code."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SFLOW_")}


class NativeRunner:
    """Starts functions as local processes."""

    def __init__(self, reactor: Reactor, *, tail_bytes: int = TAIL_BYTES) -> None:
        self._reactor = reactor
        self._tail_bytes = tail_bytes

    def start(self, shell: str, workdir: Path, cpus: tuple[int, ...] | None = None) -> _Function:
        """Spawn ``/bin/sh -c shell`` with ``workdir`` as cwd, pinned to ``cpus`` when given, in
        :func:`function_environment`. Raises ``OSError`` when the process cannot be spawned."""
        function = _Function(self._reactor, self._tail_bytes)
        pin = ",".join(str(c) for c in cpus) if cpus else ""
        args = [sys.executable, "-I", "-S", "-c", _LAUNCHER, pin, shell]
        process = self._reactor.spawnProcess(
            function,
            sys.executable,
            args,
            env=function_environment(),
            path=str(workdir),
            childFDs={0: "w", 1: "r", 2: "r", USAGE_FD: "r"},
        )
        function.pgid = process.pid
        log.debug("spawned pid=%s cwd=%s cpus=%s", process.pid, workdir, pin or "-")
        return function
