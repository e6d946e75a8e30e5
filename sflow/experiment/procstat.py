"""CPU time and resident memory of a process and its descendants, read from Linux's ``/proc``
(for the resource samples of an experiment's local nodes; for a node on another host, from the
text of its ``/proc/PID/stat`` read there)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sflow.proctree import PROC, descendants

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds used so far and resident memory (KiB) now: of the process itself, and of its
    descendants together."""

    cpu_s: float
    rss_kb: int
    children_cpu_s: float
    #: None where only the process's own stat was read (a node on another host)
    children_rss_kb: int | None


def _stat(pid: int) -> tuple[float, float, int] | None:
    """(CPU seconds, CPU seconds of its children that ended, RSS KiB) of one process; None when it
    is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return parse_stat(text)


def parse_stat(text: str) -> tuple[float, float, int] | None:
    """(CPU seconds, CPU seconds of its children that ended, RSS KiB) from the text of a
    ``/proc/PID/stat`` (this host's clock ticks and page size); None when it is not one."""
    fields = text[text.rfind(")") + 2:].split()
    if len(fields) < 22:
        return None
    # From field 3 of man 5 proc: [11] utime, [12] stime, [13] cutime, [14] cstime, [21] rss (pages).
    return ((int(fields[11]) + int(fields[12])) / _TICKS, (int(fields[13]) + int(fields[14])) / _TICKS,
            int(fields[21]) * _PAGE_KB)


def usage(pid: int) -> Usage | None:
    """The process ``pid`` and all its descendants now (those that ended and were waited for
    count in their parents' CPU time); None when it is gone."""
    own = _stat(pid)
    if own is None:
        return None
    cpu = own[1]
    rss = 0
    for child in descendants(pid):
        stat = _stat(child)
        if stat is None:
            continue
        cpu += stat[0] + stat[1]
        rss += stat[2]
    return Usage(own[0], own[2], cpu, rss)


def own_usage(text: str) -> Usage | None:
    """A process's usage from its ``/proc/PID/stat`` text alone: its CPU time and RSS, and the CPU
    time of the children it waited for (its functions that ended); the memory of live children is
    unknown (None)."""
    stat = parse_stat(text)
    if stat is None:
        return None
    return Usage(stat[0], stat[2], stat[1], None)
