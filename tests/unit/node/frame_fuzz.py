"""Fuzz targets for the frame decoder and the channel, shared by the hypothesis tests in CI and the
long run (tests/fuzz/fuzz_frames.py). Each feeds hostile bytes in any chunking and checks: no
exception but a ProtocolError from the decoder, none at all out of a channel, nothing but the
untouched leading frames reaches the handler, and the bytes held stay under the frame limit."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from sflow.errors import ProtocolError
from sflow.node.channel import Channel
from sflow.node.protocol import (
    DATA_FLAG,
    HEADER,
    MAX_FRAME,
    MAX_FRAME_UNAUTHENTICATED,
    PROTOCOL_VERSION,
    Data,
    FrameDecoder,
    Message,
    data_header,
    encode,
)

from node_fakes import Pipe, RecordingHandler, channel_pair


def pieces(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``data`` split at the given offsets (any chunking a socket could deliver)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])] or [b""]


def decode_stream(data: bytes, cuts: Sequence[int], limit: int = MAX_FRAME_UNAUTHENTICATED) -> list[Message | Data]:
    decoder = FrameDecoder(limit)
    out: list[Message | Data] = []
    for piece in pieces(data, cuts):
        decoder.feed(piece)
        while True:
            try:
                msg = decoder.next_frame()
            except ProtocolError:
                return out
            if msg is None:
                break
            out.append(msg)
        assert decoder.buffered < HEADER.size + limit, decoder.buffered
    return out


def valid_stream() -> bytes:
    return b"".join((
        encode("hello", {"nonce": b"n" * 32, "kx": b"k" * 32, "sealed": True}),
        encode("start", {"job": "1-a"}),
        data_header(100) + b"x" * 100,
        encode("error", {"message": "m"}),
    ))


def mutate(data: bytes, rng: random.Random, edits: int) -> bytes:
    """Flip, insert, delete or duplicate a few bytes or runs."""
    out = bytearray(data)
    for _ in range(edits):
        op = rng.randrange(5)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        elif op == 2 and out:
            del out[at : at + rng.randrange(1, 8)]
        elif op == 3:
            out[at:at] = out[max(0, at - 40) : at]
        else:
            out[at:at] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xdf\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff"])
    return bytes(out)


def feed_stranger(data: bytes, cuts: Sequence[int]) -> None:
    """Bytes from a peer that has not authenticated, into a server channel."""
    handler = RecordingHandler()
    server = Channel("server", b"s" * 32, handler, Clock(), "server")
    server.makeConnection(StringTransport())
    largest = 0
    for piece in pieces(data, cuts):
        server.dataReceived(piece)
        largest = max(largest, len(piece))
        # at most an unfinished frame and one read (a closed channel reads no more)
        assert server._decoder.buffered < HEADER.size + MAX_FRAME_UNAUTHENTICATED + largest
    assert handler.messages == [] and handler.ready == [] and not server.authenticated


def feed_sealed(seed: int, edits: int, cuts: Sequence[int]) -> None:
    """An authenticated pair; the client's next sealed frames, mutated, reach the server: nothing
    gets to its handler but the frames left untouched before the first change, and the channel
    never raises."""
    with tempfile.TemporaryDirectory(prefix="sflow-fuzz-") as root:
        _feed_sealed(Path(root), seed, edits, cuts)


#: what the client sends in feed_sealed, frame by frame; "file" is file_begin, its data frames, file_end
SEALED_SCRIPT = ("start", "file", "cancel", "value")
FILE = bytes(range(256)) * 3


def _feed_sealed(root: Path, seed: int, edits: int, cuts: Sequence[int]) -> None:
    client, _, server, handler, pipe = channel_pair(Clock(), root=root)
    pipe.pump()
    assert server.authenticated
    client._chunk = 300
    client.send("start", job="1-a")
    client._write("file_begin", {"s": 1, "job": "1-a", "task": 1, "path": "f.bin", "size": len(FILE)})
    for at in range(0, len(FILE), 300):
        client._write_data(FILE[at : at + 300])
    client._write("file_end", {"s": 1, "sha256": b""})
    file_frames = 2 + (len(FILE) + 299) // 300
    client.send("cancel", job="1-a", reason="r" * 50)
    client.send("value", job="1-a", task=2, val="v" * 200)
    wire = pipe.lt.value()
    pipe.lt.clear()
    data = mutate(wire, random.Random(seed), edits)
    sent = [{"v": PROTOCOL_VERSION, "t": "start", "job": "1-a"}]
    # frames wholly before the first changed byte may arrive; the first changed one never does
    first_change = next((i for i, (a, b) in enumerate(zip(wire, data)) if a != b), min(len(wire), len(data)))
    intact = 0
    at = 0
    while at + HEADER.size <= first_change:
        (length,) = HEADER.unpack_from(wire, at)
        length &= ~DATA_FLAG
        if at + HEADER.size + length > first_change:
            break
        at += HEADER.size + length
        intact += 1
    for piece in pieces(data, cuts):
        if server.closed:
            break
        server.dataReceived(piece)
    assert len(handler.messages) <= intact, (handler.messages, intact)
    assert handler.messages[:1] == sent[: len(handler.messages[:1])]
    assert server._decoder.buffered < HEADER.size + MAX_FRAME + len(data)
    # the file arrives whole, or nothing of it is left: only if every one of its frames was intact
    if handler.files:
        assert intact >= 1 + file_frames and (root / "f.bin").read_bytes() == FILE
    server.connectionLost()  # the connection ends (closed by the server, or after this)
    assert [p.name for p in root.iterdir()] == (["f.bin"] if handler.files else [])


__all__ = ["Pipe", "decode_stream", "feed_sealed", "feed_stranger", "mutate", "pieces", "valid_stream"]
