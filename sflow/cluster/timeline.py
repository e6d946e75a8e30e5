"""Merge per-host logs into one timeline, each line prefixed by its host.

A line's time is the timestamp it starts with: sflow's ``2026-01-31T12:00:00.123`` (``T`` or a space,
``.`` or ``,`` before the fraction) or the original's ``2026/01/31 12:00:00.123:``. A line without one
(a traceback, a wrapped message) keeps the time of the line before it, so it stays with its record.
Each host's log is in time order already; the merge is a streaming k-way merge, stable across hosts
in inventory order.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator
from datetime import datetime

_STAMP = re.compile(r"^(\d{4})[-/](\d{2})[-/](\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,6}))?")


def line_time(line: str) -> datetime | None:
    match = _STAMP.match(line)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction = match.groups()
    micro = int((fraction or "0").ljust(6, "0"))
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro)
    except ValueError:
        return None


def _timed(host_index: int, lines: Iterable[str]) -> Iterator[tuple[datetime, int, int, str]]:
    current = datetime.min
    for number, line in enumerate(lines):
        current = line_time(line) or current
        yield current, host_index, number, line.rstrip("\n")


def merge_logs(logs: Iterable[tuple[str, Iterable[str]]]) -> Iterator[str]:
    """``host | line`` for every line of every (host, lines) pair, in time order."""
    named = list(logs)
    width = max((len(host) for host, _ in named), default=0)
    streams = [_timed(i, lines) for i, (_, lines) in enumerate(named)]
    for _, index, _, text in heapq.merge(*streams):
        yield f"{named[index][0]:<{width}} | {text}"
