"""The processes below a process on this machine, read from Linux's ``/proc`` (its children
through each thread's ``children`` file): to take a node's functions with it when it is killed."""

from __future__ import annotations

import os
import signal
from pathlib import Path

PROC = Path("/proc")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` now."""
    out: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` now (children first)."""
    out: list[int] = []
    todo = children(pid)
    while todo:
        child = todo.pop(0)
        out.append(child)
        todo.extend(children(child))
    return out


def kill_all(pids: list[int]) -> None:
    """SIGKILL each of ``pids`` that still runs. A node killed this way takes its functions with
    it, as a machine that fails would (they run in sessions of their own, so killing the node
    alone would leave them running); killed after the node, they cannot be reported as failed."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
