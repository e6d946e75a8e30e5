"""Durable files: a file sflow writes as complete is either all there or not there at all, even
if the machine loses power the moment after.

Every such file (a received transfer, a result in the store, an END result, a trace, settings or a
secret written by a command) is written through :class:`DurableFile`: into a temporary name in
the target's own directory, flushed and ``fsync``\\ ed, renamed over the target, and then the
directory is ``fsync``\\ ed so that the rename itself survives. A crash before the rename leaves
only a temporary file (``.<name>.<random>.part``), never a partial file under the real name.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

#: what the temporary names of unfinished files end with (a reader never takes such a file)
PART_SUFFIX = ".part"


def temporary_name(target: Path) -> Path:
    """A fresh temporary name beside ``target`` (same directory, so the rename is atomic)."""
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{PART_SUFFIX}")


def fsync_directory(directory: Path) -> None:
    """Make the entries of ``directory`` (a rename into it) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DurableFile:
    """A file being written to ``target``: :meth:`write` (or :attr:`file`, a binary file object,
    for code that wants one), then :meth:`commit` (flush, fsync, rename into place, fsync the
    directory) or :meth:`abort` (the temporary file is removed). Used as a context manager it
    commits on success and aborts on an exception. ``mode`` is the new file's permission bits
    before the umask (0600 for secrets). The directory must exist."""

    def __init__(self, target: str | os.PathLike[str], mode: int = 0o666) -> None:
        self.target = Path(target)
        self.temp = temporary_name(self.target)
        fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        self.file: BinaryIO = os.fdopen(fd, "wb")
        self._open = True

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self.file.tell()

    def write(self, data: bytes | memoryview) -> None:
        if not self._open:
            raise ValueError(f"{self.target}: written after it was committed or aborted")
        self.file.write(data)

    def commit(self) -> Path:
        """Make the file durable under its real name; returns that name. On an error (a full
        disk) nothing is left under either name."""
        if not self._open:
            raise ValueError(f"{self.target}: committed after it was committed or aborted")
        self._open = False
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.temp, self.target)
        except OSError:
            self._close_quietly()
            self._remove()
            raise
        fsync_directory(self.target.parent)
        return self.target

    def abort(self) -> None:
        """Forget the file: nothing is left under either name (safe to call more than once)."""
        self._open = False
        self._close_quietly()
        self._remove()

    def _close_quietly(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # a write that failed (a full disk) fails the buffered flush at close too

    def _remove(self) -> None:
        try:
            self.temp.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> DurableFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def write_durably(target: str | os.PathLike[str], data: bytes | str, mode: int = 0o666) -> Path:
    """Write ``data`` (text is UTF-8) to ``target`` durably, creating its directory if needed."""
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    with DurableFile(path, mode) as out:
        out.write(data.encode("utf-8") if isinstance(data, str) else data)
    return path
