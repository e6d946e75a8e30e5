"""The Dead Nonce List: (Name, Nonce) pairs of Interests that recently left the PIT.

NFD ``daemon/table/dead-nonce-list.{hpp,cpp}``: an Interest whose (Name, Nonce) is in the list is
looping. Entries are 64-bit hashes kept in a FIFO queue with no timestamps; instead, a MARK is
appended every ``lifetime / EXPECTED_MARK_COUNT`` and, every ``lifetime``, the capacity is adjusted
(×1.2 if every observed mark count was below the expected 5, ×0.9 if every one was above, within
[2^10, 2^24]) so that an entry stays about ``lifetime`` before it is evicted from the front. Adding
an entry already present moves it to the back. Eviction removes at most ``EVICT_LIMIT`` entries at
a time.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from sflow.icn.name import Name
from sflow.icn.scheduler import EventId, Scheduler

log = logging.getLogger(__name__)

DEFAULT_LIFETIME = 6.0
MIN_LIFETIME = 0.05
INITIAL_CAPACITY = 1 << 14
MIN_CAPACITY = 1 << 10
MAX_CAPACITY = 1 << 24
EXPECTED_MARK_COUNT = 5
CAPACITY_UP = 1.2
CAPACITY_DOWN = 0.9
EVICT_LIMIT = 64


class DeadNonceList:
    """NFD's Dead Nonce List, timed by a :class:`~sflow.icn.scheduler.Scheduler`."""

    def __init__(self, scheduler: Scheduler, lifetime: float = DEFAULT_LIFETIME) -> None:
        if lifetime < MIN_LIFETIME:
            raise ValueError(f"Dead Nonce List lifetime {lifetime}s is less than {MIN_LIFETIME}s")
        self.lifetime = lifetime
        self.capacity = INITIAL_CAPACITY
        self._scheduler = scheduler
        # Entries are non-negative hashes; MARKs are negative, unique keys (-1, -2, ...).
        self._queue: OrderedDict[int, None] = OrderedDict()
        self._next_mark = -1
        self._n_marks = 0
        self._mark_counts: list[int] = []
        self._mark_interval = lifetime / EXPECTED_MARK_COUNT
        for _ in range(EXPECTED_MARK_COUNT):
            self._push_mark()
        self._mark_event: EventId = scheduler.schedule(self._mark_interval, self._mark)
        self._adjust_event: EventId = scheduler.schedule(lifetime, self._adjust_capacity)

    @staticmethod
    def _entry(name: Name, nonce: int) -> int:
        # A 64-bit, non-negative hash standing for NFD's CityHash64(name wire, seed=nonce).
        return hash((name.wire, nonce)) & 0x7FFFFFFFFFFFFFFF

    def __len__(self) -> int:
        """Number of stored items, MARKs included (NFD ``DeadNonceList::size``)."""
        return len(self._queue)

    def has(self, name: Name, nonce: int) -> bool:
        return self._entry(name, nonce) in self._queue

    def add(self, name: Name, nonce: int) -> None:
        entry = self._entry(name, nonce)
        if entry in self._queue:
            self._queue.move_to_end(entry)
            return
        self._queue[entry] = None
        self._evict()

    def _push_mark(self) -> None:
        self._queue[self._next_mark] = None
        self._next_mark -= 1
        self._n_marks += 1

    def _mark(self) -> None:
        self._push_mark()
        self._mark_counts.append(self._n_marks)
        self._mark_event = self._scheduler.schedule(self._mark_interval, self._mark)

    def _adjust_capacity(self) -> None:
        old = self.capacity
        counts = self._mark_counts
        if counts and min(counts) > EXPECTED_MARK_COUNT:
            self.capacity = max(MIN_CAPACITY, int(self.capacity * CAPACITY_DOWN))
        elif counts and max(counts) < EXPECTED_MARK_COUNT:
            self.capacity = min(MAX_CAPACITY, int(self.capacity * CAPACITY_UP))
        if self.capacity != old:
            log.debug("dnl adjust capacity old=%d new=%d", old, self.capacity)
        self._mark_counts = []
        self._evict()
        self._adjust_event = self._scheduler.schedule(self.lifetime, self._adjust_capacity)

    def _evict(self) -> None:
        overflow = len(self._queue) - self.capacity
        if overflow <= 0:
            return
        for _ in range(min(overflow, EVICT_LIMIT)):
            key, _ = self._queue.popitem(last=False)
            if key < 0:
                self._n_marks -= 1

    def stop(self) -> None:
        self._mark_event.cancel()
        self._adjust_event.cancel()
