"""Frames: any chunking decodes the same; every malformed frame is a ProtocolError."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sflow.errors import ProtocolError
from sflow.node import seal
from sflow.node.protocol import HEADER, PROTOCOL_VERSION, Data, FrameDecoder, Message, check_message, data_header, encode

MESSAGES: list[tuple[str, dict[str, object]]] = [
    ("status", {}),
    ("start", {"job": "1-abc"}),
    ("file_begin", {"s": 3, "job": "1-abc", "task": 4, "path": "out.bin", "size": 10240}),
    ("failed", {"job": "1-abc", "task": 4, "reason": "exit", "exit_status": None, "stderr_tail": "é\n"}),
    ("done", {"job": "1-abc", "task": 4, "started": 1.5, "finished": 2, "where": "native"}),
]


FILE = bytes(range(256)) * 40


def decode_all(decoder: FrameDecoder) -> list[Message | Data]:
    out: list[Message | Data] = []
    while (frame := decoder.next_frame()) is not None:
        out.append(frame)
    return out


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=20000), max_size=30))
def test_any_chunking_yields_the_same_messages(cuts: list[int]) -> None:
    frames = [encode(t, f) for t, f in MESSAGES]
    frames.insert(3, data_header(len(FILE)) + FILE)
    stream = b"".join(frames)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    decoder = FrameDecoder()
    got: list[Message | Data] = []
    prev = 0
    for p in points + [len(stream)]:
        decoder.feed(stream[prev:p])
        got.extend(decode_all(decoder))
        prev = p
    kinds = ["data" if isinstance(m, Data) else m["t"] for m in got]
    assert kinds == [t for t, _ in MESSAGES[:3]] + ["data"] + [t for t, _ in MESSAGES[3:]]
    data = got[3]
    assert isinstance(data, Data) and bytes(data.body) == FILE and data.size == len(FILE) and data.sequence is None
    assert decoder.buffered == 0


def test_a_data_frame_within_one_read_is_a_view_of_it_and_sealed_ones_get_their_sequence() -> None:
    decoder = FrameDecoder()
    received = encode("start", {"job": "1-a"}) + data_header(len(FILE)) + FILE
    decoder.feed(received)
    assert decoder.next_message() == {"v": PROTOCOL_VERSION, "t": "start", "job": "1-a"}
    data = decoder.next_frame()
    assert isinstance(data, Data) and data.body.obj is received  # no copy
    sealer, opener = seal.Sealer(b"k" * 32), seal.Opener(b"k" * 32)
    decoder = FrameDecoder()
    decoder.opener = opener
    decoder.feed(b"".join(sealer.frame(encode("start", {"job": "1-a"})[4:]) + sealer.data_frame(FILE)))
    assert decoder.next_frame() == {"v": PROTOCOL_VERSION, "t": "start", "job": "1-a"}
    data = decoder.next_frame()
    assert isinstance(data, Data) and data.sequence == 1 and data.size == len(FILE) and FILE not in bytes(data.body)
    assert opener.open_at(1, data.header, data.body) == FILE
    with pytest.raises(ProtocolError, match="unexpected data frame"):
        decoder.feed(b"".join(sealer.data_frame(b"x")))
        decoder.next_message()


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
        (HEADER.pack(2**31 - 1), "exceeds the limit"),
        (data_header(2**30), "exceeds the limit"),
        (data_header(0), "carries no data"),
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
