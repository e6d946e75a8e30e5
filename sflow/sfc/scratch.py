"""Working directories for ICN functions, made ahead of need and off the reactor.

Every ICN function runs in a directory of its own, made for it and removed after it. Making a
directory (and handing it to the function user) is a metadata write that costs from 0.1 to more
than 0.5 ms on a virtual disk, and it was on every function's path, on the reactor. A
:class:`FreshDirectories` keeps a few empty directories made by a store thread; a function takes
one at once and another is made behind it. When none is ready (a burst) one is made on the spot,
as before. Each directory is made by ``mkdir`` on a name of this process (``scratch-<pid>-<n>``),
so it is new and empty: one left by an earlier process with the same pid is removed first. What
is still unused when the node stops is removed (:meth:`FreshDirectories.close`).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import deque
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: directories kept ready per vCPU
READY_PER_VCPU = 2


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


class FreshDirectories:
    """Empty directories under ``parent``, ``keep`` of them made ahead (``detached`` runs the
    blocking work off the reactor, nobody waiting; ``prepare`` finishes each, e.g. its owner)."""

    def __init__(self, parent: Path, keep: int, detached: Callable[..., None],
                 prepare: Callable[[Path], None] | None = None) -> None:
        self.parent = parent
        self.keep = keep
        self._detached = detached
        self._prepare = prepare
        # Filled by store threads (deque appends and pops are atomic), taken by the reactor.
        self._ready: deque[Path] = deque()
        self._count = 0
        self._asked = 0
        self._finished = 0  # written by the threads only
        self._closed = False

    def take(self) -> Path:
        """A new, empty directory: one made ahead, else one made now."""
        try:
            path = self._ready.popleft()
        except IndexError:
            path = make_fresh(self._name(), self._prepare)
        self._refill()
        return path

    def _name(self) -> Path:
        self._count += 1
        return self.parent / f"scratch-{os.getpid()}-{self._count}"

    def _refill(self) -> None:
        if self._closed:
            return
        missing = self.keep - len(self._ready) - (self._asked - self._finished)
        for _ in range(missing):
            self._asked += 1
            self._detached(self._make, self._name())

    def _make(self, path: Path) -> None:
        """In a store thread: make ``path`` and offer it (or remove it: the node is stopping)."""
        try:
            self._ready.append(make_fresh(path, self._prepare))
        finally:
            self._finished += 1
        if self._closed:
            self.close()

    def close(self) -> None:
        """Remove the directories made and not taken (the node stops); none is made after."""
        self._closed = True
        while self._ready:
            path = self._ready.popleft()
            try:
                path.rmdir()
            except OSError as exc:
                log.debug("event=scratch_not_removed path=%s error=%s", path, exc)
