"""IP-chaining and control frames: a 4-byte big-endian length, then a msgpack map.

After the handshake the map is sealed (:mod:`sflow.node.seal`): the length then counts the
encrypted map and its 16-byte tag, and the decoder opens each frame before decoding it.

A file's bytes travel in *data frames*: the top bit of the length (:data:`DATA_FLAG`) is set and
the body is the next piece of the file being streamed in that direction (the one the latest
``file_begin`` opened and no ``file_end`` closed yet), raw or, after the handshake, sealed like any
other frame (the header, flag included, is authenticated). No map, no stream id, no copy of the
bytes into msgpack: the decoder hands a data frame out as :class:`Data` (a view of the received
bytes), and the channel opens and writes it off the reactor thread.

Every map carries ``v`` (the protocol version) and ``t`` (the message type); the other keys follow
one schema per type, checked on receipt by :func:`check_message`. A frame that is too long, not
msgpack, not a map, of another version, of an unknown type or with a wrong field is a
:class:`~sflow.errors.ProtocolError`; the connection that sent it is answered with an ``error``
frame and closed.

This module is pure: the Twisted protocol that moves the bytes is :mod:`sflow.node.channel`.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgpack

from sflow.errors import DecodeError, IntegrityError, ProtocolError

if TYPE_CHECKING:
    from sflow.node.seal import Opener

#: 2: the handshake exchanges ephemeral keys and frames after it are sealed; 3: file bytes travel
#: in data frames, and a sealed channel's ``file_end`` carries no digest (every frame is authenticated)
PROTOCOL_VERSION: Final = 3
HEADER: Final = struct.Struct(">I")
#: Set in a frame's length header: a data frame (the body is file bytes, not a map).
DATA_FLAG: Final = 0x8000_0000
#: Largest frame accepted once a peer is authenticated (a file chunk plus its envelope).
MAX_FRAME: Final = 16 * 1024 * 1024
#: Largest frame accepted before authentication, so that strangers cannot make a node buffer much.
MAX_FRAME_UNAUTHENTICATED: Final = 1024
#: Largest file chunk a sender puts in one frame.
MAX_CHUNK: Final = MAX_FRAME - 4096
#: The authentication tag a sealed frame's body ends with (AES-256-GCM; sflow.node.seal).
TAG_BYTES: Final = 16

Message = Mapping[str, Any]

_INT = (int,)
_NUM = (int, float)
_STR = (str,)
_BYTES = (bytes,)
_BOOL = (bool,)
_LIST = (list,)
_MAP = (dict,)
_NONE = (type(None),)


@dataclass(frozen=True, slots=True)
class Field:
    types: tuple[type, ...]
    required: bool = True


def _f(types: tuple[type, ...], required: bool = True) -> Field:
    return Field(types, required)


# One schema per message type: field name -> allowed Python types after msgpack decoding.
SCHEMAS: Final[Mapping[str, Mapping[str, Field]]] = {
    # authentication (sflow.node.auth)
    # ``kx``: an ephemeral X25519 public key; ``sealed``: whether frames after the handshake are
    # sealed (security.channel_encryption; both ends must agree) (sflow.node.seal)
    "hello": {"nonce": _f(_BYTES), "kx": _f(_BYTES), "sealed": _f(_BOOL)},
    "challenge": {"nonce": _f(_BYTES), "kx": _f(_BYTES), "sealed": _f(_BOOL), "proof": _f(_BYTES)},
    # ``heartbeat``: the seconds between the sender's pings (sflow.node.liveness; absent or 0: none)
    "auth": {"proof": _f(_BYTES), "sealed": _f(_BOOL), "heartbeat": _f(_NUM, required=False)},
    "ready": {"node": _f(_STR), "version": _f(_STR), "heartbeat": _f(_NUM, required=False)},
    "error": {"message": _f(_STR)},
    # a sign of life on an otherwise quiet channel (handled by the channel itself)
    "ping": {},
    # control: delegator -> node
    "status": {},
    "job": {"job": _f(_STR), "plan": _f(_MAP)},
    "start": {"job": _f(_STR)},
    "cancel": {"job": _f(_STR), "reason": _f(_STR)},
    "end_job": {"job": _f(_STR), "keep": _f(_BOOL)},
    # recovery: this node's revised plan, and [task, path, node] files or values ("") to ask for
    "replan": {"job": _f(_STR), "plan": _f(_MAP), "pulls": _f(_LIST)},
    # run a failed function again (in a fresh working directory)
    "retry": {"job": _f(_STR), "task": _f(_INT)},
    # control: node -> delegator
    "status_reply": {
        "node": _f(_STR),
        "version": _f(_STR),
        "pid": _f(_INT),
        "vcpus": _f(_INT),
        "uptime": _f(_NUM),
        "running": _f(_LIST),
        "jobs": _f(_LIST),
        "counters": _f(_MAP),
        # ICN chaining (--mode icn|auto): the chaining mode and the embedded forwarder's address
        "mode": _f(_STR, required=False),
        "icn": _f(_STR, required=False),
        "icn_status": _f(_MAP, required=False),
        # further sections a node adds (NodeService.reports): emulated links' counters, …
        "reports": _f(_MAP, required=False),
    },
    "accepted": {"job": _f(_STR)},
    "rejected": {"job": _f(_STR), "reason": _f(_STR)},
    "started": {"job": _f(_STR), "task": _f(_INT), "vcpu": _f(_STR), "time": _f(_NUM)},
    "done": {
        "job": _f(_STR),
        "task": _f(_INT),
        "started": _f(_NUM),
        "finished": _f(_NUM),
        "where": _f(_STR),
    },
    "failed": {
        "job": _f(_STR),
        "task": _f(_INT),
        "reason": _f(_STR),
        "exit_status": _f(_INT + _NONE),
        "stderr_tail": _f(_STR),
        "started": _f(_NUM, required=False),
        "finished": _f(_NUM, required=False),
        "where": _f(_STR, required=False),
    },
    "job_error": {"job": _f(_STR), "reason": _f(_STR)},
    # a file or value (path "") could not reach a peer node (the delegator decides what follows)
    "send_failed": {"job": _f(_STR), "task": _f(_INT), "path": _f(_STR), "to": _f(_STR), "reason": _f(_STR)},
    # the out_value of an END function
    "result_value": {"job": _f(_STR), "task": _f(_INT), "val": _f(_STR)},
    "replanned": {"job": _f(_STR)},
    # the sender, once the receiver acknowledged a file: when it started sending
    "transferred": {
        "job": _f(_STR),
        "task": _f(_INT),
        "path": _f(_STR),
        "to": _f(_STR),
        "bytes": _f(_INT),
        "started": _f(_NUM),
        "finished": _f(_NUM),
    },
    # the receiver, once it has a file whole and verified (before any function reads it)
    "received": {"job": _f(_STR), "task": _f(_INT), "path": _f(_STR), "bytes": _f(_INT), "time": _f(_NUM)},
    # data: between nodes, and END outputs back to the delegator
    "value": {"job": _f(_STR), "task": _f(_INT), "val": _f(_STR)},
    # node -> node after a re-plan: send me (``node``) this file, or the value when ``path`` is ""
    "want": {"job": _f(_STR), "task": _f(_INT), "path": _f(_STR), "node": _f(_STR)},
    # the file's bytes follow in data frames (DATA_FLAG), then file_end
    "file_begin": {"s": _f(_INT), "job": _f(_STR), "task": _f(_INT), "path": _f(_STR), "size": _f(_INT)},
    # ``sha256``: the file's digest on a clear channel; empty on a sealed one, whose data frames are
    # each authenticated in order (a digest would only repeat that check)
    "file_end": {"s": _f(_INT), "sha256": _f(_BYTES)},
    "file_ack": {"s": _f(_INT), "ok": _f(_BOOL), "error": _f(_STR)},
}


def encode(msg_type: str, fields: Mapping[str, Any]) -> bytes:
    """One clear frame: header + msgpack map."""
    payload = encode_body(msg_type, fields)
    return HEADER.pack(len(payload)) + payload


def data_header(size: int) -> bytes:
    """The length header of a data frame whose body is ``size`` bytes."""
    if size >= DATA_FLAG:
        raise ProtocolError(f"a data frame of {size} bytes")
    return HEADER.pack(DATA_FLAG | size)


def encode_body(msg_type: str, fields: Mapping[str, Any]) -> bytes:
    """A frame's msgpack map. Checks the message against its schema (a programming error
    otherwise, reported as ProtocolError so that it never goes out malformed)."""
    body = {"v": PROTOCOL_VERSION, "t": msg_type, **fields}
    check_message(body)
    return msgpack.packb(body, use_bin_type=True)


def check_message(msg: Any) -> Message:
    """Validate a decoded frame against its type's schema; returns it or raises ProtocolError."""
    if not isinstance(msg, dict):
        raise ProtocolError(f"a frame must hold a map, found {type(msg).__name__}")
    version = msg.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {version!r} (this side speaks {PROTOCOL_VERSION})")
    msg_type = msg.get("t")
    if not isinstance(msg_type, str) or msg_type not in SCHEMAS:
        raise ProtocolError(f"unknown message type {msg_type!r}")
    schema = SCHEMAS[msg_type]
    for name, spec in schema.items():
        if name not in msg:
            if spec.required:
                raise ProtocolError(f"{msg_type}: missing field {name!r}")
            continue
        value = msg[name]
        if isinstance(value, bool) and bool not in spec.types:
            raise ProtocolError(f"{msg_type}.{name}: expected {_names(spec.types)}, found a boolean")
        if not isinstance(value, spec.types):
            raise ProtocolError(f"{msg_type}.{name}: expected {_names(spec.types)}, found {type(value).__name__}")
    extra = set(msg) - set(schema) - {"v", "t"}
    if extra:
        raise ProtocolError(f"{msg_type}: unexpected fields {sorted(extra)}")
    return msg


def _names(types: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


@dataclass(frozen=True, slots=True)
class Data:
    """A data frame: the next bytes of the file being received, as they came off the wire.

    ``body`` is a view of the received bytes (valid as long as it is referenced). On a sealed
    channel it is still sealed: ``sequence`` is the number the decoder reserved for it, and the
    owner opens it (:meth:`~sflow.node.seal.Opener.open_at`) before using a byte of it; in clear
    ``sequence`` is None."""

    header: bytes
    body: memoryview
    sequence: int | None

    @property
    def size(self) -> int:
        """How many file bytes the frame carries."""
        return len(self.body) - (0 if self.sequence is None else TAG_BYTES)


class FrameDecoder:
    """Accumulates bytes in any chunking and yields whole, validated frames.

    ``limit`` is the largest frame accepted; the owner lowers or raises it (before and after
    authentication). Memory is bounded by ``limit`` plus what one ``feed`` call brings. Once the
    owner sets ``opener`` (after the handshake), every message frame is opened with it before
    decoding, and every data frame gets the next sequence number for the owner to open it with.

    Received pieces are kept as they came: a frame that lies within one piece is handed out as a
    view of it, without a copy; only frames that straddle pieces are joined.
    """

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self.limit = limit
        self.opener: Opener | None = None
        self._pieces: deque[memoryview] = deque()
        self._buffered = 0

    def feed(self, data: bytes) -> None:
        """Buffer received bytes; take frames out with :meth:`next_frame`."""
        if data:
            self._pieces.append(memoryview(data).cast("B"))
            self._buffered += len(data)

    def next_message(self) -> Message | None:
        """The next message, for peers that never receive files (a data frame is a ProtocolError)."""
        frame = self.next_frame()
        if isinstance(frame, Data):
            raise ProtocolError("unexpected data frame")
        return frame

    def next_frame(self) -> Message | Data | None:
        """The next complete frame: a validated message or a :class:`Data` frame; None when no
        whole frame is buffered yet.

        Taking one frame at a time lets the owner change ``limit`` between frames (after
        authentication). Raises DecodeError/ProtocolError on a bad frame (IntegrityError, a
        ProtocolError, on a sealed message that fails its check)."""
        if self._buffered < HEADER.size:
            return None
        header = bytes(self._peek(HEADER.size))
        (word,) = HEADER.unpack(header)
        length = word & ~DATA_FLAG
        if length > self.limit:
            raise DecodeError(f"frame of {length} bytes exceeds the limit of {self.limit}")
        if self._buffered < HEADER.size + length:
            return None
        self._take(HEADER.size)
        body = self._take(length)
        if word & DATA_FLAG:
            if length <= (0 if self.opener is None else TAG_BYTES):
                raise DecodeError(f"a data frame of {length} bytes carries no data")
            return Data(header, body, None if self.opener is None else self.opener.reserve())
        raw = _unpack(body) if self.opener is None else self._open(header, body)
        return check_message(raw)

    def _peek(self, n: int) -> memoryview:
        first = self._pieces[0]
        if len(first) >= n:
            return first[:n]
        out = bytearray()
        for piece in self._pieces:
            out += piece[: n - len(out)]
            if len(out) == n:
                break
        return memoryview(out)

    def _take(self, n: int) -> memoryview:
        """The next ``n`` buffered bytes (a view of one piece when they lie in one)."""
        if n == 0:
            return memoryview(b"")
        self._buffered -= n
        pieces = self._pieces
        first = pieces[0]
        if len(first) >= n:
            if len(first) == n:
                pieces.popleft()
            else:
                pieces[0] = first[n:]
            return first[:n]
        parts = []
        filled = 0
        while filled < n:
            piece = pieces.popleft()
            take = min(len(piece), n - filled)
            parts.append(piece[:take])
            filled += take
            if take < len(piece):
                pieces.appendleft(piece[take:])
        return memoryview(b"".join(parts))  # one copy, nothing zeroed first

    def _open(self, header: bytes, sealed: memoryview) -> Any:
        assert self.opener is not None
        sequence = self.opener.reserve()
        try:
            return _unpack(self.opener.open_at(sequence, header, sealed))
        except IntegrityError:
            # A peer that refused this side's proof answers with a clear ``error`` (it has no keys):
            # accepted as the first frame only, and it can do nothing but close the connection.
            if sequence == 0:
                try:
                    raw = _unpack(sealed)
                except DecodeError:
                    raw = None
                if isinstance(raw, dict) and raw.get("t") == "error":
                    return raw
            raise

    @property
    def buffered(self) -> int:
        return self._buffered


def _unpack(body: bytes | memoryview) -> Any:
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError) as exc:
        raise DecodeError(f"frame is not valid msgpack: {exc}") from None
