"""Encodings of what travels as Data content (pure): a function's result bundle and the status
answers to compute Interests.

A **bundle** is the declared output files of one function, as a msgpack array
``[1, [[path, bytes], ...]]`` sorted by path: the same files always encode to the same bytes, so
its version component (derived from its SHA-256) is the same wherever it is computed, and
segments of two executions can never be mixed.

A **status** is a msgpack map answering a compute Interest: ``ready`` (with the result's version
and segment count, and the result itself when it is small: :data:`INLINE_LIMIT`), ``running``
(with the seconds it has run and when to ask again), ``failed`` (with the reason and, as
``failure``, the function where the failure began: its task id, node, exit status and the end of
its stderr, carried unchanged from node to node down to the delegator), ``unknown`` (the node was
never told about this function), or ``yielded`` (autonomous mode: the node asked is itself waiting
on the requester for this very function, and the requester runs it: see
:meth:`~sflow.sfc.producer.Producer.on_request`).

A **compute request**'s ApplicationParameters name the node that asks (``{"from": HOST:PORT}``;
empty when the delegator asks), inside the Interest's cluster signature.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgpack

from sflow.errors import DecodeError, FunctionFailure
from sflow.model.paths import UnsafePath, job_relative

BUNDLE_FORMAT = 1

READY = "ready"
RUNNING = "running"
FAILED = "failed"
UNKNOWN = "unknown"
YIELDED = "yielded"
STATES = (READY, RUNNING, FAILED, UNKNOWN, YIELDED)

#: the end of a failed function's stderr that travels in a status (which must fit in one packet)
STATUS_STDERR_BYTES = 2048

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
    failure: FunctionFailure | None = None
    #: the result bundle (ready only, when at most INLINE_LIMIT octets), or b""
    content: bytes = b""
    #: ready: the producer held the result before it was asked (not computed for this request)
    stored: bool = False


def tail_bytes(text: str, limit: int = STATUS_STDERR_BYTES) -> str:
    """The last ``limit`` bytes of ``text`` (UTF-8), cut at a character boundary."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[-limit:].decode("utf-8", "ignore")


def encode_status(status: Status) -> bytes:
    body: dict[str, Any] = {
        "s": status.state,
        "node": status.node,
        "reason": status.reason,
        "elapsed": status.elapsed,
        "retry_ms": status.retry_ms,
        "version": status.version,
        "segments": status.segments,
    }
    if status.failure is not None:
        f = status.failure
        body["failure"] = {"task": f.task, "node": f.node, "reason": f.reason, "exit_status": f.exit_status,
                           "stderr": tail_bytes(f.stderr_tail)}
    if status.content:
        body["content"] = status.content
    if status.stored:
        body["stored"] = True
    return msgpack.packb(body, use_bin_type=True)


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
        failure = _decode_failure(raw.get("failure"))
        return Status(
            state=str(raw["s"]),
            node=str(raw.get("node", "")),
            reason=str(raw.get("reason", "")),
            elapsed=float(raw.get("elapsed", 0.0)),
            retry_ms=int(raw.get("retry_ms", 0)),
            version=int(raw.get("version", 0)),
            segments=int(raw.get("segments", 0)),
            failure=failure,
            content=content,
            stored=raw.get("stored") is True,
        )
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"function status: bad field: {exc}") from None


def _decode_failure(raw: Any) -> FunctionFailure | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise DecodeError("function status: 'failure' must be a map")
    if "task" not in raw:
        raise DecodeError("function status: 'failure' lacks the task that failed")
    exit_status = raw.get("exit_status")
    return FunctionFailure(
        task=int(raw["task"]),
        node=str(raw.get("node", "")),
        reason=str(raw.get("reason", "")),
        exit_status=None if exit_status is None else int(exit_status),
        stderr_tail=str(raw.get("stderr", "")),
    )


def encode_request(requester: str) -> bytes:
    """A compute Interest's ApplicationParameters: who asks ("" = the delegator: nothing)."""
    return msgpack.packb({"from": requester}, use_bin_type=True) if requester else b""


def decode_request(params: bytes | None) -> str:
    """The node a compute request comes from; "" when it does not say (or says it malformed)."""
    if not params:
        return ""
    try:
        raw: Any = msgpack.unpackb(params, raw=False)
    except (ValueError, msgpack.UnpackException):
        return ""
    requester = raw.get("from") if isinstance(raw, dict) else None
    return requester if isinstance(requester, str) else ""
