"""The on-disk result store: function results (bundles) and installed functions, kept across node
restarts and bounded in size.

Small results (the results of most functions) are appended to pack files in
``<root>/results/`` (:mod:`sflow.sfc.packs`: a file creation per result cost more CPU than the
rest of storing it); large ones are files of their own, ``<root>/results/<digest>.bundle``. The
least recently used are removed when the total exceeds ``max_bytes``: a pack once none of its
records is served any more, and a pack whose records served fill less than half of it is
compacted (those records are written again to the pack being filled): the results' files take at
most about twice ``max_bytes``, plus the pack being filled (:data:`~sflow.sfc.packs.PACK_BYTES`).
Installed functions live in
``<root>/functions/``, one file per install, so that a restarted node can still compute what it
was asked for before the restart. Every file is written durably (:mod:`sflow.durable`: a temporary
file, fsync'd, renamed, its directory fsync'd; a pack's records are ``fdatasync``'d), so a crash
never leaves half a result under its name.

A result file starts with a header — ``SFR1``, the bundle's length (8 octets, big-endian) and its
SHA-256 — and the bundle follows. The store trusts nothing it did not check: at open, a file
whose size does not match its header (truncated, or extended) is removed, and a pack is read up to
its first record that is not whole and sound; when a result is loaded, its length and digest are
checked, and a damaged one (a flipped bit, a torn sector) is dropped and treated as absent — the
function is computed again, never served damaged. The order of use survives a restart as the
order in which the results were written (files: as of their last use).

**Large results** (over :data:`STREAM_THRESHOLD`) are never held whole: they are written into the
store as they are made or received (:meth:`ResultStore.spool`, then :meth:`ResultStore.added`),
and served from their file (:class:`FileSegments`): blocks of segments read off the reactor as
they are asked for, one block read ahead; their digest is checked (off the reactor too) before
the first segment is served. Their segments are sent uncached (:class:`~sflow.icn.app.Uncached`):
content stores along the way do not fill with them.

A small result this node obtained from another one (an input) is held in memory only
(:meth:`ResultStore.keep`): its producer keeps the file.

Each node has a store of its own (the default path names the host and the forwarder's port), but a
directory shared by several nodes (NFS homes, or a path set the same on every host) stays sound:
temporary files and packs have names no other process uses (pid and a random part), a process
appends only to packs it made, and a record another node wrote is as good as this node's (same
digest, same content). (A node that opens the directory while another appends to it may remove
or compact the other's pack once it serves nothing from it: the other then finds those results
absent and computes them again.)
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
from cachetools import LRUCache
from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.python.failure import Failure

from sflow.durable import DurableFile, write_durably
from sflow.errors import ProtocolError
from sflow.icn.app import (
    DEFAULT_SEGMENT_SIZE,
    HandlerResult,
    SegmentedContent,
    Uncached,
    segment_asked,
)
from sflow.icn.name import Component, Name
from sflow.icn.packet import Interest, make_data
from sflow.icn.signature import Signer
from sflow.node.peers import PeerPool
from sflow.sfc import packs
from sflow.sfc.bundle import bundle_version
from sflow.sfc.bundlefile import STREAM_THRESHOLD, Spool, Spooled, version_of
from sflow.sfc.names import (
    Installed,
    installed_from_wire,
    installed_to_wire,
    result_prefix,
)

log = logging.getLogger(__name__)

SERVED_CACHE = 64
#: octets of small results obtained from other nodes held in memory only (:meth:`ResultStore.keep`)
COPIES_BYTES = 32 << 20
#: threads that read and write the store's files: two keep one long read (a large result's digest)
#: from holding up the rest; each thread more left about 1 MB more in a node's peak memory
#: (tests/integration/sfc/test_sfc_large.py: 7.2 MB growth with one, 8.3 with two, 10.5 with three)
STORE_THREADS = 2
#: seconds the store's work that nobody waits for soon (a record appended to its pack, a finished
#: function's directory removed) waits before it is handed to a thread, with the rest of such work
#: asked meanwhile: one thread's wake-up for them all, rather than one (and the interpreter taken
#: from the reactor) for each, and mostly at a moment that the functions' own hand-offs do not
#: need (see :func:`_store_threads`)
UNHURRIED_SECONDS = 0.02
#: segments read from a large result's file at a time
BLOCK_SEGMENTS = 128
#: blocks of a large result kept in memory (the one being served and the one read ahead)
BLOCKS_KEPT = 2

#: runs a blocking call off the reactor (``twisted.internet.threads.deferToThread``)
Blocking = Callable[..., "Deferred[Any]"]
#: runs a blocking call off the reactor with nobody waiting for its end
Detached = Callable[..., None]
#: a result file's header: magic, bundle length, bundle SHA-256
HEADER = struct.Struct("!4sQ32s")
MAGIC = b"SFR1"
#: what the files of installed functions end with
FUNCTIONS_SUFFIX = ".msgpack"


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
    served results kept in memory.

    The reactor never waits on the disk: every read, write, removal and touch of a file runs off
    the reactor (``blocking``), one at a time per result (a removal never overtakes the write it
    follows, a read never sees a half-made file). A result just made is served from memory at
    once; its file is written meanwhile (durably), and it stays in memory until it is."""

    def __init__(self, root: Path, max_bytes: int, signer: Signer, freshness_ms: int,
                 blocking: Blocking | None = None) -> None:
        self.root = root
        #: the runners (waited on, unhurried, detached): an injected one for all three, else the
        #: store's threads, started with the first call (see _store_threads)
        self._runners: tuple[Blocking, Blocking, Detached] | None = None if blocking is None else (
            blocking, blocking, functools.partial(_detach, blocking))
        self.max_bytes = max_bytes
        self.signer = signer
        self.freshness_ms = freshness_ms
        self._results = root / "results"
        self._functions = root / "functions"
        self._results.mkdir(parents=True, exist_ok=True)
        self._functions.mkdir(parents=True, exist_ok=True)
        # digest -> (bundle length, bundle SHA-256), in least-recently-used-first order; read once,
        # when the store opens (before the node serves anything)
        self._entries: dict[str, tuple[int, bytes]] = {}
        #: the pack and offset of each result kept in a pack (the others are files of their own)
        self._located: dict[str, tuple[packs.Pack, int]] = {}
        #: the pack records are appended to (made with the first), and the packs to compact once
        #: the store's threads run
        self._pack: packs.Pack | None = None
        self._compactable: list[packs.Pack] = []
        self._open_results()
        self.total = sum(length for length, _ in self._entries.values())
        self._served: LRUCache[str, SegmentedContent | FileSegments] = LRUCache(maxsize=SERVED_CACHE)
        #: results whose file is being written: served from memory until it is there
        self._writing: dict[str, SegmentedContent] = {}
        #: one disk operation at a time per result file
        self._files: dict[str, DeferredLock] = {}
        #: large results whose digest was checked since the store opened
        self._verified: set[str] = set()
        #: small results obtained from other nodes, in memory only, least recently used first
        self._copies: OrderedDict[str, _Copy] = OrderedDict()
        self.copies_bytes = 0
        #: installed functions kept for a restart: the file of each one's latest version, and the
        #: functions whose latest version each file holds
        self._function_file: dict[str, str] = {}
        self._function_files: dict[str, set[str]] = {}
        self._saves = 0
        log.info("event=result_store_open root=%s results=%d bytes=%d", root, len(self._entries), self.total)

    def _open_results(self) -> None:
        """Index the results in the store's directory, oldest first: the files (by the time of
        their last use) and the packs' records (by the time of their pack's last write, then in
        the order written). A result found twice is the later one."""
        found: list[tuple[float, str, int, str, tuple[int, bytes], packs.Pack | None]] = []
        for path in self._results.glob("*.bundle"):
            header = read_header(path)
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if header is None:
                _discard(path, "its size does not match its header")
                continue
            found.append((mtime, "", 0, path.stem, header, None))
        opened = []
        for path in self._results.glob(f"*{packs.PACK_SUFFIX}"):
            try:
                records, size, problem = packs.scan(path)
                mtime = path.stat().st_mtime
            except OSError as exc:
                log.warning("event=pack_unreadable path=%s error=%s", path, exc)
                continue
            if problem is not None:
                log.warning("event=pack_damaged path=%s reason=%s action=read_up_to_it", path, problem.replace(" ", "_"))
            pack = packs.Pack(path, size=size, closed=True, named=True)
            opened.append(pack)
            found.extend((mtime, path.name, r.offset, r.digest, (r.length, r.sha256), pack) for r in records)
        for _, _, offset, digest, header, holder in sorted(found, key=lambda f: f[:3]):
            if digest in self._entries:  # an older copy of it goes
                if digest not in self._located:
                    _remove(self._path(digest))
                del self._entries[digest]
                self._release(digest, bury=False)
            self._entries[digest] = header
            if holder is not None:
                self._locate(digest, holder, offset, packs.record_size(digest, header[0]))
        for pack in opened:
            if not pack.live:
                _remove(pack.path)
            elif self._wasteful(pack):
                self._compactable.append(pack)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, digest: str) -> bool:
        return digest in self._entries or digest in self._copies

    def put(self, digest: str, program: str, content: bytes) -> SegmentedContent:
        """Store a result: served from memory at once, its file written off the reactor."""
        self._forget_copy(digest)
        served = self._segmented(digest, program, content)
        self._served[digest] = served
        if self._writing.get(digest) is not None and digest in self._entries:
            return served  # the same content (same digest) is being written already
        sha = hashlib.sha256(content).digest()
        large = len(content) > STREAM_THRESHOLD
        if not large and self._has_file(digest):
            self._on_file(digest, _remove, self._path(digest))  # its file (an older node's): the record replaces it
        self.total += len(content) - self._forget_entry(digest)
        self._entries[digest] = (len(content), sha)
        self._writing[digest] = served
        if large:  # a file of its own, served from it like a spooled result
            self._on_file(digest, _write_result, self._path(digest), HEADER.pack(MAGIC, len(content), sha),
                          content).addBoth(self._written, digest, served)
        else:
            self._append(digest, content, sha, served)
        self._evict(keep=digest)
        return served

    def keep(self, digest: str, program: str, content: bytes) -> None:
        """A small result obtained from another node: held in memory only — its producer has it
        in its store, and creating a file costs more than the result is worth here (ext4 takes
        from 0.02 to over 0.8 ms of CPU to create one). Served, and counted as held, like a
        stored result, until it is the least recently used beyond :data:`COPIES_BYTES`, or the
        node restarts (it is then obtained again)."""
        if digest in self._entries:
            return  # stored here already
        self._forget_copy(digest)
        # (its segments are made when it is first asked for: most copies are only the input of
        # the function that obtained them, and making them was on the way to its start)
        self._copies[digest] = _Copy(program, content)
        self.copies_bytes += len(content)
        while self.copies_bytes > COPIES_BYTES and len(self._copies) > 1:
            _, dropped = self._copies.popitem(last=False)
            self.copies_bytes -= len(dropped.content)

    def _forget_copy(self, digest: str) -> None:
        copy = self._copies.pop(digest, None)
        if copy is not None:
            self.copies_bytes -= len(copy.content)

    def _written(self, outcome: object, digest: str, served: SegmentedContent) -> None:
        if self._writing.get(digest) is served:
            del self._writing[digest]
        if isinstance(outcome, Failure):
            log.warning("event=result_write_failed digest=%s error=%s", digest, outcome.getErrorMessage())
            self._unstored(digest)

    def _unstored(self, digest: str) -> None:
        """A write of ``digest`` failed (a full disk): unless it is being written again, it is not
        stored after all — made again if asked."""
        if digest not in self._writing:
            self._served.pop(digest, None)
            self.total -= self._forget_entry(digest)

    # Packs (:mod:`sflow.sfc.packs`) --------------------------------------------------------------

    def _append(self, digest: str, content: bytes, sha: bytes, served: SegmentedContent | None) -> None:
        """Append ``digest``'s record to the pack being filled (a new one when it is full), off the
        reactor; once it is written, the result is served from it. ``served`` is what
        :meth:`put` serves meanwhile (None: a record compacted, served from its old pack meanwhile)."""
        for waiting in self._compactable:
            self._settle(waiting)
        self._compactable = []
        size = packs.record_size(digest, len(content))
        pack = self._pack
        if pack is None or pack.closed or (pack.size and pack.size + size > packs.PACK_BYTES):
            if pack is not None and not pack.closed:
                pack.closed = True
                self._settle(pack)
            pack = self._pack = packs.new_pack(self._results)
        offset = pack.size
        pack.size += size
        pack.writing += 1
        self.run_unhurried(packs.append, pack, offset, digest, sha, content).addBoth(
            self._appended, pack, offset, size, digest, sha, served)

    def _appended(self, outcome: object, pack: packs.Pack, offset: int, size: int, digest: str, sha: bytes,
                  served: SegmentedContent | None) -> None:
        pack.writing -= 1
        if served is not None and self._writing.get(digest) is served:
            del self._writing[digest]
        if isinstance(outcome, Failure):
            log.warning("event=result_write_failed digest=%s pack=%s error=%s", digest, pack.path.name,
                        outcome.getErrorMessage())
            pack.closed = True  # the next record goes to a new pack
            if served is not None:  # (a compacted record is still served from its old place)
                self._unstored(digest)
        else:
            entry = self._entries.get(digest)
            if entry is not None and entry[1] == sha and digest not in self._writing:
                moved_from = self._release(digest)  # a compacted record's former place
                self._locate(digest, pack, offset, size)
                if moved_from is not None:
                    self._settle(moved_from)
            else:  # evicted, or written again, meanwhile
                self.run_detached(packs.bury, pack.path, offset)
        self._settle(pack)

    def _has_file(self, digest: str) -> bool:
        """Whether ``digest``'s result is (or is being written to) a file of its own: large, or
        small but neither in a pack nor being appended to one (spooled, or an older node's)."""
        entry = self._entries.get(digest)
        if entry is None:
            return False
        return entry[0] > STREAM_THRESHOLD or (digest not in self._located and digest not in self._writing)

    def _locate(self, digest: str, pack: packs.Pack, offset: int, size: int) -> None:
        self._located[digest] = (pack, offset)
        pack.live[digest] = (offset, size)
        pack.live_bytes += size

    def _release(self, digest: str, bury: bool = True) -> packs.Pack | None:
        """``digest``'s record is served no more (marked dead in its pack unless ``bury`` is
        false); its pack, or None when it had no record."""
        where = self._located.pop(digest, None)
        if where is None:
            return None
        pack, offset = where
        pack.live_bytes -= pack.live.pop(digest)[1]
        if bury:
            self.run_detached(packs.bury, pack.path, offset)
        return pack

    @staticmethod
    def _wasteful(pack: packs.Pack) -> bool:
        return pack.live_bytes * 2 < pack.size

    def _settle(self, pack: packs.Pack) -> None:
        """A pack that takes no more records, with no append under way, is removed once none of
        its records is served, and compacted once those served fill less than half of it."""
        if not pack.closed or pack.writing:
            return
        if not pack.live:
            self.run_detached(_remove, pack.path)
        elif self._wasteful(pack) and not pack.compacting:
            self._compact(pack)

    def _compact(self, pack: packs.Pack) -> None:
        """Write the records still served from ``pack`` again, to the pack being filled; each is
        served from its new place once it is written, and ``pack`` is removed with its last."""
        pack.compacting = True
        log.info("event=pack_compacted pack=%s records=%d bytes=%d of=%d", pack.path.name, len(pack.live),
                 pack.live_bytes, pack.size)

        def copy(found: list[tuple[str, int, bytes | None]]) -> None:
            for digest, offset, content in found:
                if self._located.get(digest) != (pack, offset):
                    continue  # no longer served from there
                if content is None:
                    self._drop(digest, "its record is not sound")
                else:
                    self._append(digest, content, self._entries[digest][1], None)

        wanted = [(digest, offset) for digest, (offset, _) in pack.live.items()]
        self.run(packs.read_many, pack.path, wanted).addCallbacks(
            copy, lambda failure: log.warning("event=pack_compaction_failed pack=%s error=%s", pack.path.name,
                                              failure.getErrorMessage()))

    def run(self, call: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """``call(*args)`` off the reactor (by default in the store's own few threads, started with
        the first call and stopped with the reactor)."""
        return self._threads()[0](call, *args)

    def run_unhurried(self, call: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """``call(*args)`` off the reactor, for work whose end nobody waits for soon (a record
        appended to a pack while the result is served from memory): it starts up to
        :data:`UNHURRIED_SECONDS` later, in order with the rest of such work."""
        return self._threads()[1](call, *args)

    def run_detached(self, call: Callable[..., Any], *args: Any) -> None:
        """``call(*args)`` off the reactor, for work nobody waits on (a finished function's
        directory removed), unhurried as :meth:`run_unhurried`: the reactor is not woken when it
        ends (a wake-up and a turn per function saved); a failure is logged."""
        self._threads()[2](call, *args)

    def _threads(self) -> tuple[Blocking, Blocking, Detached]:
        if self._runners is None:
            self._runners = _store_threads()
        return self._runners

    def _on_file(self, digest: str, call: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """``call(*args)`` off the reactor, after every disk operation on ``digest``'s file asked
        for before it."""
        lock = self._files.get(digest)
        if lock is None:
            lock = self._files[digest] = DeferredLock()

        def done(outcome: Any) -> Any:
            if not lock.locked and self._files.get(digest) is lock:
                del self._files[digest]
            return outcome

        return lock.run(self.run, call, *args).addBoth(done)

    def spool(self, digest: str) -> Spool:
        """A file to write a large result into as it is made or received; once it is finished (off
        the reactor), :meth:`added` makes it a result of the store."""
        return Spool(self._path(digest), HEADER.size, lambda length, sha: HEADER.pack(MAGIC, length, sha))

    def added(self, digest: str, spooled: Spooled) -> None:
        """A spooled result is in place (its digest is the one just computed while writing it)."""
        self.total += spooled.length - self._forget_entry(digest)
        self._entries[digest] = (spooled.length, spooled.sha256)
        self._served.pop(digest, None)
        self._verified.add(digest)
        self._evict(keep=digest)

    def spooled(self, digest: str) -> Spooled | None:
        """The file of a large stored result, or None (not stored, or small)."""
        entry = self._entries.get(digest)
        if entry is None or entry[0] <= STREAM_THRESHOLD:
            return None
        return Spooled(self._path(digest), HEADER.size, *entry)

    def get(self, digest: str, program: str) -> Deferred[SegmentedContent | FileSegments | None]:
        """The result's segments, or None when it is not stored. A large result is a
        :class:`FileSegments` (``content`` None; its ``spooled`` file), served from its file; a
        small one not in memory is read off the reactor (and checked)."""
        copy = self._copies.get(digest)
        if copy is not None:
            self._copies.move_to_end(digest)
            if copy.served is None:
                copy.served = self._segmented(digest, copy.program, copy.content)
            return succeed(copy.served)
        served = self._served.get(digest) or self._writing.get(digest)
        if served is not None:
            self._touch(digest)
            return succeed(served)
        spooled = self.spooled(digest)
        if spooled is not None:
            self._touch(digest)
            large = FileSegments(self, digest, result_prefix(program, digest), spooled)
            self._served[digest] = large
            return succeed(large)
        if digest not in self._entries:
            return succeed(None)

        where = self._located.get(digest)

        def loaded(content: bytes | None) -> Deferred[SegmentedContent | FileSegments | None] | SegmentedContent | None:
            held = self._served.get(digest) or self._writing.get(digest)
            if isinstance(held, SegmentedContent):
                return held  # put again meanwhile
            if content is None:
                if where is not None and self._located.get(digest) != where:
                    return self.get(digest, program)  # moved meanwhile (its pack compacted)
                if digest in self._entries:
                    self._drop(digest, "it is unreadable or its length or digest does not match its header")
                return None
            self._touch(digest)
            served = self._segmented(digest, program, content)
            self._served[digest] = served
            return served

        d: Deferred[bytes | None] = self._on_file(digest, _read_checked, self._path(digest)) if where is None \
            else self.run(packs.read, where[0].path, where[1], digest)
        return d.addCallback(loaded)

    def verified(self, digest: str, spooled: Spooled) -> Deferred[bool]:
        """Whether a large result's file still has its digest (checked off the reactor, once);
        a damaged one is removed."""
        if digest in self._verified:
            return succeed(True)

        def checked(ok: bool) -> bool:
            if ok:
                self._verified.add(digest)
            elif digest in self._entries:
                self._drop(digest, "its digest does not match its header")
            return ok

        return self.run(_file_has_digest, spooled).addCallback(checked)

    def _path(self, digest: str) -> Path:
        return self._results / f"{digest}.bundle"

    def _forget_entry(self, digest: str) -> int:
        """Forget ``digest``'s entry (not its file; its record in a pack is served no more); its
        length, 0 when there was none."""
        entry = self._entries.pop(digest, None)
        pack = self._release(digest)
        if pack is not None:
            self._settle(pack)
        return entry[0] if entry is not None else 0

    def _drop(self, digest: str, why: str) -> None:
        """Forget a damaged result: remove its file, or serve its record no more."""
        where = self._located.get(digest)
        self.total -= self._forget_entry(digest)
        self._served.pop(digest, None)
        if where is None:
            self._on_file(digest, _discard, self._path(digest), why)
        else:
            log.warning("event=result_damaged pack=%s offset=%d reason=%s action=dropped", where[0].path.name,
                        where[1], why.replace(" ", "_"))

    def _segmented(self, digest: str, program: str, content: bytes) -> SegmentedContent:
        return SegmentedContent(
            result_prefix(program, digest), content, bundle_version(content), self.signer,
            freshness_period=self.freshness_ms,
        )

    def _touch(self, digest: str) -> None:
        if next(reversed(self._entries)) == digest:
            # Already the most recently used (e.g. the next segment of the result being fetched):
            # the order, in memory and in the files' mtimes, would not change.
            return
        self._entries[digest] = self._entries.pop(digest)
        if digest not in self._located:  # a file keeps the time of its last use
            self._on_file(digest, _touch_file, self._path(digest))

    def _evict(self, keep: str) -> None:
        while self.total > self.max_bytes and len(self._entries) > 1:
            digest = next(iter(self._entries))
            if digest == keep:
                break
            own_file = self._has_file(digest)
            size = self._forget_entry(digest)
            self.total -= size
            self._served.pop(digest, None)
            self._verified.discard(digest)
            if own_file:
                self._on_file(digest, _remove, self._path(digest))
            log.info("event=result_evicted digest=%s bytes=%d", digest, size)

    # Installed functions -----------------------------------------------------------------------

    def save_functions(self, items: list[Installed], wire: list[Any] | None = None
                       ) -> Deferred[list[tuple[Installed, str]]]:
        """Keep installed functions for a restart: one file per install (a file per function cost
        a file creation each — up to 0.8 ms of CPU on ext4 here — and an autonomous node keeps
        every function of every job), written off the reactor. A file all of whose functions
        were kept again since (installed again) is removed. ``wire``: the items as they were
        received (:func:`~sflow.sfc.names.installed_to_wire`'s form, one per item), kept as they
        are rather than encoded again. Fires with the functions that could not be kept, with why."""
        self._saves += 1
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._saves}{FUNCTIONS_SUFFIX}"
        entries = wire if wire is not None else [installed_to_wire(item) for item in items]
        data = msgpack.packb(entries, use_bin_type=True)

        def kept(_: object) -> list[tuple[Installed, str]]:
            self._kept(name, [item.spec.digest for item in items])
            return []

        def failed(failure: Failure) -> list[tuple[Installed, str]]:
            return [(item, failure.getErrorMessage()) for item in items]

        return self.run(write_durably, self._functions / name, data).addCallbacks(kept, failed)

    def _kept(self, name: str, digests: list[str]) -> None:
        """The functions ``digests`` are kept in file ``name`` now: a file that no longer keeps the
        latest of any function is removed."""
        self._function_files[name] = set(digests)
        for digest in digests:
            before = self._function_file.get(digest)
            self._function_file[digest] = name
            if before is None or before == name:
                continue
            still = self._function_files.get(before)
            if still is not None:
                still.discard(digest)
                if not still:
                    del self._function_files[before]
                    self.run_detached(_remove, self._functions / before)

    def load_functions(self) -> list[Installed]:
        """The latest kept version of each function (:meth:`save_functions`), in the order they
        were kept (read once, when the node starts; files of a node before this version, one per
        function, are read too)."""
        latest: dict[str, Installed] = {}
        for path in sorted(self._functions.glob(f"*{FUNCTIONS_SUFFIX}"), key=_kept_order):
            try:
                raw = msgpack.unpackb(path.read_bytes(), raw=False)
                items = [installed_from_wire(entry) for entry in (raw if isinstance(raw, list) else [raw])]
            except (OSError, ValueError, msgpack.UnpackException, ProtocolError) as exc:
                log.warning("event=function_unreadable path=%s error=%s", path, exc)
                continue
            if not isinstance(raw, list) and items[0].spec.digest != path.stem:
                continue
            if not items:
                self.run_detached(_remove, path)
                continue
            for item in items:
                latest.pop(item.spec.digest, None)
                latest[item.spec.digest] = item
            self._kept(path.name, [item.spec.digest for item in items])
        return list(latest.values())


class _Copy:
    """A small result obtained from another node (:meth:`ResultStore.keep`), and its segments once
    they were asked for."""

    __slots__ = ("content", "program", "served")

    def __init__(self, program: str, content: bytes) -> None:
        self.program = program
        self.content = content
        self.served: SegmentedContent | None = None


def _store_threads() -> tuple[Blocking, Blocking, Detached]:
    """Runners (waited on, unhurried, and detached) on a pool of :data:`STORE_THREADS` threads of
    the global reactor's: few, so that the store's reads and writes neither crowd the disk nor each
    leave a thread's memory behind.

    What is waited on and asked in a turn of the reactor is handed to the threads when the turn
    ends: a store thread holds the interpreter while it runs Python, and one started at once
    competes with the reactor thread for the rest of the turn — in which the reactor answers the
    requests waiting for the result just stored (measured: about 0.1 ms more for the answer's
    Data, and as much again for its system call, per function of a chain).

    Unhurried and detached work waits :data:`UNHURRIED_SECONDS` and is then handed over as one
    task: one thread runs it all, in the order it was asked, and the outcomes of the unhurried
    calls come back to the reactor together. Each function of a chain used to wake a store thread
    three times (its record appended, its directory removed, a fresh one made), each wake-up a
    context switch and the interpreter taken from the reactor on a busy CPU; batched, a chain of
    200 over 3 nodes measured 4 to 9 % less wall time per function (medians of 10 interleaved
    rounds, two runs)."""
    from twisted.internet import reactor as _reactor
    from twisted.internet.threads import deferToThreadPool
    from twisted.python.threadpool import ThreadPool

    reactor: Any = _reactor
    pool = ThreadPool(minthreads=0, maxthreads=STORE_THREADS, name="sflow-store")
    pool.start()
    asked: list[Callable[[], object]] = []
    #: unhurried and detached calls, with the Deferred of their outcome (None: detached)
    unhurried: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any] | None]] = []
    timer: Any = None  # the delayed hand-over of the unhurried calls, while there are some

    def hand_over() -> None:
        batch = asked[:]
        asked.clear()
        for submit in batch:
            submit()

    def later(submit: Callable[[], object]) -> None:
        if not asked:
            reactor.callLater(0, hand_over)
        asked.append(submit)

    def hand_over_unhurried() -> None:
        nonlocal timer
        if timer is not None and timer.active():
            timer.cancel()  # (the shutdown hands them over at once)
        timer = None
        if unhurried:
            batch = unhurried[:]
            unhurried.clear()
            pool.callInThread(_run_batch, reactor, batch)

    # (what was asked before the shutdown is handed over before the threads stop: they finish it)
    reactor.addSystemEventTrigger("during", "shutdown", hand_over)
    reactor.addSystemEventTrigger("during", "shutdown", hand_over_unhurried)
    reactor.addSystemEventTrigger("during", "shutdown", pool.stop)

    def blocking(call: Callable[..., Any], *args: Any) -> Deferred[Any]:
        done: Deferred[Any] = Deferred()
        later(lambda: deferToThreadPool(reactor, pool, call, *args).chainDeferred(done))
        return done

    def ask_unhurried(call: Callable[..., Any], args: tuple[Any, ...], done: Deferred[Any] | None) -> None:
        nonlocal timer
        if timer is None:
            timer = reactor.callLater(UNHURRIED_SECONDS, hand_over_unhurried)
        unhurried.append((call, args, done))

    def unhurried_call(call: Callable[..., Any], *args: Any) -> Deferred[Any]:
        done: Deferred[Any] = Deferred()
        ask_unhurried(call, args, done)
        return done

    def detached(call: Callable[..., Any], *args: Any) -> None:
        ask_unhurried(call, args, None)

    return blocking, unhurried_call, detached


def _run_batch(reactor: Any, batch: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any] | None]]) -> None:
    """Run the calls of ``batch`` in order (in a store thread); then hand the outcomes of those
    with a Deferred to the reactor, all in one call. A detached call's failure is logged.
    Appends to packs asked for one after another are written together, made durable by one sync
    (:func:`~sflow.sfc.packs.append_all`)."""
    outcomes: list[tuple[Deferred[Any], Any]] = []
    start = 0
    while start < len(batch):
        call, args, done = batch[start]
        if call is packs.append:
            end = start + 1
            while end < len(batch) and batch[end][0] is packs.append:
                end += 1
            group = batch[start:end]
            errors = packs.append_all([args for _, args, _ in group])
            for (_, _, done), error in zip(group, errors):
                if done is not None:
                    outcomes.append((done, None if error is None else Failure(error)))
                elif error is not None:
                    log.error("event=store_task_failed call=append error=%s", error)
            start = end
            continue
        start += 1
        if done is None:
            _logged(call, *args)
            continue
        try:
            outcomes.append((done, call(*args)))
        except BaseException:  # noqa: BLE001 (as deferToThread does: every outcome goes to its Deferred)
            outcomes.append((done, Failure()))
    if outcomes:
        reactor.callFromThread(_deliver, outcomes)


def _deliver(outcomes: list[tuple[Deferred[Any], Any]]) -> None:
    for done, outcome in outcomes:
        if isinstance(outcome, Failure):
            done.errback(outcome)
        else:
            done.callback(outcome)


def _logged(call: Callable[..., Any], *args: Any) -> None:
    """``call(*args)`` in a store thread, nobody waiting: a failure is logged, not lost."""
    try:
        call(*args)
    except Exception:
        log.exception("event=store_task_failed call=%s", getattr(call, "__name__", call))


def _detach(blocking: Blocking, call: Callable[..., Any], *args: Any) -> None:
    """``call(*args)`` through an injected runner, nobody waiting: a failure is logged."""
    blocking(call, *args).addErrback(
        lambda failure: log.error("event=store_task_failed call=%s error=%s", getattr(call, "__name__", call),
                                  failure.getErrorMessage()))


# Disk operations (blocking; run off the reactor) ------------------------------------------------

def _write_result(path: Path, header: bytes, content: bytes) -> None:
    with DurableFile(path) as out:
        out.write(header)
        out.write(content)


def _read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError as exc:
        log.warning("event=result_unreadable path=%s error=%s", path, exc)
        return None


def _read_checked(path: Path) -> bytes | None:
    raw = _read_file(path)
    return _checked(raw) if raw is not None else None


def _touch_file(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        log.debug("event=result_touch_failed path=%s", path)


def _kept_order(path: Path) -> tuple[int, str]:
    """Files of installed functions in the order they were written: one file per function (older
    nodes) first, then one per install, named by the time it was written."""
    return (0 if "-" not in path.stem else 1, path.name)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _discard(path: Path, why: str) -> None:
    log.warning("event=result_damaged path=%s reason=%s action=removed", path, why.replace(" ", "_"))
    path.unlink(missing_ok=True)


def _checked(raw: bytes) -> bytes | None:
    """The bundle of a result file, or None when its length or digest is not its header's."""
    if len(raw) < HEADER.size:
        return None
    magic, length, digest = HEADER.unpack_from(raw)
    content = raw[HEADER.size:]
    if magic != MAGIC or len(content) != length or hashlib.sha256(content).digest() != digest:
        return None
    return content


def _file_has_digest(spooled: Spooled) -> bool:
    sha = hashlib.sha256()
    try:
        with spooled.path.open("rb") as f:
            f.seek(spooled.offset)
            left = spooled.length
            while left:
                chunk = f.read(min(1 << 20, left))
                if not chunk:
                    return False
                sha.update(chunk)
                left -= len(chunk)
    except OSError:
        return False
    return sha.digest() == spooled.sha256


def _read_block(spooled: Spooled, start: int, size: int) -> bytes:
    with spooled.path.open("rb") as f:
        f.seek(spooled.offset + start)
        return f.read(size)


class FileSegments:
    """A large stored result served from its file: the segment an Interest asks for comes from a
    block of :data:`BLOCK_SEGMENTS` segments read off the reactor (the next block is read ahead);
    the file's digest is checked before the first segment is served."""

    content: bytes | None = None

    def __init__(self, store: ResultStore, digest: str, prefix: Name, spooled: Spooled,
                 segment_size: int = DEFAULT_SEGMENT_SIZE) -> None:
        self.store = store
        self.digest = digest
        self.prefix = prefix
        self.spooled = spooled
        self.base = prefix.append(Component.version(version_of(spooled.sha256)))
        self.segment_size = segment_size
        self.count = max(1, -(-spooled.length // segment_size))
        self._final = Component.segment(self.count - 1)
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._reads: PeerPool[bytes] = PeerPool(self._read, lambda data: True)

    def answer(self, interest: Interest) -> Deferred[HandlerResult] | None:
        index = segment_asked(interest, self.prefix, self.base, self.count)
        if index is None:
            return None
        d = self.store.verified(self.digest, self.spooled)
        return d.addCallback(self._segment, index)

    def _segment(self, ok: bool, index: int) -> Deferred[HandlerResult] | HandlerResult:
        if not ok:
            return None  # damaged: removed from the store; the consumer asks again and it is made again
        block = index // BLOCK_SEGMENTS
        if block + 1 < -(-self.count // BLOCK_SEGMENTS):
            self._block(block + 1).addErrback(lambda _: None)  # read ahead (a failure shows when it is asked for)
        return self._block(block).addCallback(self._data, index, block)

    def _block(self, block: int) -> Deferred[bytes]:
        """Block ``block`` of the file: held, being read (one read per block, shared by all who
        ask meanwhile), or read now; at most :data:`BLOCKS_KEPT` are held."""
        held = self._blocks.get(block)
        if held is not None:
            self._blocks.move_to_end(block)
            return succeed(held)

        def keep(data: bytes) -> bytes:
            if block not in self._blocks:
                self._blocks[block] = data
                while len(self._blocks) > BLOCKS_KEPT:
                    self._reads.forget(self._blocks.popitem(last=False)[1])
            return data

        return self._reads.get(str(block)).addCallback(keep)

    def _read(self, block: str) -> Deferred[bytes]:
        size = BLOCK_SEGMENTS * self.segment_size
        d: Deferred[bytes] = self.store.run(_read_block, self.spooled, int(block) * size, size)
        return d

    def _data(self, data: bytes, index: int, block: int) -> Uncached:
        offset = (index - block * BLOCK_SEGMENTS) * self.segment_size
        return Uncached(make_data(self.base.append(Component.segment(index)), data[offset:offset + self.segment_size],
                                  freshness_period=self.store.freshness_ms, final_block_id=self._final,
                                  signer=self.store.signer))
