"""A node's vCPU slots in ICN chaining (pure): which slot each executing function holds, and the
queue of functions waiting for one.

A node with ``n`` vCPUs runs at most ``n`` functions at once, each on one slot (0 … n-1), which it
reports with the function's events, so that a trace can draw every function on its node's vCPU
lane. A function whose inputs are all there when every slot is taken waits in the node's queue
(which the node advertises in autonomous mode, so that its neighbours take the work it cannot):
in the order of its ``priority`` — the schedule's start time when the delegator gave a schedule —
and first come, first served among equals. The lowest free slot is given first, so that a lightly
loaded node uses slot 0.
"""

from __future__ import annotations

import heapq
from itertools import count
from typing import Generic, TypeVar

K = TypeVar("K")


class VcpuSlots(Generic[K]):
    """``acquire`` a slot for a function (by key), or queue it; ``release`` hands the slot to the
    first function waiting, if any."""

    def __init__(self, count_: int) -> None:
        self.count = max(1, count_)
        self._free = list(range(self.count))
        self._waiting: list[tuple[float, int, K]] = []
        self._arrivals = count()

    @property
    def free(self) -> int:
        return len(self._free)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def busy(self) -> int:
        return self.count - len(self._free)

    def acquire(self, key: K, priority: float = 0.0) -> int | None:
        """The slot ``key`` runs on now, or None: it waits for :meth:`release` (lower
        ``priority`` first, then arrival order)."""
        if self._free:
            return heapq.heappop(self._free)
        heapq.heappush(self._waiting, (priority, next(self._arrivals), key))
        return None

    def release(self, slot: int) -> tuple[K, int] | None:
        """``slot`` is free again: the waiting function that takes it, with the slot, or None."""
        if self._waiting:
            _, _, key = heapq.heappop(self._waiting)
            return key, slot
        heapq.heappush(self._free, slot)
        return None
