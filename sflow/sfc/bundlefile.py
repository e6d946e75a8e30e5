"""Result bundles as files, in chunks: a large result is never held whole in memory.

:func:`write_bundle` writes the bundle of a function's output files (read a chunk at a time) with
exactly the bytes :func:`~sflow.sfc.bundle.encode_bundle` makes of them — the same result has the
same version wherever, however it is made — and :func:`extract_bundle` writes a bundle's files
from a file into a directory, a chunk at a time; a :class:`Spool` receives a bundle into a file as
its segments arrive. Blocking: callers run them off the reactor.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, ContextManager

from sflow.durable import DurableFile
from sflow.errors import DecodeError
from sflow.model.paths import UnsafePath, job_relative
from sflow.sfc.bundle import BUNDLE_FORMAT

CHUNK = 1 << 20
#: results larger than this are spooled to files and served from them, never held whole in memory
STREAM_THRESHOLD = 4 << 20


def _array(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + struct.pack("!H", n)
    return b"\xdd" + struct.pack("!I", n)


def _str(text: str) -> bytes:
    raw = text.encode("utf-8")
    n = len(raw)
    if n < 32:
        head = bytes([0xA0 | n])
    elif n < 1 << 8:
        head = b"\xd9" + bytes([n])
    elif n < 1 << 16:
        head = b"\xda" + struct.pack("!H", n)
    else:
        head = b"\xdb" + struct.pack("!I", n)
    return head + raw


def _bin_head(n: int) -> bytes:
    if n < 1 << 8:
        return b"\xc4" + bytes([n])
    if n < 1 << 16:
        return b"\xc5" + struct.pack("!H", n)
    if n < 1 << 32:
        return b"\xc6" + struct.pack("!I", n)
    raise ValueError(f"an output file of {n} octets is larger than a bundle can carry (4 GiB)")


def write_bundle(files: Sequence[tuple[str, Path]], write: Callable[[bytes], object],
                 opener: Callable[[Path], IO[bytes]] = lambda p: p.open("rb")) -> None:
    """Write the bundle of ``files`` (bundle path, file on disk, opened with ``opener``) through
    ``write``."""
    ordered = sorted(files)
    write(_array(2) + bytes([BUNDLE_FORMAT]) + _array(len(ordered)))
    for path, source in ordered:
        with opener(source) as f:
            size = f.seek(0, 2)
            f.seek(0)
            write(_array(2) + _str(path) + _bin_head(size))
            left = size
            while left:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise OSError(f"{source} shrank while it was read")
                write(chunk)
                left -= len(chunk)


class _Reader:
    def __init__(self, src: BinaryIO, length: int) -> None:
        self.src = src
        self.left = length

    def take(self, n: int) -> bytes:
        if n > self.left:
            raise DecodeError("result bundle: truncated")
        raw = self.src.read(n)
        if len(raw) != n:
            raise DecodeError("result bundle: truncated")
        self.left -= n
        return raw

    def byte(self) -> int:
        return self.take(1)[0]

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def array(self) -> int:
        b = self.byte()
        if b & 0xF0 == 0x90:
            return b & 0x0F
        if b == 0xDC:
            return self.number(2)
        if b == 0xDD:
            return self.number(4)
        raise DecodeError("result bundle: expected an array")

    def text(self) -> str:
        b = self.byte()
        if b & 0xE0 == 0xA0:
            n = b & 0x1F
        elif b in (0xD9, 0xDA, 0xDB):
            n = self.number({0xD9: 1, 0xDA: 2, 0xDB: 4}[b])
        else:
            raise DecodeError("result bundle: expected a path")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("result bundle: a path is not UTF-8") from None

    def bin_size(self) -> int:
        b = self.byte()
        if b in (0xC4, 0xC5, 0xC6):
            return self.number({0xC4: 1, 0xC5: 2, 0xC6: 4}[b])
        raise DecodeError("result bundle: expected file content")


def plain_file(path: Path) -> BinaryIO:
    """A target for :func:`extract_bundle`: the file at ``path``, its directory made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("wb")


def extract_bundle(src: BinaryIO, length: int, target: Callable[[str], ContextManager[Any] | None]) -> list[str]:
    """Read the ``length``-octet bundle at ``src``'s position; write each file for which
    ``target(path)`` opens a writer (a context manager with ``write``: :func:`plain_file`, a
    :class:`~sflow.durable.DurableFile`), skip the others. The paths of the bundle's files,
    checked to stay inside a job directory."""
    reader = _Reader(src, length)
    if reader.array() != 2 or reader.byte() != BUNDLE_FORMAT:
        raise DecodeError("result bundle: expected [1, [[path, bytes], ...]]")
    paths = []
    for _ in range(reader.array()):
        if reader.array() != 2:
            raise DecodeError("result bundle: expected [path, bytes] entries")
        try:
            path = job_relative(reader.text())
        except UnsafePath as exc:
            raise DecodeError(f"result bundle: {exc}") from None
        size = reader.bin_size()
        dest = target(path)
        if dest is None:
            while size:
                size -= len(reader.take(min(CHUNK, size)))
        else:
            with dest as out:
                while size:
                    chunk = reader.take(min(CHUNK, size))
                    out.write(chunk)
                    size -= len(chunk)
        paths.append(path)
    if reader.left:
        raise DecodeError("result bundle: data after its end")
    return paths


@dataclass(frozen=True, slots=True)
class Spooled:
    """A result bundle held in a file: ``length`` octets from ``offset`` of ``path``, whose
    SHA-256 is ``sha256``."""

    path: Path
    offset: int
    length: int
    sha256: bytes

    @property
    def version(self) -> int:
        return version_of(self.sha256)


def version_of(sha256: bytes) -> int:
    """A bundle's version component from its SHA-256 (as :func:`~sflow.sfc.bundle.bundle_version`)."""
    return int.from_bytes(sha256[:6], "big")


class Spool:
    """A bundle being written to a file as it arrives (a :class:`~sflow.durable.DurableFile`:
    nothing under the real name until :meth:`finish`), ``header`` octets reserved before it for
    ``make_header(length, sha256)``; its SHA-256 is computed on the way. :meth:`finish` (blocking:
    it fsyncs) writes the header and commits."""

    def __init__(self, target: Path, header: int = 0,
                 make_header: Callable[[int, bytes], bytes] | None = None) -> None:
        self.target = target
        self.header = header
        self.make_header = make_header
        self.file = DurableFile(target)
        self.file.write(b"\0" * header)
        self._sha = hashlib.sha256()
        self.length = 0

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self._sha.update(chunk)
        self.length += len(chunk)

    @property
    def version(self) -> int:
        return version_of(self._sha.digest())

    def finish(self) -> Spooled:
        sha = self._sha.digest()
        if self.make_header is not None:
            self.file.file.seek(0)
            self.file.write(self.make_header(self.length, sha))
        path = self.file.commit()
        return Spooled(path, self.header, self.length, sha)

    def abort(self) -> None:
        self.file.abort()
