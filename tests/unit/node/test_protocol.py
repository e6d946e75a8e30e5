"""Frames: any chunking decodes the same; every malformed frame is a ProtocolError."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sflow.errors import ProtocolError
from sflow.node.protocol import HEADER, PROTOCOL_VERSION, FrameDecoder, Message, check_message, encode

MESSAGES: list[tuple[str, dict[str, object]]] = [
    ("status", {}),
    ("start", {"job": "1-abc"}),
    ("file_chunk", {"s": 3, "d": bytes(range(256)) * 40}),
    ("failed", {"job": "1-abc", "task": 4, "reason": "exit", "exit_status": None, "stderr_tail": "é\n"}),
    ("done", {"job": "1-abc", "task": 4, "started": 1.5, "finished": 2, "where": "native"}),
]


def decode_all(decoder: FrameDecoder) -> list[Message]:
    out = []
    while (msg := decoder.next_message()) is not None:
        out.append(msg)
    return out


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=20000), max_size=30))
def test_any_chunking_yields_the_same_messages(cuts: list[int]) -> None:
    stream = b"".join(encode(t, f) for t, f in MESSAGES)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    decoder = FrameDecoder()
    got: list[Message] = []
    prev = 0
    for p in points + [len(stream)]:
        decoder.feed(stream[prev:p])
        got.extend(decode_all(decoder))
        prev = p
    assert [m["t"] for m in got] == [t for t, _ in MESSAGES]
    assert got[2]["d"] == MESSAGES[2][1]["d"]
    assert decoder.buffered == 0


def raw_frame(obj: object) -> bytes:
    payload = msgpack.packb(obj, use_bin_type=True)
    return HEADER.pack(len(payload)) + payload


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (raw_frame([1, 2]), "must hold a map"),
        (raw_frame({"v": 99, "t": "status"}), "unsupported protocol version"),
        (raw_frame({"v": PROTOCOL_VERSION, "t": "rm -rf"}), "unknown message type"),
        (raw_frame({"v": PROTOCOL_VERSION, "t": "start"}), "missing field 'job'"),
        (raw_frame({"v": PROTOCOL_VERSION, "t": "start", "job": 5}), "expected str"),
        (raw_frame({"v": PROTOCOL_VERSION, "t": "file_ack", "s": 1, "ok": 1, "error": ""}), "expected bool"),
        (raw_frame({"v": PROTOCOL_VERSION, "t": "file_begin", "s": True, "job": "j", "task": 1, "path": "p", "size": 1}), "found a boolean"),
        (raw_frame({"v": PROTOCOL_VERSION, "t": "start", "job": "j", "x": 1}), "unexpected fields"),
        (HEADER.pack(3) + b"\xc1\xc1\xc1", "not valid msgpack"),
        (HEADER.pack(2**31), "exceeds the limit"),
    ],
)
def test_malformed_frames_are_protocol_errors(frame: bytes, error: str) -> None:
    decoder = FrameDecoder()
    decoder.feed(frame)
    with pytest.raises(ProtocolError, match=error):
        decoder.next_message()


def test_limit_applies_before_the_whole_frame_arrives() -> None:
    decoder = FrameDecoder(limit=1024)
    decoder.feed(HEADER.pack(4096))  # only the header: refused without waiting for 4 KB
    with pytest.raises(ProtocolError, match="exceeds"):
        decoder.next_message()


def test_encode_refuses_a_malformed_message() -> None:
    with pytest.raises(ProtocolError):
        encode("start", {})
    with pytest.raises(ProtocolError):
        check_message({"v": PROTOCOL_VERSION, "t": "hello", "nonce": "text"})
