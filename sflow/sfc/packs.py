"""Pack files: the small results of a node's store appended one after another to a few files,
instead of a file each.

Creating a file is the dearest thing a node does with its disk for a small result. On ext4
without a journal it costs from 0.02 to over 0.8 ms of CPU (the allocator skips, and reads, the
inodes freed in the last minutes — and a node frees one for every function's working directory);
a durable file (:mod:`sflow.durable`: temporary file, ``fsync``, rename, ``fsync`` of the
directory) cost 1.2 ms of CPU per result measured on such a machine, an append and
``fdatasync`` 0.13 ms. A node stores a result for every function it runs.

Layout: ``<results>/<time ns>-<pid>-<random>.pack``. A process appends only to packs it made: one
at a time, a new one once :data:`PACK_BYTES` are in it, so that stores sharing a directory never
write into one file. A record is a header, the result's digest (ASCII) and the bundle:

======================= =====================================================================
field                   octets
======================= =====================================================================
magic ``SFP1``          4 (``SFPD`` once the store no longer serves the record)
digest length           2 (big-endian, like every number here)
bundle length           8
bundle SHA-256          32
CRC-32                  4: of the fields above but the magic, and of the digest
======================= =====================================================================

A record the store no longer serves (evicted, found damaged, replaced, compacted elsewhere) is
marked dead (:func:`bury`: its magic rewritten in place), so that a restarted store does not take
it back; a pack none of whose records is served is removed, and one whose served records fill
less than half of it is compacted by the store.

An append is one ``pwritev`` at an offset the store gave it (so two threads append at once),
then ``fdatasync`` — one for the appends a store thread is given together (:func:`append_all`);
a new pack's name is made durable (its directory ``fsync``'d) with its first
record. What a crash or a damaged disk can leave is found, never served: a record cut short at the
end of a pack, or a header whose CRC does not match, ends the :func:`scan` of that pack (what
follows in it is computed again when asked for); a bundle whose SHA-256 does not match is found
when it is read (:func:`read`), and the store drops it.

Blocking: the store runs these functions off the reactor.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from sflow.durable import fsync_directory
from sflow.sfc.bundlefile import STREAM_THRESHOLD

log = logging.getLogger(__name__)

#: what pack files' names end with
PACK_SUFFIX = ".pack"
#: a pack takes no more records once this many octets are in it (a record of up to
#: :data:`~sflow.sfc.bundlefile.STREAM_THRESHOLD` still fits in a pack that holds none)
PACK_BYTES = 16 << 20
MAGIC = b"SFP1"
DEAD = b"SFPD"
#: magic, digest length, bundle length, bundle SHA-256 (the CRC-32 follows)
FIELDS = struct.Struct("!4sHQ32s")
CRC = struct.Struct("!I")
HEAD_SIZE = FIELDS.size + CRC.size
#: the longest digest a record holds (a SHA-256 in hex is 64)
MAX_DIGEST = 128


@dataclass(eq=False)
class Pack:
    """A pack file and what the store knows of it. Its numbers are the reactor's: ``size`` (octets
    given to records, written or being written), ``live`` (digest → offset and size of each record
    the store serves from it) and ``live_bytes`` (their sizes' sum), ``writing`` (appends under
    way); ``closed`` once it takes no more records."""

    path: Path
    size: int = 0
    live: dict[str, tuple[int, int]] = field(default_factory=dict)
    live_bytes: int = 0
    writing: int = 0
    closed: bool = False
    compacting: bool = False
    #: its name is durable in its directory (set by the first append, in a store thread)
    named: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Record:
    """A record :func:`scan` found: the result's digest, where its record starts, its size, and the
    bundle's length and SHA-256."""

    digest: str
    offset: int
    size: int
    length: int
    sha256: bytes


def new_pack(directory: Path) -> Pack:
    """A pack not made yet (its file is made by its first append), named by the time, the process
    and a random part."""
    return Pack(directory / f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}{PACK_SUFFIX}")


def record_size(digest: str, length: int) -> int:
    return HEAD_SIZE + len(digest) + length


def _head(digest: bytes, length: int, sha256: bytes) -> bytes:
    fields = FIELDS.pack(MAGIC, len(digest), length, sha256)
    return fields + CRC.pack(zlib.crc32(digest, zlib.crc32(fields[len(MAGIC):]))) + digest


#: what :func:`append_all` takes of a record: its pack, offset, digest, bundle SHA-256 and bundle
Append = tuple[Pack, int, str, bytes, bytes]


def append(pack: Pack, offset: int, digest: str, sha256: bytes, content: bytes) -> None:
    """Write a record at ``offset`` of ``pack`` (made if it is not there) and make it durable."""
    error = append_all([(pack, offset, digest, sha256, content)])[0]
    if error is not None:
        raise error


def append_all(records: list[Append]) -> list[OSError | None]:
    """Write ``records`` (each where :func:`append` would) and make them durable with one
    ``fdatasync`` per pack: appends asked for together share it (a group commit; the sync is
    most of an append's cost, about 60 µs of CPU and 150 µs of waiting each here). Each record's
    outcome, in order: None once it is durable, else the error (a record not written, or a
    sync that failed, fails the records it would have made durable)."""
    outcomes: list[OSError | None] = [None] * len(records)
    by_pack: dict[int, list[int]] = {}
    for index, record in enumerate(records):
        by_pack.setdefault(id(record[0]), []).append(index)
    for indices in by_pack.values():
        pack = records[indices[0]][0]
        try:
            fd = os.open(pack.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            for index in indices:
                outcomes[index] = exc
            continue
        written: list[int] = []
        try:
            for index in indices:
                _, offset, digest, sha256, content = records[index]
                try:
                    _write_record(fd, pack, offset, digest, sha256, content)
                    written.append(index)
                except OSError as exc:
                    outcomes[index] = exc
            if written:
                os.fdatasync(fd)
            if written and not pack.named:
                with pack.lock:
                    if not pack.named:
                        fsync_directory(pack.path.parent)
                        pack.named = True
        except OSError as exc:
            for index in written:
                outcomes[index] = exc
        finally:
            os.close(fd)
    return outcomes


def _write_record(fd: int, pack: Pack, offset: int, digest: str, sha256: bytes, content: bytes) -> None:
    head = _head(digest.encode("ascii"), len(content), sha256)
    written = os.pwritev(fd, [head, content], offset)
    if written != len(head) + len(content):
        raise OSError(errno.ENOSPC, f"{pack.path}: {written} of {len(head) + len(content)} octets written")


def _parse(head: bytes, offset: int, end: int) -> tuple[bytes, str, int, bytes, int] | None:
    """The magic, digest, bundle length, SHA-256 and record size of the header ``head`` (read at
    ``offset``, with at least :data:`MAX_DIGEST` octets after it unless the file ends first), or
    None when it is not a whole, sound record's (live or dead)."""
    if len(head) < HEAD_SIZE:
        return None
    magic, digest_length, length, sha256 = FIELDS.unpack_from(head)
    (crc,) = CRC.unpack_from(head, FIELDS.size)
    raw = head[HEAD_SIZE:HEAD_SIZE + digest_length]
    if (magic not in (MAGIC, DEAD) or not 0 < digest_length <= MAX_DIGEST or len(raw) != digest_length
            or zlib.crc32(raw, zlib.crc32(head[len(MAGIC):FIELDS.size])) != crc or length > STREAM_THRESHOLD):
        return None
    size = HEAD_SIZE + digest_length + length
    if offset + size > end:
        return None
    try:
        return magic, raw.decode("ascii"), length, sha256, size
    except UnicodeDecodeError:
        return None


def scan(path: Path) -> tuple[list[Record], int, str | None]:
    """The live records of a pack in the order they were written, its size, and why the scan
    stopped before its end (None when it read to the end). One read per record: the bundles are
    not read (their SHA-256 is checked when they are)."""
    records: list[Record] = []
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        end = os.fstat(fd).st_size
        offset = 0
        while offset < end:
            parsed = _parse(os.pread(fd, HEAD_SIZE + MAX_DIGEST, offset), offset, end)
            if parsed is None:
                return records, end, f"no sound record at octet {offset} of {end}"
            magic, digest, length, sha256, size = parsed
            if magic == MAGIC:
                records.append(Record(digest, offset, size, length, sha256))
            offset += size
    finally:
        os.close(fd)
    return records, end, None


def _read_at(fd: int, end: int, offset: int, digest: str) -> bytes | None:
    head = os.pread(fd, HEAD_SIZE + len(digest), offset)
    parsed = _parse(head, offset, end)
    if parsed is None or parsed[0] != MAGIC or parsed[1] != digest:
        return None
    _, _, length, sha256, _ = parsed
    content = os.pread(fd, length, offset + HEAD_SIZE + len(digest))
    if len(content) != length or hashlib.sha256(content).digest() != sha256:
        return None
    return content


def read(path: Path, offset: int, digest: str) -> bytes | None:
    """The bundle of ``digest``'s record at ``offset`` of a pack, checked (header, digest, length,
    SHA-256); None when the pack is gone or the record is not sound."""
    return read_many(path, [(digest, offset)])[0][2]


def read_many(path: Path, wanted: list[tuple[str, int]]) -> list[tuple[str, int, bytes | None]]:
    """:func:`read` of each (digest, offset) of ``wanted``, the pack opened once."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        log.info("event=pack_unreadable path=%s error=%s", path, exc)
        return [(digest, offset, None) for digest, offset in wanted]
    try:
        end = os.fstat(fd).st_size  # (once: a pack only grows while it is read)
        found = []
        for digest, offset in wanted:
            try:
                found.append((digest, offset, _read_at(fd, end, offset, digest)))
            except OSError as exc:
                log.warning("event=pack_unreadable path=%s offset=%d error=%s", path, offset, exc)
                found.append((digest, offset, None))
        return found
    finally:
        os.close(fd)


def bury(path: Path, offset: int) -> None:
    """Mark the record at ``offset`` dead (not made durable: a record that outlives a crash is
    sound, only served again); nothing when the pack is gone."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        os.pwrite(fd, DEAD, offset)
    finally:
        os.close(fd)
