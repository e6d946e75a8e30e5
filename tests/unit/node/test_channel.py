"""Authentication and file streaming on a channel pair over StringTransport."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from sflow.errors import IntegrityError
from sflow.node import seal
from sflow.node.channel import AUTH_TIMEOUT, DISK_HIGH, Channel
from sflow.node.protocol import HEADER, encode
from sflow.node.transfer import FileSink

from node_fakes import SECRET, Pipe, RecordingHandler, SilentPeer, channel_pair


def test_mutual_authentication_then_messages_flow() -> None:
    clock = Clock()
    client, ch, server, sh, pipe = channel_pair(clock)
    pipe.pump()
    assert client.ready.called and server.authenticated
    assert ch.ready == [client] and sh.ready == [server]
    assert client.peer_name == "server"
    client.send("start", job="1-a")
    pipe.pump()
    assert [m["t"] for m in sh.messages] == ["start"]


def test_wrong_secret_closes_without_reaching_the_handler() -> None:
    clock = Clock()
    client, ch, server, sh, pipe = channel_pair(clock, client_secret=b"x" * 32)
    client.send("start", job="1-a")  # not authenticated: dropped on this side
    pipe.pump()
    assert not server.authenticated and sh.ready == [] and sh.messages == []
    assert sh.closed and sh.closed[0][1] is False
    assert client.ready.called  # failed
    client.ready.addErrback(lambda f: None)


def test_client_rejects_a_server_without_the_secret() -> None:
    clock = Clock()
    client, ch, server, sh, pipe = channel_pair(clock, server_secret=b"y" * 32)
    pipe.pump()
    assert not client.authenticated and ch.ready == []
    assert "server does not hold the cluster secret" in ch.closed[0][0]
    client.ready.addErrback(lambda f: None)


def test_a_frame_before_authentication_closes_the_connection() -> None:
    handler = RecordingHandler()
    server = Channel("server", SECRET, handler, Clock(), "server")

    class Raw:
        def __init__(self) -> None:
            self.data = b""

        def makeConnection(self, transport: object) -> None:
            pass

        def dataReceived(self, data: bytes) -> None:
            self.data += data

        def connectionLost(self) -> None:
            pass

    raw = Raw()
    pipe = Pipe(raw, server)
    pipe.lt.write(encode("job", {"job": "1-a", "plan": {}}))
    pipe.pump()
    assert handler.messages == [] and handler.closed == [("unexpected 'job' frame before authentication", False)]
    assert b"before authentication" in raw.data


def test_an_oversized_frame_before_authentication_is_refused_at_once() -> None:
    handler = RecordingHandler()
    server = Channel("server", SECRET, handler, Clock(), "server")
    pipe = Pipe(SilentPeer(), server)
    pipe.lt.write(b"\x00\x10\x00\x00")  # announces 1 MB
    pipe.pump()
    assert handler.closed and "exceeds the limit" in handler.closed[0][0]


def test_silent_peer_times_out() -> None:
    clock = Clock()
    handler = RecordingHandler()
    server = Channel("server", SECRET, handler, clock, "server")
    pipe = Pipe(SilentPeer(), server)
    clock.advance(AUTH_TIMEOUT + 1)
    pipe.pump()
    assert handler.closed == [("authentication timed out", False)]


def test_file_streams_verified_and_renamed(tmp_path: Path) -> None:
    clock = Clock()
    src = tmp_path / "src.bin"
    data = bytes(range(256)) * 5000
    src.write_bytes(data)
    client, ch, server, sh, pipe = channel_pair(clock, root=tmp_path / "dst")
    client._chunk = 1000
    pipe.pump()
    done = client.send_file({"job": "1-a", "task": 1, "path": "sub/out.bin"}, src)
    pipe.pump(100000)
    assert done.called
    assert (tmp_path / "dst/sub/out.bin").read_bytes() == data
    assert [b["path"] for b, _ in sh.files] == ["sub/out.bin"]
    assert not list((tmp_path / "dst/sub").glob("*.part"))
    assert hashlib.sha256(data).digest()


@pytest.mark.parametrize(
    ("sealed", "digest", "error"),
    [(False, b"\x00" * 32, "SHA-256 mismatch"), (True, hashlib.sha256(b"abc").digest(), "a digest where none was expected")],
)
def test_bad_digest_leaves_nothing_and_reports(tmp_path: Path, sealed: bool, digest: bytes, error: str) -> None:
    # In clear the SHA-256 is the file's check; sealed, every data frame is authenticated and a
    # file_end carrying a digest anyway is refused (a peer of another protocol).
    clock = Clock()
    client, ch, server, sh, pipe = channel_pair(clock, root=tmp_path, client_sealed=sealed, server_sealed=sealed)
    pipe.pump()
    client._write("file_begin", {"s": 7, "job": "1-a", "task": 1, "path": "x.bin", "size": 3})
    client._write_data(b"abc")
    client._write("file_end", {"s": 7, "sha256": digest})
    pipe.pump()
    assert sh.failures and error in sh.failures[0]
    assert list(tmp_path.iterdir()) == []


def test_data_frames_outside_a_file_or_streams_out_of_order_close_the_connection(tmp_path: Path) -> None:
    for misstep in ("data", "second begin", "wrong end"):
        client, ch, server, sh, pipe = channel_pair(Clock(), root=tmp_path / misstep)
        pipe.pump()
        if misstep != "data":
            client._write("file_begin", {"s": 7, "job": "1-a", "task": 1, "path": "x.bin", "size": 3})
        if misstep == "second begin":
            client._write("file_begin", {"s": 8, "job": "1-a", "task": 1, "path": "y.bin", "size": 3})
        elif misstep == "wrong end":
            client._write("file_end", {"s": 8, "sha256": b""})
        else:
            client._write_data(b"abc")
        client.send("start", job="1-a")
        pipe.pump()
        assert server.closed and sh.messages == [], misstep
        assert any(w in sh.closed[0][0] for w in ("outside a file", "before stream 7 ended", "not the open one")), sh.closed


def test_refused_file_keeps_the_connection_and_tells_the_sender(tmp_path: Path) -> None:
    clock = Clock()
    root = tmp_path / "job"
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 5000)
    client, ch, server, sh, pipe = channel_pair(clock, root=root)
    pipe.pump()
    refused = client.send_file({"job": "1-a", "task": 1, "path": "../escape.txt"}, src)
    errors: list[str] = []
    refused.addErrback(lambda f: errors.append(f.getErrorMessage()))
    fine = client.send_file({"job": "1-a", "task": 1, "path": "ok.txt"}, src)
    pipe.pump(100000)
    assert sh.failures and "escapes the job directory" in sh.failures[0]
    assert errors and "escapes the job directory" in errors[0]
    assert fine.called and (root / "ok.txt").read_bytes() == b"x" * 5000
    assert not (tmp_path / "escape.txt").exists()
    assert not server.closed and not client.closed


class ThreadedClock(Clock):
    """A test clock that also accepts calls from threads (queued until ``run_queued``)."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[tuple[object, tuple[object, ...]]] = []
        self.lock = threading.Lock()
        self.wakeup = threading.Event()

    def callFromThread(self, f: object, *args: object) -> None:
        with self.lock:
            self.queued.append((f, args))
        self.wakeup.set()

    def run_queued(self) -> int:
        with self.lock:
            calls, self.queued = self.queued, []
        for f, args in calls:
            f(*args)  # type: ignore[operator]
        return len(calls)


def test_a_slow_disk_pauses_reading_and_memory_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ThreadedClock()
    src = tmp_path / "src.bin"
    data = os.urandom(24 * 1024 * 1024)
    src.write_bytes(data)
    gate = threading.Event()
    real_write = FileSink.write

    def slow_write(self: FileSink, chunk: bytes) -> None:
        gate.wait(10)
        real_write(self, chunk)

    monkeypatch.setattr(FileSink, "write", slow_write)
    client, ch, server, sh, pipe = channel_pair(clock, root=tmp_path / "dst")
    pipe.pump()
    done = client.send_file({"job": "1-a", "task": 1, "path": "big.bin"}, src)
    deadline = time.monotonic() + 20
    while pipe.rt.producerState != "paused":  # the sender's chunks are sealed on its send thread
        assert time.monotonic() < deadline, "the receiver never paused"
        clock.wakeup.wait(0.1)
        clock.wakeup.clear()
        clock.run_queued()
        pipe.pump(50)
    # The disk thread is stuck: the receiver stopped reading after about DISK_HIGH bytes.
    assert DISK_HIGH <= server._disk_bytes <= DISK_HIGH + 2 * 1024 * 1024
    gate.set()
    deadline = time.monotonic() + 20
    while not done.called:
        assert clock.wakeup.wait(deadline - time.monotonic()), "the file never completed"
        clock.wakeup.clear()
        clock.run_queued()
        pipe.pump(50)
    assert (tmp_path / "dst/big.bin").read_bytes() == data
    assert sh.files and server._disk_bytes == 0


@pytest.mark.parametrize("opens", [True, False])
def test_a_message_after_data_frames_is_acted_on_only_once_they_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opens: bool
) -> None:
    # Data frames are opened on the disk thread; the reactor reads on. A message that came after
    # them waits: acted on once they all opened, never if one of them fails.
    clock = ThreadedClock()
    gate = threading.Event()
    real_open = seal.Opener.open_into

    def gated_open(self: seal.Opener, sequence: int, header: bytes, sealed: bytes | memoryview, buffer: bytearray) -> memoryview:
        assert threading.current_thread().name.startswith("sflow-disk")
        gate.wait(10)
        if not opens and sequence == 3:
            raise IntegrityError(f"frame {sequence} failed its integrity check")
        return real_open(self, sequence, header, sealed, buffer)

    monkeypatch.setattr(seal.Opener, "open_into", gated_open)
    client, ch, server, sh, pipe = channel_pair(clock, root=tmp_path / "dst")
    pipe.pump()
    client._chunk = 4096
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(40_000))
    client.send_file({"job": "1-a", "task": 1, "path": "f.bin"}, src)
    client.send("start", job="1-a")

    def settle(until: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 20
        while not until():
            assert time.monotonic() < deadline, "never settled"
            clock.wakeup.wait(0.05)
            clock.wakeup.clear()
            clock.run_queued()
            pipe.pump(50)

    settle(lambda: server._held is not None and not client._outbox and not pipe.lt.value())
    assert sh.messages == [] and server._unopened > 0  # read, but held behind the unopened bytes
    gate.set()
    if opens:
        settle(lambda: bool(sh.messages) and bool(sh.files))
        assert [m["t"] for m in sh.messages] == ["start"] and (tmp_path / "dst/f.bin").read_bytes() == src.read_bytes()
    else:
        settle(lambda: server.closed and server._unopened == 0)
        assert sh.messages == [] and sh.files == [] and "integrity check" in sh.closed[0][0]
        settle(lambda: not list((tmp_path / "dst").glob(".*.part")))
        assert list((tmp_path / "dst").iterdir()) == []


def test_a_peer_of_protocol_version_2_is_refused_by_name() -> None:
    # Version 2 sent files as file_chunk maps and a SHA-256 on sealed channels too.

    handler = RecordingHandler()
    server = Channel("server", SECRET, handler, Clock(), "server")
    transport = StringTransport()
    server.makeConnection(transport)
    body = msgpack.packb({"v": 2, "t": "hello", "nonce": b"n" * 32, "kx": b"k" * 32, "sealed": True}, use_bin_type=True)
    server.dataReceived(HEADER.pack(len(body)) + body)
    assert server.closed and transport.disconnecting and not server.authenticated
    assert b"unsupported protocol version 2 (this side speaks 3)" in transport.value()  # the old peer is told why


def test_a_connection_lost_mid_file_closes_the_file_being_sent(tmp_path: Path) -> None:
    # Chunks are read on the send thread; when the connection drops meanwhile, the sender still
    # closes the file once the reads in flight are back.
    clock = ThreadedClock()
    client, ch, server, sh, pipe = channel_pair(clock, root=tmp_path / "dst")
    pipe.pump()
    client._chunk = 4096
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(1_000_000))

    def open_on_src() -> int:
        return sum(1 for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}") == str(src))

    done = client.send_file({"job": "1-a", "task": 1, "path": "f.bin"}, src)
    errors: list[str] = []
    done.addErrback(lambda f: errors.append(f.getErrorMessage()))
    assert open_on_src() == 1 and client._outbox  # reads in flight on the send thread
    client.connectionLost()
    deadline = time.monotonic() + 20
    while open_on_src():
        assert time.monotonic() < deadline, "the source file stayed open"
        clock.wakeup.wait(0.05)
        clock.wakeup.clear()
        clock.run_queued()
    assert errors and "closed" in errors[0]
