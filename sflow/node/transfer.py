"""Streaming files in chunks: a flow-controlled sender and a verifying receiver.

The sender is a Twisted push producer registered on the connection's transport: it has a few
chunks read and framed off the reactor thread at a time (``ahead``) and stops asking for more as
soon as the transport says its buffer is full (``pauseProducing``), so a fast sender never floods
a slow receiver and neither side holds more than a few chunks of a file in memory. In clear it
hashes what it reads and ends with the SHA-256.

The receiver writes chunks to a temporary name next to the final path, inside the job directory,
hashing as it goes; only when the size and SHA-256 match is the file made durable (fsync, once)
and renamed into place (:mod:`sflow.durable`). A file that fails, or a connection that drops
mid-file, leaves nothing behind. On a sealed channel neither side hashes (``digest=False``,
:meth:`FileSink.without_digest`): every chunk is authenticated, in order, by the channel itself,
and only the size is checked here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from twisted.internet.interfaces import IPushProducer, ITransport
from zope.interface import implementer

from sflow.durable import DurableFile
from sflow.errors import ProtocolError, SflowError
from sflow.model.paths import UnsafePath, job_relative

log = logging.getLogger(__name__)


class TransferError(SflowError):
    """A file could not be received: wrong size or digest, or an unsafe path."""


class AlreadyHave(TransferError):
    """The receiver has this file already (after a re-plan, a file may be offered twice): its bytes
    are not needed, and the sender hears that it was delivered."""


def safe_target(root: Path, path: str) -> Path:
    """``root/path`` for a job-relative ``path``, refusing anything that would leave ``root``
    (``..``, absolute paths, and symlinks already inside the job directory that point out)."""
    try:
        rel = job_relative(path)
    except UnsafePath as exc:
        raise TransferError(str(exc)) from None
    target = root / rel
    real_root = root.resolve()
    parent = target.parent.resolve()
    if parent != real_root and real_root not in parent.parents:
        raise TransferError(f"path {path!r} leaves the job directory through a symbolic link")
    if target.is_symlink():
        raise TransferError(f"path {path!r} is a symbolic link in the job directory")
    return target


def open_beneath(root: Path, path: Path) -> IO[bytes]:
    """Open ``path``, a regular file inside the job directory ``root``, for reading — checked on
    what was opened, not on the name before: a function (running as another user, or escaped
    from its process group) may swap a symbolic link or a FIFO in after :func:`safe_target`
    looked, and the node, which may be root, must then neither send what the link points to (the
    cluster secret) nor block on the FIFO. Raises :class:`TransferError` or ``OSError``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
        real_root = root.resolve()
        if opened != real_root and real_root not in opened.parents:
            raise TransferError(f"{path} leads outside the job directory")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TransferError(f"{path} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


#: Bytes a receiver writes between two starts of their writeback (:meth:`FileSink._start_writeback`).
WRITEBACK_STEP = 8 * 1024 * 1024


class FileSink:
    """Receives one file: a :class:`~sflow.durable.DurableFile` (temporary name, fsync, rename),
    a running SHA-256 and a size check; only a file whose size and digest match is renamed into
    place.

    :meth:`count` runs where the chunks arrive (it refuses more bytes than announced);
    :meth:`write`, :meth:`finish` and :meth:`abort` may run on a disk thread, in that order.
    """

    def __init__(self, root: Path, path: str, size: int) -> None:
        root.mkdir(parents=True, exist_ok=True)
        # Checked before creating the parents, and again after: nothing is created outside root.
        safe_target(root, path).parent.mkdir(parents=True, exist_ok=True)
        self.target = safe_target(root, path)
        self.size = size
        self.received = 0
        self._sha: Any = hashlib.sha256()
        self._file: DurableFile | None = DurableFile(self.target)
        self.temp = self._file.temp
        self._written = 0
        self._flushed = 0
        self._error: OSError | None = None

    def without_digest(self) -> None:
        """The channel authenticates every chunk in order (it is sealed): no SHA-256 here, and
        :meth:`finish` then expects an empty digest. Called before the first chunk."""
        self._sha = None

    def count(self, n: int) -> None:
        self.received += n
        if self.received > self.size:
            raise TransferError(f"{self.target.name}: more bytes than the announced {self.size}")

    def write(self, data: bytes | memoryview) -> None:
        """Hash and write a chunk; a disk error is kept and reported by :meth:`finish`."""
        if self._file is None or self._error is not None:
            return
        if self._sha is not None:
            self._sha.update(data)
        try:
            self._file.write(data)
        except OSError as exc:
            self._error = exc
        self._written += len(data)
        if self._written - self._flushed >= WRITEBACK_STEP:
            self._start_writeback()

    def _start_writeback(self) -> None:
        """Start writing what was written so far to the disk, without waiting: the fsync that
        makes the file durable then waits for the tail only, instead of the whole file after its
        last byte arrived. (On Linux, POSIX_FADV_DONTNEED starts the writeback of a range's dirty
        pages and drops only pages already clean, which freshly written ones are not: the file
        stays cached for the function that reads it next.)"""
        if self._file is None or not hasattr(os, "posix_fadvise"):
            return
        try:
            self._file.file.flush()
            os.posix_fadvise(self._file.file.fileno(), self._flushed, self._written - self._flushed, os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            log.debug("event=writeback_hint_failed file=%s error=%s", self.target.name, exc)
        self._flushed = self._written

    def finish(self, sha256: bytes) -> Path:
        """Verify and make durable under the real name; TransferError (and nothing left behind)
        otherwise. :meth:`without_digest`: ``sha256`` must be empty."""
        if self._file is None:
            raise ProtocolError("file ended twice")
        file, self._file = self._file, None
        problem = ""
        if self._error is not None:
            problem = f"cannot write: {self._error.strerror or self._error}"
        elif self._written != self.size:
            problem = f"received {self._written} bytes of {self.size}"
        elif self._sha is None and sha256:
            problem = "a digest where none was expected"
        elif self._sha is not None and self._sha.digest() != sha256:
            problem = "SHA-256 mismatch"
        if problem:
            file.abort()
            raise TransferError(f"{self.target.name}: {problem}")
        try:
            return file.commit()
        except OSError as exc:
            raise TransferError(f"{self.target.name}: cannot write: {exc.strerror or exc}") from None

    def abort(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.abort()


@dataclass(frozen=True, slots=True)
class Sent:
    """A file that was streamed: its size and digest (empty when the sender did not hash)."""

    size: int
    sha256: bytes


#: ``emit(make, then)``: run ``make()`` (it reads and frames one chunk) off the reactor thread, in
#: order, write the frame it returns (None: nothing to write) in its place among the connection's
#: frames, then call ``then(error)`` on the reactor (None on success).
Emit = Callable[[Callable[[], "list[bytes] | None"], Callable[[BaseException | None], None]], None]


@implementer(IPushProducer)
class FileSender:
    """Streams one open file of ``size`` bytes as data frames, paced by the transport.

    Each chunk is read and made into a frame (``frame(data)``: its wire parts; sealing it is the
    costly part) off the reactor thread through ``emit``, up to ``ahead`` chunks at a time, while
    the reactor writes the previous ones: the two overlap on two cores. ``on_end(sent)`` is called
    once the last chunk is written (the caller then sends ``file_end``), ``on_error(exc)`` if
    reading fails or the transport stops the producer. The sender reads ``size`` bytes at most (a
    file that shrinks meanwhile ends short, and the receiver's size check refuses it).
    ``digest``: hash what is read (SHA-256). ``reuse``: ``frame`` is done with ``data`` when it
    returns (it encrypts it into a frame of its own), so every chunk is read into one reused
    buffer instead of a fresh one.
    """

    def __init__(
        self,
        transport: ITransport,
        source: IO[bytes],
        size: int,
        chunk_size: int,
        frame: Callable[[bytes | memoryview], list[bytes]],
        emit: Emit,
        on_end: Callable[[Sent], None],
        on_error: Callable[[BaseException], None],
        digest: bool = True,
        reuse: bool = False,
        ahead: int = 4,
    ) -> None:
        self._transport: Any = transport
        self._source = source
        self._size = size
        self._chunk = chunk_size
        self._frame = frame
        self._emit = emit
        self._on_end = on_end
        self._on_error = on_error
        self._ahead = ahead
        self._sha = hashlib.sha256() if digest else None
        self._buffer = memoryview(bytearray(chunk_size)) if reuse else None
        self._asked = 0  # bytes of the file handed to emit so far
        self._read = 0  # bytes actually read (off the reactor; read on it once all are done)
        self._in_flight = 0
        self._paused = False
        self._pumping = False
        self._done = False

    def begin(self) -> None:
        self._transport.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        if not self._done:
            self._finish()
            self._on_error(ConnectionError("the connection closed while a file was being sent"))

    def _pump(self) -> None:
        if self._pumping:
            return  # called back from within emit (a frame made at once): the loop goes on
        self._pumping = True
        try:
            while not self._paused and not self._done and self._in_flight < self._ahead and self._asked < self._size:
                n = min(self._chunk, self._size - self._asked)
                self._asked += n
                self._in_flight += 1
                self._emit(lambda n=n: self._make(n), self._written)  # type: ignore[misc]
        finally:
            self._pumping = False
        if not self._done and self._in_flight == 0 and self._asked >= self._size:
            self._finish()
            self._on_end(Sent(self._read, self._sha.digest() if self._sha is not None else b""))

    def _make(self, n: int) -> list[bytes] | None:
        """Off the reactor, one chunk at a time in order: read up to ``n`` bytes and frame them."""
        if self._done:
            return None
        if self._buffer is None:
            data: bytes | memoryview = self._source.read(n)
        else:
            data = self._buffer[: self._source.readinto(self._buffer[:n]) or 0]  # type: ignore[attr-defined]
        if not data:
            return None
        self._read += len(data)
        if self._sha is not None:
            self._sha.update(data)
        return self._frame(data)

    def _written(self, error: BaseException | None) -> None:
        self._in_flight -= 1
        if self._done:
            if self._in_flight == 0:
                self._source.close()
            return
        if error is not None:
            self._finish()
            self._on_error(error)
            return
        self._pump()

    def _finish(self) -> None:
        self._done = True
        if self._in_flight == 0:
            self._source.close()
        self._transport.unregisterProducer()
