"""Sealed channels: what an on-path attacker sees and what changing or replaying bytes does."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.task import Clock

from sflow.errors import IntegrityError
from sflow.node import seal
from sflow.node.protocol import DATA_FLAG, HEADER

from node_fakes import SECRET, channel_pair

MARK = b"sentinel-7f3a-command"


def _keys(role: str, exchange: object, mine: bytes, theirs: bytes, nonces: tuple[bytes, bytes]) -> seal.SessionKeys:
    client_kx, server_kx = (mine, theirs) if role == "client" else (theirs, mine)
    return seal.session_keys(role, SECRET, exchange, nonces[0], nonces[1], client_kx, server_kx)  # type: ignore[arg-type]


def test_session_keys_pair_up_per_direction_and_differ_per_session() -> None:
    c, s = seal.new_exchange(), seal.new_exchange()
    ckx, skx = seal.public_bytes(c), seal.public_bytes(s)
    nonces = (b"c" * 32, b"s" * 32)
    client, server = _keys("client", c, ckx, skx, nonces), _keys("server", s, skx, ckx, nonces)
    assert client.send == server.receive and client.receive == server.send and client.send != client.receive
    other = _keys("client", c, ckx, skx, (b"d" * 32, b"s" * 32))
    assert other.send != client.send  # fresh nonces: fresh keys
    wrong = seal.session_keys("server", b"w" * 32, s, *nonces, ckx, skx)
    assert wrong.receive != client.send
    with pytest.raises(Exception, match="key-exchange value"):
        seal.session_keys("client", SECRET, c, *nonces, ckx, b"short")


def test_sealer_and_opener_refuse_a_changed_replayed_or_reordered_frame() -> None:
    key = b"k" * 32
    sealer, opener = seal.Sealer(key), seal.Opener(key)
    header = HEADER.pack(5 + seal.TAG_BYTES)
    first, second = sealer.seal(header, b"hello"), sealer.seal(header, b"world")
    assert b"hello" not in first
    with pytest.raises(IntegrityError, match="frame 0"):
        opener.open(header, second)  # reordered
    assert opener.open(header, first) == b"hello"
    with pytest.raises(IntegrityError):
        opener.open(header, first)  # replayed
    flipped = bytearray(second)
    flipped[2] ^= 1
    with pytest.raises(IntegrityError):
        opener.open(header, bytes(flipped))
    with pytest.raises(IntegrityError):
        opener.open(HEADER.pack(99), second)  # the header is covered too
    assert opener.open(header, second) == b"world"


def test_frames_after_the_handshake_are_unreadable_on_the_wire() -> None:
    client, ch, server, sh, pipe = channel_pair(Clock())
    pipe.pump()
    client.send("job", job="1-a", plan={"cmd": MARK.decode()})
    wire = pipe.lt.value()
    assert wire and MARK not in wire
    pipe.pump()
    assert [m["plan"]["cmd"] for m in sh.messages] == [MARK.decode()]
    # The same message in clear (channel_encryption off on both sides) would show: the check can fail.
    client, ch, server, sh, pipe = channel_pair(Clock(), client_sealed=False, server_sealed=False)
    pipe.pump()
    client.send("job", job="1-a", plan={"cmd": MARK.decode()})
    assert MARK in pipe.lt.value()


@pytest.mark.parametrize("offset", [0, 3, 4, 20, -1])
def test_one_flipped_byte_closes_the_connection_and_delivers_nothing(offset: int) -> None:
    client, ch, server, sh, pipe = channel_pair(Clock())
    pipe.pump()
    client.send("start", job="1-a")
    wire = bytearray(pipe.lt.value())
    wire[offset] ^= 0x01
    pipe.lt.clear()
    pipe.lt.write(bytes(wire))
    pipe.pump()
    # (a longer length makes the receiver wait for more: the next frame completes the bad one)
    client.send("start", job="1-b")
    pipe.pump()
    assert sh.messages == []
    assert server.closed and sh.closed and sh.closed[0][1] is True
    reason = sh.closed[0][0]
    assert "integrity check" in reason or "exceeds the limit" in reason or "frame" in reason


def test_a_replayed_frame_closes_the_connection() -> None:
    client, ch, server, sh, pipe = channel_pair(Clock())
    pipe.pump()
    client.send("start", job="1-a")
    frame = pipe.lt.value()
    pipe.pump()
    assert len(sh.messages) == 1
    pipe.lt.write(frame)  # the same bytes again
    pipe.pump()
    assert len(sh.messages) == 1 and "integrity check" in sh.closed[0][0]


def test_a_file_is_sealed_too(tmp_path: Path) -> None:
    client, ch, server, sh, pipe = channel_pair(Clock(), root=tmp_path / "dst")
    pipe.pump()
    src = tmp_path / "src.bin"
    src.write_bytes(MARK * 1000)
    wire = bytearray()
    original = pipe.lt.writeSequence

    def tap(parts: list[bytes]) -> None:
        wire.extend(b"".join(parts))
        original(parts)

    pipe.lt.writeSequence = tap  # type: ignore[method-assign]
    done = client.send_file({"job": "1-a", "task": 1, "path": "f.bin"}, src)
    pipe.pump(1000)
    assert done.called and (tmp_path / "dst/f.bin").read_bytes() == MARK * 1000
    assert wire and MARK not in wire


def test_encryption_settings_must_agree() -> None:
    client, ch, server, sh, pipe = channel_pair(Clock(), client_sealed=False)
    pipe.pump()
    assert not server.authenticated and sh.messages == []
    assert "channel_encryption" in sh.closed[0][0] and "channel_encryption" in ch.closed[0][0]
    client.ready.addErrback(lambda f: None)


def test_a_changed_handshake_term_is_refused_and_the_client_learns_why() -> None:
    # The auth frame's announced terms are covered by its proof: an attacker turning the client's
    # ``sealed`` off is refused. The server answers in clear (it has no keys): the client, expecting
    # a sealed ``ready``, still reads that error as its first frame.
    client, ch, server, sh, pipe = channel_pair(Clock())
    server.dataReceived(pipe.lt.value())  # hello
    pipe.lt.clear()
    client.dataReceived(pipe.rt.value())  # challenge
    pipe.rt.clear()
    auth_frame = bytearray(pipe.lt.value())
    pipe.lt.clear()
    assert auth_frame[-1] == 0xC3  # ... "sealed": true, the map's last value
    auth_frame[-1] = 0xC2
    server.dataReceived(bytes(auth_frame))
    pipe.pump()
    assert not server.authenticated and sh.messages == [] and sh.ready == []
    assert "the client does not hold the cluster secret" in sh.closed[0][0]
    assert "peer reported: the client does not hold the cluster secret" in ch.closed[0][0]
    client.ready.addErrback(lambda f: None)


def test_a_changed_or_replayed_data_frame_drops_the_connection_writes_nothing_and_what_follows_is_not_acted_on(
    tmp_path: Path,
) -> None:
    # The file's bytes are opened on the disk thread; a message after them waits for them to open.
    for attack in ("flip", "replay", "drop"):
        root = tmp_path / attack
        client, ch, server, sh, pipe = channel_pair(Clock(), root=root)
        pipe.pump()
        client._chunk = 1000
        src = tmp_path / "src.bin"
        src.write_bytes(MARK * 300)
        client.send_file({"job": "1-a", "task": 1, "path": "f.bin"}, src)
        client.send("start", job="1-a")
        wire = bytearray(pipe.lt.value())
        pipe.lt.clear()
        frames, at = [], 0
        while at < len(wire):
            (word,) = HEADER.unpack_from(wire, at)
            end = at + HEADER.size + (word & ~DATA_FLAG)
            frames.append(bytes(wire[at:end]))
            at = end
        data = [i for i, f in enumerate(frames) if HEADER.unpack_from(f)[0] & DATA_FLAG]
        assert len(data) == 7  # file_begin, 7 data frames, file_end, start
        middle = data[3]
        if attack == "flip":
            changed = bytearray(frames[middle])
            changed[HEADER.size + 10] ^= 0x01
            frames[middle] = bytes(changed)
        elif attack == "replay":
            frames.insert(middle + 1, frames[middle])
        else:
            del frames[middle]
        pipe.lt.write(b"".join(frames))
        pipe.pump()
        assert server.closed and "integrity check" in sh.closed[0][0], (attack, sh.closed)
        assert sh.messages == [] and sh.files == [], attack
        assert not root.exists() or list(root.rglob("*")) == [], attack
