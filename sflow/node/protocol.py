"""IP-chaining and control frames: a 4-byte big-endian length, then a msgpack map.

Every map carries ``v`` (the protocol version) and ``t`` (the message type); the other keys follow
one schema per type, checked on receipt by :func:`check_message`. A frame that is too long, not
msgpack, not a map, of another version, of an unknown type or with a wrong field is a
:class:`~sflow.errors.ProtocolError`; the connection that sent it is answered with an ``error``
frame and closed.

This module is pure: the Twisted protocol that moves the bytes is :mod:`sflow.node.channel`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgpack

from sflow.errors import DecodeError, ProtocolError

PROTOCOL_VERSION: Final = 1
HEADER: Final = struct.Struct(">I")
#: Largest frame accepted once a peer is authenticated (a file chunk plus its envelope).
MAX_FRAME: Final = 16 * 1024 * 1024
#: Largest frame accepted before authentication, so that strangers cannot make a node buffer much.
MAX_FRAME_UNAUTHENTICATED: Final = 1024
#: Largest file chunk a sender puts in one frame.
MAX_CHUNK: Final = MAX_FRAME - 4096

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
    "hello": {"nonce": _f(_BYTES)},
    "challenge": {"nonce": _f(_BYTES), "proof": _f(_BYTES)},
    # ``heartbeat``: the seconds between the sender's pings (sflow.node.liveness; absent or 0: none)
    "auth": {"proof": _f(_BYTES), "heartbeat": _f(_NUM, required=False)},
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
    "file_begin": {"s": _f(_INT), "job": _f(_STR), "task": _f(_INT), "path": _f(_STR), "size": _f(_INT)},
    "file_chunk": {"s": _f(_INT), "d": _f(_BYTES)},
    "file_end": {"s": _f(_INT), "sha256": _f(_BYTES)},
    "file_ack": {"s": _f(_INT), "ok": _f(_BOOL), "error": _f(_STR)},
}


def encode(msg_type: str, fields: Mapping[str, Any]) -> bytes:
    """One frame: header + msgpack map. Checks the message against its schema (a programming error
    otherwise, reported as ProtocolError so that it never goes out malformed)."""
    body = {"v": PROTOCOL_VERSION, "t": msg_type, **fields}
    check_message(body)
    payload = msgpack.packb(body, use_bin_type=True)
    return HEADER.pack(len(payload)) + payload


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


class FrameDecoder:
    """Accumulates bytes in any chunking and yields whole, validated messages.

    ``limit`` is the largest frame accepted; the owner lowers or raises it (before and after
    authentication). Memory is bounded by ``limit`` plus what one ``feed`` call brings.
    """

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self.limit = limit
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        """Buffer received bytes; take messages out with :meth:`next_message`."""
        self._buf += data

    def next_message(self) -> Message | None:
        """The next complete, validated message, or None when no whole frame is buffered yet.

        Taking one message at a time lets the owner change ``limit`` between frames (after
        authentication). Raises DecodeError/ProtocolError on a bad frame."""
        buf = self._buf
        if len(buf) < HEADER.size:
            return None
        (length,) = HEADER.unpack_from(buf)
        if length > self.limit:
            raise DecodeError(f"frame of {length} bytes exceeds the limit of {self.limit}")
        end = HEADER.size + length
        if len(buf) < end:
            return None
        try:
            raw = msgpack.unpackb(memoryview(buf)[HEADER.size : end], raw=False, strict_map_key=True)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError) as exc:
            raise DecodeError(f"frame is not valid msgpack: {exc}") from None
        del buf[:end]
        return check_message(raw)

    @property
    def buffered(self) -> int:
        return len(self._buf)
