"""The node's end of the function spawner (:mod:`sflow.node.runners.spawner`): starts it as the
function user, sends it start and kill requests, and turns its reports into the functions' ends.

Nothing here blocks the reactor: the socket is non-blocking and read by the reactor; requests that
do not fit in the socket wait in a queue until it is writable (a spawner still starting reads
them once it runs). The spawner is started when the link is made and again, on demand, after it
died. When it dies — killed, crashed, or closed its socket — the node notices (its socket ends,
its pidfd becomes readable), reaps it, kills what it had started (as root: the function user's
processes in its session), and ends each function it had not reported with an error that says the
spawner died; the next function starts a new spawner.
"""

from __future__ import annotations

import array
import errno
import functools
import itertools
import logging
import os
import resource
import signal
import socket
import stat
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from twisted.python.failure import Failure

from sflow.errors import SflowError
from sflow.node.function_user import SWITCH_USER, FunctionUser
from sflow.node.runners import DelayedCall, Reactor
from sflow.node.runners.spawner import (
    MAX_MESSAGE,
    SOCKET_FD,
    Environment,
    Exited,
    Failed,
    Kill,
    ProtocolError,
    Start,
    decode,
    encode,
    received_fds,
)

log = logging.getLogger(__name__)

_SOURCE = Path(__file__).with_name("spawner.py")

#: seconds to wait for a spawner that closed its socket to be reapable (it exits right after)
_EXIT_WAIT = 2.0


class Function(Protocol):
    """What the link needs of a function it started (``native._Function``)."""

    def exited(self, status: int, usage: resource.struct_rusage | None = None, *, group_killed: bool = False) -> None: ...

    def failed(self, error: str) -> None: ...


class SpawnerLink:
    """Starts functions through a spawner running as ``user``, in ``environment``."""

    def __init__(self, reactor: Reactor, user: FunctionUser, environment: dict[str, str], *,
                 start: Callable[[], tuple[int, socket.socket]] | None = None) -> None:
        """``environment`` is what functions get (without ``PWD``, which the spawner sets per
        function); ``start`` starts a spawner (default: :func:`start_spawner`; tests give their
        own)."""
        self._reactor = reactor
        self._user = user
        self._environment = Environment({k: v for k, v in environment.items() if k not in ("PWD", "OLDPWD")})
        if start is None:
            interpreter = spawner_interpreter(user, environment.get("PATH", os.defpath))
            start = functools.partial(start_spawner, user, interpreter, _SOURCE.read_text())
        self._start = start
        self._ids = itertools.count(1)
        self._process: _Spawner | None = None
        self._closed = False
        self._process = self._spawn()

    def start(self, function: Function, script: str, workdir: Path, cpus: tuple[int, ...] | None,
              out_w: int, err_w: int) -> Callable[[int], None]:
        """Ask the spawner to start ``/bin/sh -c script`` for ``function`` with ``out_w`` and
        ``err_w`` (which the link closes once they are sent) as stdout and stderr, in
        ``workdir``, pinned to ``cpus``. Returns what sends a signal to the function's process
        group (through the spawner that started it). Raises ``OSError`` when the request cannot
        be made (the descriptors are closed then)."""
        if self._closed:
            for fd in (out_w, err_w):
                os.close(fd)
            raise OSError(errno.ESHUTDOWN, "the node is shutting down")
        try:
            directory = os.open(workdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            for fd in (out_w, err_w):
                os.close(fd)
            raise
        ident = next(self._ids) & 0xFFFFFFFF  # the wire carries 32 bits
        data = encode(Start(ident, tuple(cpus or ()), str(workdir), script))
        if len(data) > MAX_MESSAGE:
            for fd in (out_w, err_w, directory):
                os.close(fd)
            raise OSError(errno.E2BIG, f"the command is too long ({len(data)} bytes)")
        if self._process is None or not self._process.usable:
            self._process = self._spawn()  # the one before, if any, is being wound up
        process = self._process
        process.request(ident, function, data, [out_w, err_w, directory])
        return lambda sig: process.kill(ident, sig)

    def close(self) -> None:
        """Stop the spawner (it kills what is still running) and start no other."""
        self._closed = True
        if self._process is not None:
            self._process.close()
            self._process = None

    @property
    def pid(self) -> int | None:
        """The running spawner's pid (None when none runs)."""
        return self._process.pid if self._process is not None else None

    def _spawn(self) -> _Spawner:
        pid, sock = self._start()
        process = _Spawner(self._reactor, self._user, pid, sock)
        process.send_environment(self._environment)
        process.on_death = self._died
        return process

    def _died(self, process: _Spawner) -> None:
        if self._process is process:
            self._process = None


def start_spawner(user: FunctionUser, interpreter: str, source: str) -> tuple[int, socket.socket]:
    """Start the spawner as ``user`` through ``nsenter``, in its own session, with an empty
    environment (functions get the one the node sends) and ``/`` as its directory: its pid and
    the node's end of its socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        pid = os.posix_spawn(
            SWITCH_USER,
            [SWITCH_USER, "-S", str(user.uid), "-G", str(user.gid), "-w/", "--", interpreter, "-I", "-S", "-c", source],
            {},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, theirs.fileno(), SOCKET_FD),
            ],
            setsid=True,
        )
    except OSError:
        ours.close()
        raise
    finally:
        theirs.close()
    return pid, ours


class _Spawner:
    """One spawner process (its pid: a child of this process's) and the node's end of its socket
    (an ``IReadDescriptor`` and ``IWriteDescriptor``)."""

    def __init__(self, reactor: Reactor, user: FunctionUser, pid: int, sock: socket.socket) -> None:
        self._reactor = reactor
        self._user = user
        self._functions: dict[int, Function] = {}
        self._outbox: deque[tuple[bytes, list[int]]] = deque()
        self._writing = False
        self._exit_how = ""  # how it ended, once reaped
        self._eof: DelayedCall | None = None
        self._unread = False  # no longer read by the reactor
        self._reaped = False
        self.dead = False
        self.on_death: Callable[[_Spawner], None] = lambda _: None
        self.pid = pid
        self._sock = sock
        sock.setblocking(False)
        self._pidfd = _ProcessExit(os.pidfd_open(pid), self, reactor)
        reactor.addReader(self)
        reactor.addReader(self._pidfd)
        log.info("event=spawner_started pid=%s user=%s", pid, user.name)

    # Requests ----------------------------------------------------------------------------------

    def request(self, ident: int, function: Function, data: bytes, fds: list[int]) -> None:
        if not self.usable:
            _close(fds)
            raise OSError(errno.EPIPE, "the function spawner has died")
        self._functions[ident] = function
        self._send(data, fds)

    def send_environment(self, environment: Environment) -> None:
        """What every function's environment is (sent first: the spawner starts nothing before)."""
        self._send(encode(environment), [])

    def kill(self, ident: int, sig: int) -> None:
        if ident in self._functions and self.usable:
            self._send(encode(Kill(ident, sig)), [])

    def close(self) -> None:
        """Close the socket: the spawner kills what still runs and exits; it is reaped here."""
        if self._sock.fileno() >= 0:
            self._stop_reading()
            self._sock.close()
        _close([fd for _, fds in self._outbox for fd in fds])
        self._outbox.clear()

    def _send(self, data: bytes, fds: list[int]) -> None:
        self._outbox.append((data, fds))
        if not self._writing:
            self.doWrite()

    def doWrite(self) -> None:
        while self._outbox:
            data, fds = self._outbox[0]
            try:
                if fds:
                    self._sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _fd_array(fds))])
                else:
                    self._sock.send(data)
            except BlockingIOError:
                if not self._writing:
                    self._writing = True
                    self._reactor.addWriter(self)
                return
            except OSError as exc:
                self._ending(f"cannot reach it: {exc.strerror or exc}")
                return
            self._outbox.popleft()
            _close(fds)
        if self._writing:
            self._writing = False
            self._reactor.removeWriter(self)

    # Reports -----------------------------------------------------------------------------------

    def fileno(self) -> int:
        return self._sock.fileno()

    def logPrefix(self) -> str:
        return "sflow-spawner"

    def doRead(self) -> None:
        ended = self._read_all()
        if ended:
            self._ending(ended)

    def _read_all(self) -> str:
        """Handle every report there is; why the socket ended, or "" when it has not."""
        reset = False
        while not self.dead:
            try:
                data, ancillary, _, _ = self._sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(4 * 4), socket.MSG_CMSG_CLOEXEC)
            except BlockingIOError:
                return "its socket was reset" if reset else ""
            except ConnectionResetError:
                # It went with requests unread: said once, and what it had sent is still there.
                if reset:
                    return "its socket was reset"
                reset = True
                continue
            except OSError as exc:
                return f"its socket failed: {exc.strerror or exc}"
            _close(received_fds(ancillary))  # it sends none
            if not data:
                return "it closed its socket"
            try:
                self._report(decode(data))
            except ProtocolError as exc:
                self._lost(f"it sent a malformed message: {exc}")
        return ""

    def _report(self, message: object) -> None:
        if isinstance(message, Exited):
            function = self._functions.pop(message.ident, None)
            if function is not None:
                function.exited(message.status, resource.struct_rusage(message.usage), group_killed=True)
        elif isinstance(message, Failed):
            function = self._functions.pop(message.ident, None)
            if function is not None:
                function.failed(f"cannot start /bin/sh: {message.message}")
        else:
            raise ProtocolError(f"unexpected message from the spawner: {message!r}")

    def connectionLost(self, reason: Failure) -> None:
        self._ending(f"its socket was lost: {reason.getErrorMessage()}")

    # Death -------------------------------------------------------------------------------------

    def exited(self) -> None:
        """The spawner's pidfd is readable: reap it; read what it had reported before it died;
        whatever it had not reported is lost."""
        try:
            _, status = os.waitpid(self.pid, 0)
            self._reaped = True
            how = _how(status)
        except ChildProcessError:
            self._reaped = True  # by someone else: its pid is no longer its own
            how = "it exited"
        if self._sock.fileno() >= 0 and not self.dead:
            self._exit_how = how
            self._read_all()
        self._lost(how)

    @property
    def usable(self) -> bool:
        """Whether it can take requests (it is not dead or dying)."""
        return self._eof is None and not self.dead

    def _ending(self, reason: str) -> None:
        """Its socket has ended or failed: it is exiting (it closes its socket only then). Say how
        once it is reaped, which its pidfd tells at once — or, whatever has happened, soon."""
        if self._eof is not None or self.dead:
            return
        self._stop_reading()
        self._stop_writing()
        self._eof = self._reactor.callLater(_EXIT_WAIT, self._lost, reason)

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self._reactor.removeWriter(self)

    def _lost(self, how: str) -> None:
        if self.dead:
            return
        self.dead = True
        how = self._exit_how or how
        if self._eof is not None and self._eof.active():
            self._eof.cancel()
        self.on_death(self)
        self._stop_reading()
        self._stop_writing()
        self.close()
        functions = list(self._functions.values())
        self._functions.clear()
        if functions:
            log.warning("event=spawner_died pid=%s how=%r functions_lost=%d", self.pid, how, len(functions))
        if not self._reaped:
            try:
                os.kill(self.pid, signal.SIGKILL)  # not reaped: its pid is still its own
            except OSError:
                pass
        _kill_session(self.pid, self._user.uid)
        for function in functions:
            function.failed(f"the function spawner (pid {self.pid}) died ({how}); the function was killed")

    def _stop_reading(self) -> None:
        if self._sock.fileno() >= 0 and not self._unread:
            self._unread = True
            self._reactor.removeReader(self)


class _ProcessExit:
    """The spawner's pidfd, readable once it has exited."""

    def __init__(self, fd: int, spawner: _Spawner, reactor: Reactor) -> None:
        self._fd = fd
        self._spawner = spawner
        self._reactor = reactor

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:
        return "sflow-spawner-exit"

    def doRead(self) -> None:
        self._reactor.removeReader(self)
        os.close(self._fd)
        self._fd = -1
        self._spawner.exited()

    def connectionLost(self, reason: Failure) -> None:
        pass


def spawner_interpreter(user: FunctionUser, path: str) -> str:
    """A Python interpreter (3.10 or later) that ``user`` can execute: the node's own, else
    ``python3`` on ``path`` (the node's may be in a directory closed to the user, as one under
    ``/root`` is). Raises :class:`SflowError` naming ``node.run_as`` when there is none."""
    own = os.path.realpath(sys.executable)
    candidates = [own] + [os.path.realpath(os.path.join(d, "python3")) for d in path.split(os.pathsep) if d]
    for candidate in dict.fromkeys(candidates):
        if (candidate == own or _recent_python(candidate)) and user.can(Path(candidate), stat.S_IXOTH):
            return candidate
    raise SflowError(f"no Python 3.10+ interpreter that the function user {user.name!r} (node.run_as) may run: "
                     f"neither {own} nor python3 on PATH; a root node starts its functions through one")


def _recent_python(program: str) -> bool:
    base = os.path.basename(program)
    if not base.startswith("python3") or not os.access(program, os.X_OK):
        return False
    version = base[len("python3."):] if base.startswith("python3.") else ""
    return not version.isdigit() or int(version) >= 10


def _kill_session(session: int, uid: int) -> None:
    """Kill every process of ``uid`` in ``session`` (that of a dead spawner: all it started and
    what they started, unless they left its session). The session's id stays taken while anyone
    is in it, so no one else can be in it."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[3]) == session and os.stat(f"/proc/{name}").st_uid == uid:
                os.kill(int(name), signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            pass  # gone meanwhile


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _fd_array(fds: list[int]) -> bytes:
    return array.array("i", fds).tobytes()


def _close(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
