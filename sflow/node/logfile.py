"""The node's log file, written once per turn of the reactor rather than once per line.

Python's ``FileHandler`` flushes after every record: one ``write`` system call per line, from 30
to over 100 µs each on a virtual disk, on the reactor thread. A node logs several lines per
function (start, end, queued, placed), and a join node places a thousand inputs in one turn.
:class:`TurnFlushedFileHandler` keeps the INFO lines of a turn in the file's buffer and writes
them together when the turn ends (a 0-second call on the reactor).

A WARNING or worse is written at once, and so is any line logged while the reactor is not
running (start-up, shutdown) or from another thread. If the node is killed, what can be lost is
the INFO lines of the turn it was in.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any


def _global_reactor() -> Any:
    """Twisted's global reactor once something has imported it (importing it here would install
    one), else None."""
    module = sys.modules.get("twisted.internet.reactor")
    return module if module is not None and hasattr(module, "callLater") else None


class TurnFlushedFileHandler(logging.FileHandler):
    """A ``FileHandler`` on ``path`` whose INFO lines logged on the reactor's thread while it
    runs are written at the end of the reactor's turn (``reactor``: the global one by default)."""

    def __init__(self, path: str | os.PathLike[str], reactor: Any = None) -> None:
        super().__init__(path, encoding="utf-8")
        self._given = reactor
        self._hold = False  # set for the record being emitted (under the handler's lock)
        self._flush_asked = False

    def emit(self, record: logging.LogRecord) -> None:
        reactor = self._given if self._given is not None else _global_reactor()
        self._hold = (record.levelno < logging.WARNING and reactor is not None and bool(reactor.running)
                      and threading.current_thread() is threading.main_thread())
        try:
            super().emit(record)  # writes to the buffer, then calls flush()
            if self._hold and not self._flush_asked:
                self._flush_asked = True
                reactor.callLater(0, self._turn_ended)
        finally:
            self._hold = False

    def flush(self) -> None:
        if not self._hold:
            super().flush()

    def _turn_ended(self) -> None:
        self.acquire()
        try:
            self._flush_asked = False
            super().flush()
        finally:
            self.release()
