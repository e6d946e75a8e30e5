"""A node's vCPU slots in ICN chaining (pure): which slot each executing function holds.

A node with ``n`` vCPUs runs at most ``n`` functions at once, each on one slot (0 … n-1), which it
reports with the function's events, so that a trace can draw every function on its node's vCPU
lane. A function whose inputs are all there when every slot is taken waits, first come first
served; the lowest free slot is given first, so that a lightly loaded node uses slot 0.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Generic, TypeVar

K = TypeVar("K")


class VcpuSlots(Generic[K]):
    """``acquire`` a slot for a function (by key), or queue it; ``release`` hands the slot to the
    first function waiting, if any."""

    def __init__(self, count: int) -> None:
        self.count = max(1, count)
        self._free = list(range(self.count))
        self._waiting: deque[K] = deque()

    @property
    def free(self) -> int:
        return len(self._free)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def acquire(self, key: K) -> int | None:
        """The slot ``key`` runs on now, or None: it waits for :meth:`release`."""
        if self._free:
            return heapq.heappop(self._free)
        self._waiting.append(key)
        return None

    def release(self, slot: int) -> tuple[K, int] | None:
        """``slot`` is free again: the waiting function that takes it, with the slot, or None."""
        if self._waiting:
            return self._waiting.popleft(), slot
        heapq.heappush(self._free, slot)
        return None
