"""Log lines written after the work they tell of, bearing the time of the event.

On a node's way from one function to the next (a function's end answered to the functions that
wait for it, a placement's request sent to the node that will run it), a log line written at
once costs up to 0.1 ms on a busy CPU, and the functions wait for it. :func:`record` makes the
line's record at the event — its time, level, message and arguments — and :func:`write` hands it
to its logger once the work is done (its message is formatted then). Read across nodes in time
order, the lines keep the order of causes and effects.
"""

from __future__ import annotations

import logging
from typing import Any


def record(logger: logging.Logger, level: int, message: str, *args: Any) -> logging.LogRecord | None:
    """A record of ``logger`` made now, for :func:`write`; None when ``level`` is not logged."""
    if not logger.isEnabledFor(level):
        return None
    return logger.makeRecord(logger.name, level, "", 0, message, args, None)


def write(logger: logging.Logger, made: logging.LogRecord | None) -> None:
    """Write a record :func:`record` made (nothing for None)."""
    if made is not None:
        logger.handle(made)
