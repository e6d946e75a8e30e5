"""The function spawner's messages, the choice of its interpreter, and the node's end of it with a
fake reactor (the spawner itself is driven through the real runner, as a real user, in
tests/integration/execution/test_isolation.py)."""

from __future__ import annotations

import os
import resource
import select
import signal
import socket
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from sflow.errors import SflowError
from sflow.node.function_user import FunctionUser
from sflow.node.runners.spawner import (
    MAX_MESSAGE,
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
from sflow.node.runners.spawner_link import SpawnerLink, spawner_interpreter


def test_every_message_survives_the_wire() -> None:
    usage = tuple(resource.getrusage(resource.RUSAGE_SELF))
    for message in (
        Environment({}),
        Environment({"PATH": "/usr/bin:/bin", "EMPTY": "", "ODD": "a=b\udcff"}),
        Start(1, (), "/jobs/a b", "echo hi"),
        Start(2**32 - 1, (0, 3, 65535), "/jobs/\udcff-not-utf8", "printf '%s\\n' é; exit 3"),
        Kill(7, 15),
        Failed(8, 2, "No such file or directory"),
        Exited(9, 0x0900, usage),
    ):
        assert decode(encode(message)) == message
    # and the usage becomes what wait4 gives
    exited = decode(encode(Exited(9, 0, usage)))
    assert isinstance(exited, Exited) and resource.struct_rusage(exited.usage).ru_maxrss == usage[2]


@pytest.mark.parametrize("data", [b"", b"Q", b"EPATH=/bin\0NO-EQUALS\0", b"EPATH=/bin", b"S\x00", b"K\x00\x00\x00\x01", b"X" + struct.pack("!Ii", 1, 0),
                                  b"S" + struct.pack("!IH", 1, 2) + struct.pack("!H", 0)])
def test_malformed_messages_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(data)


def test_start_path_length_past_the_end() -> None:
    data = encode(Start(1, (), "/jobs/x", ""))
    with pytest.raises(ProtocolError, match="path runs past the end"):
        decode(data[:-2])


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_the_spawner_runs_on_an_interpreter_the_function_user_may_run(shared_dir: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    user = FunctionUser("fn", 54321, 54322, "/var/lib/fn")
    closed = shared_dir / "closed"
    own = _executable(closed / "bin" / "python3.11")
    closed.chmod(0o700)
    monkeypatch.setattr(sys, "executable", str(own))
    shared = _executable(shared_dir / "shared" / "python3")
    old = _executable(shared_dir / "old" / "python3.8")
    (shared_dir / "old-link").mkdir()
    (shared_dir / "old-link" / "python3").symlink_to(old)
    search = os.pathsep.join([str(closed / "bin"), str(shared_dir / "old-link"), str(shared_dir / "shared")])
    # the node's own is under a directory closed to the user; a Python too old is passed over
    assert spawner_interpreter(user, search) == str(shared)
    with pytest.raises(SflowError, match=r"'fn' \(node.run_as\) may run"):
        spawner_interpreter(user, str(shared_dir / "old-link"))
    closed.chmod(0o755)
    assert spawner_interpreter(user, "") == str(own)


# The node's end, with a fake reactor: the test plays the spawner on the other end of the socket,
# and a sleeping child stands for its process.


class FakeReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.readers: set[Any] = set()
        self.writers: set[Any] = set()

    def addReader(self, reader: Any) -> None:
        self.readers.add(reader)

    def removeReader(self, reader: Any) -> None:
        self.readers.discard(reader)

    def addWriter(self, writer: Any) -> None:
        self.writers.add(writer)

    def removeWriter(self, writer: Any) -> None:
        self.writers.discard(writer)


@dataclass
class FakeFunction:
    exits: list[tuple[int, Any, bool]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def exited(self, status: int, usage: Any = None, *, group_killed: bool = False) -> None:
        self.exits.append((status, usage, group_killed))

    def failed(self, error: str) -> None:
        self.failures.append(error)


class Spawners:
    """Starts stand-ins for the spawner: a sleeping child each, and the test's end of its socket."""

    def __init__(self) -> None:
        self.started: list[tuple[int, socket.socket]] = []

    def __call__(self) -> tuple[int, socket.socket]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.posix_spawn("/bin/sleep", ["sleep", "300"], {})
        self.started.append((pid, theirs))
        return pid, ours

    def close(self) -> None:
        for pid, sock in self.started:
            sock.close()
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


USER = FunctionUser("fn", 54321, 54322, "/var/lib/fn")


@pytest.fixture
def link(tmp_path: Path) -> Iterator[tuple[FakeReactor, SpawnerLink, Spawners]]:
    reactor, spawners = FakeReactor(), Spawners()
    link = SpawnerLink(reactor, USER, {"PATH": "/bin", "PWD": "/root", "LANG": "C"}, start=spawners)
    for _, theirs in spawners.started:  # what functions get is sent first; PWD is set per function
        assert _receive(theirs) == (Environment({"PATH": "/bin", "LANG": "C"}), [])
    yield reactor, link, spawners
    spawners.close()


def _pipes() -> tuple[int, int, int, int]:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    return out_r, out_w, err_r, err_w


def _receive(sock: socket.socket) -> tuple[object, list[int]]:
    data, ancillary, _, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(4 * 4))
    return decode(data), received_fds(ancillary)


def _readable(reactor: FakeReactor) -> None:
    for reader in list(reactor.readers):
        if select.select([reader.fileno()], [], [], 0)[0]:
            reader.doRead()


def test_requests_and_reports(link: tuple[FakeReactor, SpawnerLink, Spawners], tmp_path: Path) -> None:
    reactor, spawners_link, spawners = link
    (_, theirs), = spawners.started
    function = FakeFunction()
    out_r, out_w, err_r, err_w = _pipes()
    kill = spawners_link.start(function, "echo hi", tmp_path, (1,), out_w, err_w)
    start, fds = _receive(theirs)
    assert isinstance(start, Start) and (start.cpus, start.path, start.script) == ((1,), str(tmp_path), "echo hi")
    # stdout, stderr and the job directory travel with it; the node has closed its copies
    assert len(fds) == 3 and os.path.samefile(f"/proc/self/fd/{fds[2]}", tmp_path)
    os.write(fds[0], b"x")
    assert os.read(out_r, 1) == b"x"
    for fd in fds:
        os.close(fd)
    assert os.read(out_r, 1) == b"" and os.read(err_r, 1) == b""  # no writer left but the spawner's
    kill(signal.SIGTERM)
    assert _receive(theirs)[0] == Kill(start.ident, signal.SIGTERM)
    usage = tuple(resource.getrusage(resource.RUSAGE_SELF))
    theirs.send(encode(Exited(start.ident, 0x0f00, usage)))
    _readable(reactor)
    status, rusage, group_killed = function.exits[0]
    assert (status, group_killed, tuple(rusage)) == (0x0f00, True, usage)
    kill(signal.SIGKILL)  # reported already: nothing is sent
    # a request that fails to start
    failing = FakeFunction()
    spawners_link.start(failing, "true", tmp_path, None, *_pipes()[1::2])
    ident = _receive(theirs)[0].ident  # type: ignore[attr-defined]
    theirs.send(encode(Failed(ident, 2, "No such file or directory")))
    _readable(reactor)
    assert failing.failures == ["cannot start /bin/sh: No such file or directory"]
    for fd in (out_r, err_r):
        os.close(fd)


def test_a_dead_spawner_fails_its_functions_and_the_next_function_starts_another(
        link: tuple[FakeReactor, SpawnerLink, Spawners], tmp_path: Path) -> None:
    reactor, spawners_link, spawners = link
    (pid, theirs), = spawners.started
    done, lost = FakeFunction(), FakeFunction()
    for function in (done, lost):
        spawners_link.start(function, "sleep 1", tmp_path, None, *_pipes()[1::2])
    first = _receive(theirs)[0].ident  # type: ignore[attr-defined]
    theirs.send(encode(Exited(first, 0, tuple(resource.getrusage(resource.RUSAGE_SELF)))))
    # it is killed with a report still unread: the report counts, the other function is lost
    os.kill(pid, signal.SIGKILL)
    theirs.close()
    exit_reader = next(r for r in reactor.readers if r.logPrefix() == "sflow-spawner-exit")
    assert select.select([exit_reader.fileno()], [], [], 10)[0]
    exit_reader.doRead()
    assert len(done.exits) == 1 and not done.failures
    assert lost.failures == [f"the function spawner (pid {pid}) died (killed by signal 9); the function was killed"]
    assert not reactor.readers and spawners_link.pid is None
    # the next function starts a new spawner, which gets the environment first
    spawners_link.start(FakeFunction(), "true", tmp_path, None, *_pipes()[1::2])
    assert len(spawners.started) == 2 and spawners_link.pid == spawners.started[1][0]
    assert isinstance(_receive(spawners.started[1][1])[0], Environment)


def test_a_malformed_report_ends_the_spawner(link: tuple[FakeReactor, SpawnerLink, Spawners], tmp_path: Path) -> None:
    reactor, spawners_link, spawners = link
    (_, theirs), = spawners.started
    function = FakeFunction()
    spawners_link.start(function, "true", tmp_path, None, *_pipes()[1::2])
    theirs.send(b"Z garbage")
    _readable(reactor)
    assert function.failures and "malformed message" in function.failures[0]
    assert theirs.recv(MAX_MESSAGE) and theirs.recv(MAX_MESSAGE) == b""  # the request, then the end
    # the node has closed its end and killed the stand-in, which its pidfd then says (at once,
    # maybe: then it was read above)
    for exit_reader in [r for r in reactor.readers if r.logPrefix() == "sflow-spawner-exit"]:
        assert select.select([exit_reader.fileno()], [], [], 10)[0]
        exit_reader.doRead()
    assert spawners_link.pid is None and not reactor.readers


def test_requests_wait_while_the_socket_is_full(link: tuple[FakeReactor, SpawnerLink, Spawners], tmp_path: Path) -> None:
    reactor, spawners_link, spawners = link
    (_, theirs), = spawners.started
    script = "x" * 60_000
    sent = 0
    while not reactor.writers:
        spawners_link.start(FakeFunction(), script, tmp_path, None, *_pipes()[1::2])
        sent += 1
        assert sent < 1000
    received = 0
    while reactor.writers or received < sent:
        if select.select([theirs], [], [], 0)[0]:
            _, fds = _receive(theirs)
            for fd in fds:
                os.close(fd)
            received += 1
        else:
            next(iter(reactor.writers)).doWrite()
    assert received == sent and not reactor.writers
