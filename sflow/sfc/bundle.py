"""Encodings of what travels as Data content (pure): a function's result bundle and the status
answers to compute Interests.

A **bundle** is the declared output files of one function, as a msgpack array
``[1, [[path, bytes], ...]]`` sorted by path: the same files always encode to the same bytes, so
its version component (derived from its SHA-256) is the same wherever it is computed, and
segments of two executions can never be mixed.

A **status** is a msgpack map answering a compute Interest: ``ready`` (with the result's version
and segment count, and the result itself when it is small: :data:`INLINE_LIMIT`), ``running`` (with the seconds it has run and when to ask again), ``failed``
(with the reason), or ``unknown`` (the node was never told about this function).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgpack

from sflow.errors import DecodeError
from sflow.model.paths import UnsafePath, job_relative

BUNDLE_FORMAT = 1

READY = "ready"
RUNNING = "running"
FAILED = "failed"
UNKNOWN = "unknown"
STATES = (READY, RUNNING, FAILED, UNKNOWN)

#: a ready status carries the result bundle itself up to this many octets, so that the consumer
#: need not fetch it (one round trip less per function); the whole status stays far below the
#: 8800-octet packet limit with the compute Interest's name and the signature around it
INLINE_LIMIT = 4096


def encode_bundle(files: dict[str, bytes]) -> bytes:
    return msgpack.packb([BUNDLE_FORMAT, [[p, files[p]] for p in sorted(files)]], use_bin_type=True)


def decode_bundle(content: bytes) -> dict[str, bytes]:
    """The files of a bundle; paths are checked to stay inside a job directory."""
    try:
        raw = msgpack.unpackb(content, raw=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise DecodeError(f"result bundle: not msgpack: {exc}") from None
    if not (isinstance(raw, list) and len(raw) == 2 and raw[0] == BUNDLE_FORMAT and isinstance(raw[1], list)):
        raise DecodeError("result bundle: expected [1, [[path, bytes], ...]]")
    out: dict[str, bytes] = {}
    for item in raw[1]:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], bytes)):
            raise DecodeError("result bundle: expected [path, bytes] entries")
        try:
            path = job_relative(item[0])
        except UnsafePath as exc:
            raise DecodeError(f"result bundle: {exc}") from None
        out[path] = item[1]
    return out


def bundle_version(content: bytes) -> int:
    """The version component of a bundle's segments: 48 bits of its SHA-256."""
    return int.from_bytes(hashlib.sha256(content).digest()[:6], "big")


@dataclass(frozen=True, slots=True)
class Status:
    state: str
    node: str = ""
    reason: str = ""
    elapsed: float = 0.0
    retry_ms: int = 0
    version: int = 0
    segments: int = 0
    #: the result bundle (ready only, when at most INLINE_LIMIT octets), or b""
    content: bytes = b""


def encode_status(status: Status) -> bytes:
    return msgpack.packb(
        {
            "s": status.state,
            "node": status.node,
            "reason": status.reason,
            "elapsed": status.elapsed,
            "retry_ms": status.retry_ms,
            "version": status.version,
            "segments": status.segments,
            **({"content": status.content} if status.content else {}),
        },
        use_bin_type=True,
    )


def decode_status(content: bytes) -> Status:
    try:
        raw: Any = msgpack.unpackb(content, raw=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise DecodeError(f"function status: not msgpack: {exc}") from None
    if not isinstance(raw, dict) or raw.get("s") not in STATES:
        raise DecodeError("function status: expected a map with a known state 's'")
    content = raw.get("content", b"")
    if not isinstance(content, bytes) or (content and raw["s"] != READY):
        raise DecodeError("function status: 'content' must be the bytes of a ready result")
    try:
        return Status(
            state=str(raw["s"]),
            node=str(raw.get("node", "")),
            reason=str(raw.get("reason", "")),
            elapsed=float(raw.get("elapsed", 0.0)),
            retry_ms=int(raw.get("retry_ms", 0)),
            version=int(raw.get("version", 0)),
            segments=int(raw.get("segments", 0)),
            content=content,
        )
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"function status: bad field: {exc}") from None
