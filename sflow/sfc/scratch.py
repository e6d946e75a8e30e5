"""Working directories for ICN functions, made ahead of need, used again, and kept off the reactor.

Every ICN function runs in a directory of its own, new and empty. Making a directory (and handing
it to the function user) is a metadata write, and so is removing one: on ext4 a ``mkdir`` after
many removals searches the inode table for inodes not recently deleted, and making and removing
a directory per function took about 7 % of the machine's CPU in a fork-join of 1,000 functions
(``perf``: ``__ext4_new_inode`` → ``recently_deleted``). A :class:`FreshDirectories` keeps a few
empty directories ready. A function takes one at once; when it ends, its directory is given back,
emptied by a store thread, and ready for another function. A directory is used again only as it
was made: empty, with the same inode, mode and owner, and no extended attributes (an ACL) — else
it is removed and a new one made. When none is ready (a burst) one is made on the spot, as
before. Each directory is made by ``mkdir`` on a name of this process (``scratch-<pid>-<n>``), so
it is new: one left by an earlier process with the same pid is removed first. What is still
unused when the node stops is removed (:meth:`FreshDirectories.close`).

A directory used again lends a function nothing another one could not reach: every function of a
node runs as the same function user, who can write in the directories of those running beside it.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: directories a node keeps per vCPU: those ready, those in use and those being emptied, together
#: (a directory given back is emptied up to 20 ms later, with the store's other unhurried work:
#: at hundreds of functions a second, fewer left the node making directories on the spot)
READY_PER_VCPU = 8


def make_fresh(path: Path, prepare: Callable[[Path], None] | None = None) -> Path:
    """A new, empty directory at ``path`` (one left there by a dead process of the same pid is
    removed first), given to ``prepare`` (the function user's ownership). Blocking."""
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    if prepare is not None:
        try:
            prepare(path)
        except BaseException:
            path.rmdir()
            raise
    return path


def _identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """What must not have changed for a directory to be used again: device, inode, mode, owner."""
    return st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid


def _emptied(path: Path, made: tuple[int, int, int, int, int] | None) -> bool:
    """Remove everything in ``path`` when it is still the directory made there (``made``: its
    identity then), and say whether it is still as it was made: same identity, no extended
    attributes. The directory is opened without following a symbolic link and emptied through
    that descriptor (entries are removed, never followed): a function that put a link in its
    directory's place — it can, when the node runs functions as its own user — empties nothing
    of where it leads. Blocking."""
    if made is None:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if _identity(os.fstat(fd)) != made:
            return False
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.name, dir_fd=fd)
                else:
                    os.unlink(entry.name, dir_fd=fd)
        return _identity(os.fstat(fd)) == made and not _has_attributes(fd)
    finally:
        os.close(fd)


def _has_attributes(fd: int) -> bool:
    try:
        return bool(os.listxattr(fd))
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.ENOSYS):
            return False  # a file system without extended attributes
        raise


def _remove(path: Path) -> None:
    """Remove a directory not to be used again (a link in its place: the link). Blocking."""
    try:
        if path.is_symlink():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)
    except OSError as exc:
        log.debug("event=scratch_not_removed path=%s error=%s", path, exc)


class FreshDirectories:
    """Empty directories under ``parent``: ``keep`` of them in all, those ready and those in use,
    made ahead and emptied for another use by ``detached`` (blocking work off the reactor, nobody
    waiting); ``prepare`` finishes each new one, e.g. its owner."""

    def __init__(self, parent: Path, keep: int, detached: Callable[..., None],
                 prepare: Callable[[Path], None] | None = None) -> None:
        self.parent = parent
        self.keep = keep
        self._detached = detached
        self._prepare = prepare
        # Filled by store threads (deque appends and pops are atomic), taken by the reactor.
        self._ready: deque[Path] = deque()
        #: each directory's identity when it was made (written by whoever made it)
        self._made: dict[Path, tuple[int, int, int, int, int]] = {}
        self._count = 0
        self._handed = 0  # directories handed to the threads: to be made, or given back to be emptied
        self._finished = 0  # of those, the ones the threads are done with (written by the threads only)
        self._finishing = threading.Lock()  # (two store threads may finish at once)
        self._out = 0  # taken and not given back
        self._closed = False

    def take(self) -> Path:
        """A new, empty directory: one ready, else one made now."""
        try:
            path = self._ready.popleft()
        except IndexError:
            path = self._make_now(self._name())
        self._out += 1
        self._refill()
        return path

    def give_back(self, path: Path) -> None:
        """The function that took ``path`` is done with it: it is emptied off the reactor and kept
        for another (or removed)."""
        self._out -= 1
        self._handed += 1
        self._detached(self._recycle, path)

    def fill(self) -> None:
        """Have every directory kept made ahead now (a node starting: its first functions then
        find theirs ready)."""
        self._refill()

    def _name(self) -> Path:
        self._count += 1
        return self.parent / f"scratch-{os.getpid()}-{self._count}"

    def _make_now(self, path: Path) -> Path:
        made = make_fresh(path, self._prepare)
        self._made[made] = _identity(os.lstat(made))
        return made

    def _refill(self) -> None:
        if self._closed:
            return
        coming = self._handed - self._finished
        missing = self.keep - len(self._ready) - self._out - coming
        for _ in range(missing):
            self._handed += 1
            self._detached(self._make, self._name())

    def _make(self, path: Path) -> None:
        """In a store thread: make ``path`` and offer it (or remove it: the node is stopping)."""
        try:
            self._ready.append(self._make_now(path))
        finally:
            self._done()
        if self._closed:
            self.close()

    def _done(self) -> None:
        with self._finishing:
            self._finished += 1

    def _recycle(self, path: Path) -> None:
        """In a store thread: empty ``path`` and offer it again, when it is still as it was made;
        else remove it."""
        try:
            usable = not self._closed and len(self._ready) < self.keep and _emptied(path, self._made.get(path))
        except OSError as exc:
            log.debug("event=scratch_not_reused path=%s error=%s", path, exc)
            usable = False
        try:
            if usable:
                self._ready.append(path)
            else:
                self._made.pop(path, None)
                _remove(path)
        finally:
            self._done()
        if self._closed:
            self.close()

    def close(self) -> None:
        """Remove the directories made and not taken (the node stops); none is made after."""
        self._closed = True
        while self._ready:
            path = self._ready.popleft()
            self._made.pop(path, None)
            try:
                path.rmdir()
            except OSError as exc:
                log.debug("event=scratch_not_removed path=%s error=%s", path, exc)
