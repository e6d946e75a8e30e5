"""Text made in a forked child while this process goes on with other work: a one-shot command
with two things to compute uses a second CPU (``sflow schedule`` formats a large mapping's task
lines there while it checks and measures the schedule).

The child shares everything this process had at the fork (copy-on-write), computes ``make()``,
sends its UTF-8 through a pipe and exits without running anything else of this process (no
``atexit``, no ``finally`` above the fork). The result does not depend on the child: when the
fork fails, or the child dies or fails, :meth:`Pending.result` computes ``make()`` here instead.
Only for pure functions of what exists at the fork, in a process that starts no threads it would
need in the child."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

#: how much of the child's text is read at a time
_CHUNK = 1 << 20


class Pending:
    """``make()``, being computed in a child process (see the module)."""

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make
        self._pid = 0
        self._fd = -1
        try:
            read_end, write_end = os.pipe()
        except OSError:
            return
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return
        if pid == 0:  # the child: never returns
            status = 1
            try:
                os.close(read_end)
                view = memoryview(make().encode())
                while view:
                    view = view[os.write(write_end, view):]
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        self._pid, self._fd = pid, read_end

    @property
    def forked(self) -> bool:
        """Whether a child is computing it (False: :meth:`result` computes it here)."""
        return self._pid != 0

    def result(self) -> str:
        """The text, from the child when it made it, else made here."""
        if not self._pid:
            return self._make()
        chunks = []
        try:
            while chunk := os.read(self._fd, _CHUNK):
                chunks.append(chunk)
        finally:
            status = self._reap()
        if status == 0:
            return b"".join(chunks).decode()
        return self._make()

    def cancel(self) -> None:
        """Stop the child, if there is one (its work is not wanted)."""
        if self._pid:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._reap()

    def _reap(self) -> int:
        os.close(self._fd)
        _, status = os.waitpid(self._pid, 0)
        self._pid, self._fd = 0, -1
        return status
