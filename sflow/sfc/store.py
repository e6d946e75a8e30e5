"""The on-disk result store: function results (bundles) and installed functions, kept across node
restarts and bounded in size.

Results live in ``<root>/results/<digest>.bundle``; the least recently used are removed when the
total exceeds ``max_bytes``. Installed functions live in ``<root>/functions/<digest>.msgpack`` so
that a restarted node can still compute what it was asked for before the restart. Every file is
written durably (:mod:`sflow.durable`: a temporary file, fsync'd, renamed, its directory fsync'd),
so a crash never leaves half a result under its name.

A result file starts with a header — ``SFR1``, the bundle's length (8 octets, big-endian) and its
SHA-256 — and the bundle follows. The store trusts nothing it did not check: at open, a file
whose size does not match its header (truncated, or extended) is removed; when a result is
loaded, its length and digest are checked, and a damaged one (a flipped bit, a torn sector) is
removed and treated as absent — the function is computed again, never served damaged.

Each node has a store of its own (the default path names the host and the forwarder's port), but a
directory shared by several nodes (NFS homes, or a path set the same on every host) stays sound:
temporary files have names no other process uses (pid and a random part), and a record another
node wrote is as good as this node's (same digest, same content).
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from pathlib import Path

import msgpack
from cachetools import LRUCache

from sflow.durable import DurableFile, write_durably
from sflow.errors import ProtocolError
from sflow.icn.app import SegmentedContent
from sflow.icn.signature import Signer
from sflow.sfc.bundle import bundle_version
from sflow.sfc.names import Installed, installed_from_wire, installed_to_wire, result_prefix

log = logging.getLogger(__name__)

SERVED_CACHE = 64
#: a result file's header: magic, bundle length, bundle SHA-256
HEADER = struct.Struct("!4sQ32s")
MAGIC = b"SFR1"


def read_header(path: Path) -> tuple[int, bytes] | None:
    """The bundle length and digest of a result file whose size matches its header, else None."""
    try:
        with path.open("rb") as f:
            raw = f.read(HEADER.size)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    if len(raw) != HEADER.size:
        return None
    magic, length, digest = HEADER.unpack(raw)
    if magic != MAGIC or size != HEADER.size + length:
        return None
    return length, digest


class ResultStore:
    """Results by digest, on disk, LRU-bounded by ``max_bytes``; with the segmented form of recently
    served results kept in memory."""

    def __init__(self, root: Path, max_bytes: int, signer: Signer, freshness_ms: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.signer = signer
        self.freshness_ms = freshness_ms
        self._results = root / "results"
        self._functions = root / "functions"
        self._results.mkdir(parents=True, exist_ok=True)
        self._functions.mkdir(parents=True, exist_ok=True)
        # digest -> size, in least-recently-used-first order
        self._sizes: dict[str, int] = {}
        entries = []
        for path in self._results.glob("*.bundle"):
            header = read_header(path)
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if header is None:
                self._discard(path, "its size does not match its header")
                continue
            entries.append((mtime, path.stem, header[0]))
        for _, digest, size in sorted(entries):
            self._sizes[digest] = size
        self.total = sum(self._sizes.values())
        self._served: LRUCache[str, SegmentedContent] = LRUCache(maxsize=SERVED_CACHE)
        log.info("event=result_store_open root=%s results=%d bytes=%d", root, len(self._sizes), self.total)

    def __len__(self) -> int:
        return len(self._sizes)

    def __contains__(self, digest: str) -> bool:
        return digest in self._sizes

    def put(self, digest: str, program: str, content: bytes) -> SegmentedContent:
        with DurableFile(self._results / f"{digest}.bundle") as out:
            out.write(HEADER.pack(MAGIC, len(content), hashlib.sha256(content).digest()))
            out.write(content)
        self.total += len(content) - self._sizes.pop(digest, 0)
        self._sizes[digest] = len(content)
        self._evict(keep=digest)
        served = self._segmented(digest, program, content)
        self._served[digest] = served
        return served

    def get(self, digest: str, program: str) -> SegmentedContent | None:
        """The result's segments, or None when it is not stored."""
        served = self._served.get(digest)
        if served is not None:
            self._touch(digest)
            return served
        if digest not in self._sizes:
            return None
        path = self._results / f"{digest}.bundle"
        try:
            raw = path.read_bytes()
        except OSError as exc:
            log.warning("event=result_unreadable digest=%s error=%s", digest, exc)
            self.total -= self._sizes.pop(digest, 0)
            return None
        content = _checked(raw)
        if content is None:
            self.total -= self._sizes.pop(digest, 0)
            self._discard(path, "its length or digest does not match its header")
            return None
        self._touch(digest)
        served = self._segmented(digest, program, content)
        self._served[digest] = served
        return served

    def _discard(self, path: Path, why: str) -> None:
        log.warning("event=result_damaged path=%s reason=%s action=removed", path, why.replace(" ", "_"))
        path.unlink(missing_ok=True)

    def _segmented(self, digest: str, program: str, content: bytes) -> SegmentedContent:
        return SegmentedContent(
            result_prefix(program, digest), content, bundle_version(content), self.signer,
            freshness_period=self.freshness_ms,
        )

    def _touch(self, digest: str) -> None:
        if next(reversed(self._sizes)) == digest:
            # Already the most recently used (e.g. the next segment of the result being fetched):
            # the order, in memory and in the files' mtimes, would not change.
            return
        size = self._sizes.pop(digest)
        self._sizes[digest] = size
        try:
            os.utime(self._results / f"{digest}.bundle")
        except OSError:
            log.debug("event=result_touch_failed digest=%s", digest)

    def _evict(self, keep: str) -> None:
        while self.total > self.max_bytes and len(self._sizes) > 1:
            digest = next(iter(self._sizes))
            if digest == keep:
                break
            size = self._sizes.pop(digest)
            self.total -= size
            self._served.pop(digest, None)
            (self._results / f"{digest}.bundle").unlink(missing_ok=True)
            log.info("event=result_evicted digest=%s bytes=%d", digest, size)

    # Installed functions -----------------------------------------------------------------------

    def save_function(self, item: Installed) -> None:
        write_durably(self._functions / f"{item.spec.digest}.msgpack",
                      msgpack.packb(installed_to_wire(item), use_bin_type=True))

    def load_functions(self) -> list[Installed]:
        out = []
        for path in sorted(self._functions.glob("*.msgpack")):
            try:
                item = installed_from_wire(msgpack.unpackb(path.read_bytes(), raw=False))
            except (OSError, ValueError, msgpack.UnpackException, ProtocolError) as exc:
                log.warning("event=function_unreadable path=%s error=%s", path, exc)
                continue
            if item.spec.digest == path.stem:
                out.append(item)
        return out


def _checked(raw: bytes) -> bytes | None:
    """The bundle of a result file, or None when its length or digest is not its header's."""
    if len(raw) < HEADER.size:
        return None
    magic, length, digest = HEADER.unpack_from(raw)
    content = raw[HEADER.size:]
    if magic != MAGIC or len(content) != length or hashlib.sha256(content).digest() != digest:
        return None
    return content
