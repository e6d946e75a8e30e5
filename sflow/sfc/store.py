"""The on-disk result store: function results (bundles) and installed functions, kept across node
restarts and bounded in size.

Results live in ``<root>/results/<digest>.bundle`` (written to a temporary file and renamed, so a
crash never leaves half a result); the least recently used are removed when the total exceeds
``max_bytes``. Installed functions live in ``<root>/functions/<digest>.msgpack`` so that a restarted
node can still compute what it was asked for before the restart.

Each node has a store of its own (the default path names the host and the forwarder's port), but a
directory shared by several nodes (NFS homes, or a path set the same on every host) stays sound:
temporary files have names no other process uses (pid and a random part), and a record another
node wrote is as good as this node's (same digest, same content).
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import msgpack
from cachetools import LRUCache

from sflow.errors import ProtocolError
from sflow.icn.app import SegmentedContent
from sflow.icn.signature import Signer
from sflow.sfc.bundle import bundle_version
from sflow.sfc.names import Installed, installed_from_wire, installed_to_wire, result_prefix

log = logging.getLogger(__name__)

SERVED_CACHE = 64


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
            try:
                st = path.stat()
            except OSError:
                continue
            entries.append((st.st_mtime, path.stem, st.st_size))
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
        _write_atomically(self._results / f"{digest}.bundle", content)
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
            content = path.read_bytes()
        except OSError as exc:
            log.warning("event=result_unreadable digest=%s error=%s", digest, exc)
            self.total -= self._sizes.pop(digest, 0)
            return None
        self._touch(digest)
        served = self._segmented(digest, program, content)
        self._served[digest] = served
        return served

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
        _write_atomically(self._functions / f"{item.spec.digest}.msgpack",
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


def _write_atomically(path: Path, content: bytes) -> None:
    """Write ``path`` through a temporary file of its own (no other writer, on this host or another
    sharing the directory, uses the name) renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_bytes(content)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
