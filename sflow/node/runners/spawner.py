"""The function spawner: a small resident process that starts a root node's native functions as
the function user (``node.run_as``), and the messages it exchanges with the node.

A node running as root never runs a function as root (:mod:`sflow.node.function_user`). Changing
user for every function costs one more program per function (util-linux ``nsenter``, about 1.2 ms;
:mod:`sflow.node.runners.native` says what was measured); this process changes user once: the node
starts it through ``nsenter`` as the function user, and it then starts every function's
``/bin/sh -c`` itself, already unprivileged. It is this module run as
``python3 -I -S -c <this module's source>``: the standard library only, nothing of sflow (the
function user may not be able to read the node's installation).

What it guarantees for every function (the node's :class:`~sflow.node.runners.native.NativeRunner`
gives the same without a spawner):

* its own process group, whose id is the shell's pid, in the spawner's session (the spawner leads
  a session of its own, with no controlling terminal: a function is never in the node's session).
  Not a session per function: with the kernel's autogroup scheduling a new session is a new
  scheduling group, measured at several milliseconds per function on a busy machine;
* pinning: the spawner pins itself to the function's CPUs for the moment of the spawn
  (:func:`pinned`), so that the shell is born pinned — a child inherits its parent's mask — and
  never runs unpinned; the spawner's own mask is put back at once;
* cwd: the node opens the job directory (``O_PATH``, as root) and passes the descriptor; the
  spawner enters it (``fchdir``) before the spawn, so the function starts there even when the node's
  directories above it are closed to the function user; ``PWD`` is the job directory's path;
* the environment the node sends first (filtered by the node; not the spawner's own, to which
  Python may add ``LC_CTYPE`` when it starts in the C locale), ``PWD`` set per function; stdin
  ``/dev/null``, stdout and stderr the write ends of pipes that the node created and reads; every
  signal at its default disposition and none blocked; no descriptor of the spawner's (its socket,
  pidfds and received descriptors are close-on-exec);
* exit: the spawner is the parent. When the shell exits it kills what is left of its group (while
  the unreaped shell still holds the group's id, so the id cannot have been reused) and reaps it
  with ``wait4``, and reports the exact wait status and resource usage.

The spawner sets ``no_new_privs`` on itself (inherited by every function) and makes itself not
dumpable, so that a function, which runs as the same user, can neither ``ptrace`` it nor open its
descriptors through ``/proc``. It refuses to run as root. When the node's end of the socket closes
(the node stops or dies) it kills every function's group, reaps them and exits.

Wire: a ``SOCK_SEQPACKET`` socket pair, the spawner's end on descriptor 3; one message per packet,
a kind byte then big-endian fields:

====== ========================================================================= ==============
kind   fields                                                                    descriptors
====== ========================================================================= ==============
``E``  the functions' environment: ``NAME=value`` entries, each ended by NUL      –
``S``  start: id u32, n u16, n CPUs u16, path length u32, path, script           stdout, stderr,
                                                                                 job directory
``K``  kill the group: id u32, signal u8                                         –
``F``  failed to start (nothing runs): id u32, errno i32, message                –
``X``  exited: id u32, wait status i32, ``struct rusage`` (2 doubles, 14 i64)    –
====== ========================================================================= ==============
"""

from __future__ import annotations

import array
import errno
import os
import select
import signal
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

#: the spawner's end of the socket
SOCKET_FD = 3
SHELL = "/bin/sh"
#: the largest message either side reads (a script longer than an argument ``execve`` accepts,
#: 128 KiB, could not run anyway)
MAX_MESSAGE = 256 * 1024
#: descriptors a start message carries: stdout, stderr, the job directory
START_FDS = 3

_START = struct.Struct("!IH")
_CPU = struct.Struct("!H")
_LENGTH = struct.Struct("!I")
_KILL = struct.Struct("!IB")
_FAILED = struct.Struct("!Ii")
_EXITED = struct.Struct("!Ii2d14q")

_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38

#: every signal a process can have a disposition for: all go back to SIG_DFL in the function
_DEFAULT_SIGNALS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}


class ProtocolError(ValueError):
    """A message that does not parse (a bug on one side: the two ends are the same module)."""


@contextmanager
def pinned(cpus: tuple[int, ...] | None) -> Iterator[None]:
    """Pin the calling thread to ``cpus`` (when given) for the duration of the block, so that a
    process spawned in it is born pinned (a child inherits its parent thread's mask) and never
    runs unpinned; the thread's mask is put back afterwards. ``OSError`` (a CPU that is not there)
    before anything is spawned."""
    if not cpus:
        yield
        return
    mask = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, mask)


# Messages ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    ident: int
    cpus: tuple[int, ...]
    path: str
    script: str


@dataclass(frozen=True, slots=True)
class Environment:
    variables: dict[str, str]


@dataclass(frozen=True, slots=True)
class Kill:
    ident: int
    signal: int


@dataclass(frozen=True, slots=True)
class Failed:
    ident: int
    errno: int
    message: str


@dataclass(frozen=True, slots=True)
class Exited:
    ident: int
    status: int
    #: the 16 fields of ``struct rusage`` (``resource.struct_rusage`` takes them as they are)
    usage: tuple[float | int, ...]


def encode(message: Environment | Start | Kill | Failed | Exited) -> bytes:
    if isinstance(message, Environment):
        return b"E" + b"".join(f"{k}={v}".encode("utf-8", "surrogateescape") + b"\0"
                               for k, v in message.variables.items())
    if isinstance(message, Start):
        path = message.path.encode("utf-8", "surrogateescape")
        return (b"S" + _START.pack(message.ident, len(message.cpus))
                + b"".join(_CPU.pack(cpu) for cpu in message.cpus)
                + _LENGTH.pack(len(path)) + path + message.script.encode("utf-8", "surrogateescape"))
    if isinstance(message, Kill):
        return b"K" + _KILL.pack(message.ident, message.signal)
    if isinstance(message, Failed):
        return b"F" + _FAILED.pack(message.ident, message.errno) + message.message.encode("utf-8", "replace")
    return b"X" + _EXITED.pack(message.ident, message.status, *message.usage)


def decode(data: bytes) -> Environment | Start | Kill | Failed | Exited:
    """The message in one packet; :class:`ProtocolError` when it does not parse."""
    kind, body = data[:1], data[1:]
    try:
        if kind == b"E":
            entries = [e.decode("utf-8", "surrogateescape") for e in body.split(b"\0")[:-1]]
            if body and not body.endswith(b"\0") or any("=" not in e for e in entries):
                raise ProtocolError("environment message: an entry without '=' or NUL")
            return Environment(dict(e.split("=", 1) for e in entries))
        if kind == b"S":
            ident, count = _START.unpack_from(body)
            at = _START.size
            cpus = tuple(_CPU.unpack_from(body, at + i * _CPU.size)[0] for i in range(count))
            at += count * _CPU.size
            (length,) = _LENGTH.unpack_from(body, at)
            at += _LENGTH.size
            if at + length > len(body):
                raise ProtocolError("start message: the path runs past the end")
            path = body[at:at + length].decode("utf-8", "surrogateescape")
            return Start(ident, cpus, path, body[at + length:].decode("utf-8", "surrogateescape"))
        if kind == b"K":
            return Kill(*_KILL.unpack(body))
        if kind == b"F":
            ident, number = _FAILED.unpack_from(body)
            return Failed(ident, number, body[_FAILED.size:].decode("utf-8", "replace"))
        if kind == b"X":
            ident, status, *usage = _EXITED.unpack(body)
            return Exited(ident, status, tuple(usage))
    except struct.error as exc:
        raise ProtocolError(f"message {kind!r}: {exc}") from None
    raise ProtocolError(f"unknown message kind {kind!r}")


def received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors an ``SCM_RIGHTS`` message carried."""
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return list(fds)


# The spawner ---------------------------------------------------------------------------------


class Spawner:
    """The resident loop: start functions on request, report their exits, until the node goes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._environment: dict[str, str] | None = None  # until the node sends it
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        self._pids: dict[int, int] = {}  # id -> pid, until reaped
        self._pidfds: dict[int, tuple[int, int]] = {}  # pidfd -> (id, pid)

    def serve(self) -> None:
        while True:
            for fd, _ in self._poll.poll():
                if fd == self._sock.fileno():
                    if not self._request():
                        self._stop_all()
                        return
                else:
                    self._reap(fd)

    def _request(self) -> bool:
        """Handle one request; False when the node has gone."""
        try:
            data, ancillary, _, _ = self._sock.recvmsg(
                MAX_MESSAGE, socket.CMSG_SPACE(START_FDS * 4), socket.MSG_CMSG_CLOEXEC)
        except ConnectionError:
            return False
        fds = received_fds(ancillary)
        if not data:
            _close(fds)
            return False
        message = decode(data)
        if isinstance(message, Start):
            self._start(message, fds)
        else:
            _close(fds)
            if isinstance(message, Environment):
                self._environment = message.variables
            elif isinstance(message, Kill):
                self._kill(message)
            else:
                raise ProtocolError(f"unexpected message from the node: {message!r}")
        return True

    def _start(self, message: Start, fds: list[int]) -> None:
        try:
            if len(fds) != START_FDS:
                raise OSError(errno.EPROTO, f"a start message carries {len(fds)} descriptors, not {START_FDS}")
            if self._environment is None:
                raise OSError(errno.EPROTO, "a start message before the environment")
            stdout, stderr, directory = fds
            os.fchdir(directory)
            environment = {**self._environment, "PWD": message.path}
            actions: list[tuple[object, ...]] = [
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, stdout, 1),
                (os.POSIX_SPAWN_DUP2, stderr, 2),
            ]
            with pinned(message.cpus):
                pid = os.posix_spawn(SHELL, [SHELL, "-c", message.script], environment, file_actions=actions,
                                     setpgroup=0, setsigdef=_DEFAULT_SIGNALS, setsigmask=())
            pidfd = os.pidfd_open(pid)
        except OSError as exc:
            self._send(Failed(message.ident, exc.errno or 0, exc.strerror or str(exc)))
            return
        finally:
            _close(fds)
        self._pids[message.ident] = pid
        self._pidfds[pidfd] = (message.ident, pid)
        self._poll.register(pidfd, select.POLLIN)

    def _kill(self, message: Kill) -> None:
        pid = self._pids.get(message.ident)
        if pid is not None:  # else it has been reaped and reported already
            _kill_group(pid, message.signal)

    def _reap(self, pidfd: int) -> None:
        ident, pid = self._pidfds.pop(pidfd)
        self._poll.unregister(pidfd)
        os.close(pidfd)
        # What the shell left behind in its group goes with it; the group's id is still the
        # unreaped shell's, so this cannot reach anyone else.
        _kill_group(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
        del self._pids[ident]
        self._send(Exited(ident, status, tuple(usage)))

    def _stop_all(self) -> None:
        for pidfd, (_, pid) in list(self._pidfds.items()):
            _kill_group(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(pidfd)
        self._pidfds.clear()
        self._pids.clear()

    def _send(self, message: Failed | Exited) -> None:
        try:
            self._sock.send(encode(message))
        except ConnectionError:
            pass  # the node has gone: the next read says so


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone (or all that is left of it is another user's: not ours to kill)


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _confine() -> None:
    """Refuse to run as root; set ``no_new_privs`` and make this process not dumpable."""
    if 0 in os.getresuid() or 0 in os.getresgid():
        raise SystemExit("sflow spawner: refusing to run as root or group root")
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for option in (_PR_SET_NO_NEW_PRIVS, _PR_SET_DUMPABLE):
        value = 1 if option == _PR_SET_NO_NEW_PRIVS else 0
        if libc.prctl(option, value, 0, 0, 0) != 0:
            raise SystemExit(f"sflow spawner: prctl({option}) failed: {os.strerror(ctypes.get_errno())}")


def main() -> None:
    _confine()
    os.set_inheritable(SOCKET_FD, False)
    with socket.socket(fileno=SOCKET_FD) as sock:
        sock.setblocking(True)
        Spawner(sock).serve()


if __name__ == "__main__":
    main()
