"""Flow control of the file sender and the receiver's checks."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from sflow.node.transfer import Emit, FileSender, FileSink, Sent, TransferError, safe_target


class SlowTransport:
    """Buffers writes; says "pause" past ``limit`` bytes, as a Twisted transport does."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = bytearray()
        self.producer: FileSender | None = None
        self.peak = 0

    def registerProducer(self, producer: FileSender, streaming: bool) -> None:
        assert streaming
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.buffer += data
        self.peak = max(self.peak, len(self.buffer))
        if len(self.buffer) > self.limit and self.producer is not None:
            self.producer.pauseProducing()

    def drain(self) -> bytes:
        out = bytes(self.buffer)
        self.buffer.clear()
        if self.producer is not None:
            self.producer.resumeProducing()
        return out


def inline_emit(transport: SlowTransport) -> Emit:
    """Frames made at once and written in place (what the channel does without threads)."""

    def emit(make: Callable[[], list[bytes] | None], then: Callable[[BaseException | None], None]) -> None:
        for part in make() or []:
            transport.write(part)
        then(None)

    return emit


def test_sender_never_buffers_more_than_a_chunk_past_the_limit() -> None:
    data = os.urandom(1_000_000)
    transport = SlowTransport(limit=65536)
    ended: list[Sent] = []
    sender = FileSender(
        transport, io.BytesIO(data), len(data), 16384, lambda d: [bytes(d)], inline_emit(transport), ended.append, pytest.fail  # type: ignore[arg-type]
    )
    sender.begin()
    received = bytearray()
    rounds = 0
    while not ended:
        received += transport.drain()
        rounds += 1
    received += transport.drain()
    assert bytes(received) == data
    assert ended == [Sent(len(data), hashlib.sha256(data).digest())]
    assert transport.peak <= 65536 + 16384
    assert rounds > 10  # it really waited for the slow side


def test_sender_keeps_a_bounded_read_ahead_in_order_and_reads_no_more_than_the_size() -> None:
    # Frames made later (on a send thread): at most ``ahead`` chunks are out at once, they are
    # written in order, a reused read buffer is safe (the frame copies it), and a file that grew
    # after its size was taken is sent at that size.
    data = os.urandom(100_000)
    transport = SlowTransport(limit=10**9)
    waiting: list[tuple[Callable[[], list[bytes] | None], Callable[[BaseException | None], None]]] = []
    ended: list[Sent] = []
    sender = FileSender(
        transport,  # type: ignore[arg-type]
        io.BytesIO(data + b"grown"), len(data), 4096, lambda d: [bytes(d)], lambda make, then: waiting.append((make, then)),
        ended.append, pytest.fail, digest=False, reuse=True, ahead=3,
    )
    sender.begin()
    most = 0
    while waiting:
        most = max(most, len(waiting))
        make, then = waiting.pop(0)
        for part in make() or []:
            transport.write(part)
        then(None)
    assert most == 3
    assert bytes(transport.buffer) == data and ended == [Sent(len(data), b"")]


def test_sink_refuses_more_bytes_than_announced(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, "a/b.txt", 2)
    with pytest.raises(TransferError, match="more bytes"):
        sink.count(3)
    sink.abort()
    assert list((tmp_path / "a").iterdir()) == []


def test_sink_short_file_fails(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, "b.txt", 5)
    sink.count(2)
    sink.write(b"ab")
    with pytest.raises(TransferError, match="received 2 bytes of 5"):
        sink.finish(hashlib.sha256(b"ab").digest())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../x", "", "~/x"])
def test_unsafe_paths(tmp_path: Path, path: str) -> None:
    with pytest.raises(TransferError):
        FileSink(tmp_path / "job", path, 1)
    assert not (tmp_path / "x").exists()


def test_symlink_out_of_the_job_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "job"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(TransferError, match="symbolic link"):
        safe_target(root, "link/file.txt")
    (root / "file-link").symlink_to(tmp_path / "outside" / "f")
    with pytest.raises(TransferError, match="symbolic link"):
        safe_target(root, "file-link")
