"""Installing functions on a node over ICN: what the signed ``/sflow/ctl/install`` Interests carry
(pure: the caller passes the time in).

An install Interest's ApplicationParameters are either

* a **batch**: a msgpack array of function descriptions (``installed_to_wire``), as many as fit
  in one Interest; or
* a **part** of one batch too large for an Interest — a function with thousands of inputs has a
  description of hundreds of kilobytes: a msgpack map ``{"id": transfer id, "part": k, "of": n,
  "size": octets, "sha256": digest of the whole, "data": octets}``. The delegator sends every part
  in its own signed Interest; the node keeps the parts of each transfer in a :class:`Reassembly`
  and, once it has them all and their SHA-256 matches, installs the batch as if it had come in
  one Interest.

Each part is authenticated on its own (HMAC with the cluster secret, checked before anything
here sees it), so only a holder of the secret can install, whole or in parts. A node bounds what
it holds for transfers under way (octets and transfers, each with a counter), forgets a transfer
that stopped receiving parts, and answers a part sent again (its answer was lost) as it did the
first time.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from sflow.errors import ProtocolError

#: octets of a part's ``data`` below the Interest's parameter limit (room for the map's fields)
PART_OVERHEAD = 160
#: the largest batch a node reassembles (a function with ~100,000 inputs)
MAX_TRANSFER_BYTES = 16 * 1024 * 1024
#: octets held for all transfers under way together
MAX_PENDING_BYTES = 32 * 1024 * 1024
#: transfers under way at once; the oldest is forgotten beyond this
MAX_TRANSFERS = 64
#: a transfer that received no part for this long is forgotten
TRANSFER_EXPIRY = 60.0
#: completed transfers remembered, to answer a part sent again
COMPLETED_MEMORY = 256


def batches(entries: Sequence[Any], limit: int) -> list[bytes]:
    """Pack install entries (function descriptions, routes) into msgpack arrays of at most
    ``limit`` octets each, in order; an entry larger than ``limit`` on its own is a batch by
    itself (to be sent in parts)."""
    packer = msgpack.Packer(use_bin_type=True)
    out: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for entry in entries:
        packed = packer.pack(entry)
        if current and len(packer.pack_array_header(len(current) + 1)) + size + len(packed) > limit:
            out.append(packer.pack_array_header(len(current)) + b"".join(current))
            current, size = [], 0
        current.append(packed)
        size += len(packed)
    if current:
        out.append(packer.pack_array_header(len(current)) + b"".join(current))
    return out


def entries(batch: bytes) -> int:
    """How many entries a batch made by :func:`batches` holds (read from its array header)."""
    unpacker = msgpack.Unpacker()
    unpacker.feed(batch[:5])
    return int(unpacker.read_array_header())


def split(batch: bytes, transfer: bytes, limit: int) -> list[bytes]:
    """The ApplicationParameters of each part of ``batch`` (``transfer``: an id unique to this
    delegator run), each at most ``limit`` octets."""
    chunk = limit - PART_OVERHEAD
    if chunk <= 0:
        raise ValueError(f"install parameters limit {limit} leaves no room for data")
    digest = hashlib.sha256(batch).digest()
    count = max(1, -(-len(batch) // chunk))
    return [
        msgpack.packb({"id": transfer, "part": k, "of": count, "size": len(batch), "sha256": digest,
                       "data": batch[k * chunk:(k + 1) * chunk]}, use_bin_type=True)
        for k in range(count)
    ]


@dataclass(frozen=True, slots=True)
class Part:
    transfer: bytes
    index: int
    count: int
    size: int
    digest: bytes
    data: bytes


def decode_part(raw: Any) -> Part:
    """A part from its decoded parameters (a map); a ProtocolError names the field at fault."""
    if not isinstance(raw, dict):
        raise ProtocolError("install part: expected a map")
    fields: dict[str, type] = {"id": bytes, "part": int, "of": int, "size": int, "sha256": bytes, "data": bytes}
    for key, kind in fields.items():
        value = raw.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ProtocolError(f"install part: field {key!r} must be {kind.__name__}")
    part = Part(raw["id"], raw["part"], raw["of"], raw["size"], raw["sha256"], raw["data"])
    if not 1 <= len(part.transfer) <= 32:
        raise ProtocolError("install part: 'id' must be 1 to 32 octets")
    if not 0 <= part.index < part.count:
        raise ProtocolError(f"install part: part {part.index} of {part.count}")
    if len(part.digest) != 32:
        raise ProtocolError("install part: 'sha256' must be 32 octets")
    if part.size < 0 or part.count > part.size + 1:
        raise ProtocolError(f"install part: {part.count} parts for {part.size} octets")
    return part


@dataclass(frozen=True, slots=True)
class Added:
    """What a part added: parts received of ``count``; ``batch`` once the transfer is complete
    (exactly once per transfer: a part sent again after that gets ``batch=None``)."""

    received: int
    count: int
    batch: bytes | None = None


@dataclass(slots=True)
class _Transfer:
    count: int
    size: int
    digest: bytes
    last: float
    parts: dict[int, bytes] = field(default_factory=dict)


class Reassembly:
    """The transfers under way on one node (see the module docstring)."""

    def __init__(
        self,
        *,
        max_transfer_bytes: int = MAX_TRANSFER_BYTES,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        max_transfers: int = MAX_TRANSFERS,
        expiry: float = TRANSFER_EXPIRY,
    ) -> None:
        self.max_transfer_bytes = max_transfer_bytes
        self.max_pending_bytes = max_pending_bytes
        self.max_transfers = max_transfers
        self.expiry = expiry
        self._transfers: OrderedDict[bytes, _Transfer] = OrderedDict()
        self._completed: OrderedDict[bytes, int] = OrderedDict()
        #: octets announced by the transfers under way (reserved when their first part arrives)
        self.pending_bytes = 0
        self.counters = {"parts": 0, "completed": 0, "expired": 0, "evicted": 0, "refused": 0}

    def __len__(self) -> int:
        return len(self._transfers)

    def add(self, part: Part, now: float) -> Added:
        """Take one part; raises ProtocolError when it cannot be taken (the transfer is over the
        limits, or disagrees with its earlier parts or with its digest)."""
        self.counters["parts"] += 1
        self._expire(now)
        done = self._completed.get(part.transfer)
        if done is not None:
            return Added(done, done)
        transfer = self._transfers.get(part.transfer)
        if transfer is None:
            transfer = self._start(part, now)
        elif (part.count, part.size, part.digest) != (transfer.count, transfer.size, transfer.digest):
            self._refuse(part.transfer)
            raise ProtocolError(f"install part {part.index}: differs from the earlier parts of its transfer")
        have = transfer.parts.get(part.index)
        if have is not None and have != part.data:
            self._refuse(part.transfer)
            raise ProtocolError(f"install part {part.index}: sent twice with different data")
        transfer.parts[part.index] = part.data
        transfer.last = now
        if len(transfer.parts) < transfer.count:
            return Added(len(transfer.parts), transfer.count)
        del self._transfers[part.transfer]
        self.pending_bytes -= transfer.size
        batch = b"".join(transfer.parts[k] for k in range(transfer.count))
        if len(batch) != transfer.size or hashlib.sha256(batch).digest() != transfer.digest:
            self.counters["refused"] += 1
            raise ProtocolError(f"install: the {transfer.count} parts do not add up to the batch announced "
                                f"({len(batch)} of {transfer.size} octets, or another SHA-256)")
        self._completed[part.transfer] = transfer.count
        while len(self._completed) > COMPLETED_MEMORY:
            self._completed.popitem(last=False)
        self.counters["completed"] += 1
        return Added(transfer.count, transfer.count, batch)

    def _start(self, part: Part, now: float) -> _Transfer:
        if part.size > self.max_transfer_bytes:
            self.counters["refused"] += 1
            raise ProtocolError(f"install: a batch of {part.size} octets is over this node's limit of "
                                f"{self.max_transfer_bytes}")
        while self._transfers and (len(self._transfers) >= self.max_transfers
                                   or self.pending_bytes + part.size > self.max_pending_bytes):
            oldest, dropped = self._transfers.popitem(last=False)
            self.pending_bytes -= dropped.size
            self.counters["evicted"] += 1
        transfer = _Transfer(part.count, part.size, part.digest, now)
        self._transfers[part.transfer] = transfer
        self.pending_bytes += part.size
        return transfer

    def _refuse(self, transfer_id: bytes) -> None:
        transfer = self._transfers.pop(transfer_id)
        self.pending_bytes -= transfer.size
        self.counters["refused"] += 1

    def _expire(self, now: float) -> None:
        for transfer_id, transfer in list(self._transfers.items()):
            if now - transfer.last >= self.expiry:
                del self._transfers[transfer_id]
                self.pending_bytes -= transfer.size
                self.counters["expired"] += 1


#: a function with more inputs than this is reported without its inputs' flags (unknown)
MAX_HELD_INPUTS = 4096


@dataclass(frozen=True, slots=True)
class Held:
    """What a node holds (in its result store) of one function it was just told of: the function's
    own result, and each of its inputs' results (a bit per input, input k in bit k % 8 of octet
    k // 8; None: not reported). The install answer carries one per function, in batch order:
    the delegator works out from them which functions a run must compute
    (:mod:`sflow.delegator.needed`)."""

    result: bool
    inputs: bytes | None

    @classmethod
    def of(cls, result: bool, inputs: Sequence[bool]) -> Held:
        if len(inputs) > MAX_HELD_INPUTS:
            return cls(result, None)
        bits = bytearray((len(inputs) + 7) // 8)
        for k, held in enumerate(inputs):
            if held:
                bits[k // 8] |= 1 << (k % 8)
        return cls(result, bytes(bits))

    def input(self, k: int) -> bool | None:
        """Whether input ``k``'s result is held (None: not reported)."""
        if self.inputs is None or k // 8 >= len(self.inputs):
            return None
        return bool(self.inputs[k // 8] >> (k % 8) & 1)

    def to_wire(self) -> list[Any]:
        return [self.result, self.inputs]


def held_from_wire(raw: Any, count: int) -> list[Held | None]:
    """The ``held`` field of an install answer for ``count`` functions; an entry that is missing
    or malformed (an older node) is None: unknown."""
    out: list[Held | None] = [None] * count
    if not isinstance(raw, list):
        return out
    for k, entry in enumerate(raw[:count]):
        if (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], bool)
                and (entry[1] is None or isinstance(entry[1], bytes))):
            out[k] = Held(entry[0], entry[1])
    return out
