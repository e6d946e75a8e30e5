"""Timers for the pure ICN core, multiplexed onto one delayed call of an injected clock.

The forwarder and its tables never read a clock themselves: they get a :class:`Clock` — anything
with ``seconds()`` and ``callLater()``, which ``twisted.internet.task.Clock`` and the reactor both
are — and schedule events through a :class:`Scheduler` (the role of ndn-cxx's ``Scheduler`` in
NFD). The scheduler keeps its events in a heap and holds a single pending ``callLater`` for the
earliest one, which is cheaper than one reactor timer per PIT entry and keeps unit tests
deterministic under ``task.Clock``.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol


class DelayedCall(Protocol):
    """The part of Twisted's ``IDelayedCall`` the scheduler uses."""

    def cancel(self) -> None: ...

    def active(self) -> bool: ...


class Clock(Protocol):
    """The part of Twisted's ``IReactorTime`` the ICN core uses (``task.Clock`` satisfies it)."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any) -> Any: ...


class EventId:
    """A scheduled event; :meth:`cancel` is idempotent."""

    __slots__ = ("when", "callback", "args", "cancelled")

    def __init__(self, when: float, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Alarm:
    """The one delayed call of the clock that a timer structure keeps, for its earliest deadline."""

    __slots__ = ("clock", "callback", "pending", "when")

    def __init__(self, clock: Clock, callback: Callable[[], None]) -> None:
        self.clock = clock
        self.callback = callback
        self.pending: Any = None
        self.when = float("inf")

    def arm(self, when: float) -> None:
        """Ring at ``when`` if that is earlier than the deadline it rings for now."""
        if when >= self.when:
            return
        if self.pending is not None and self.pending.active():
            self.pending.cancel()
        self.when = when
        self.pending = self.clock.callLater(max(0.0, when - self.clock.seconds()), self.callback)

    def rang(self) -> None:
        """The delayed call ran (call first thing in the callback): nothing is pending."""
        self.pending = None
        self.when = float("inf")

    def stop(self) -> None:
        if self.pending is not None and self.pending.active():
            self.pending.cancel()
        self.rang()


class Scheduler:
    """Schedules callbacks at absolute times on an injected :class:`Clock`."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, EventId]] = []
        self._counter = itertools.count()
        self._alarm = _Alarm(clock, self._fire)

    def now(self) -> float:
        return self.clock.seconds()

    def schedule(self, delay: float, callback: Callable[..., None], *args: Any) -> EventId:
        """Run ``callback(*args)`` ``delay`` seconds from now (at the earliest)."""
        return self.schedule_at(self.clock.seconds() + max(delay, 0.0), callback, *args)

    def schedule_at(self, when: float, callback: Callable[..., None], *args: Any) -> EventId:
        event = EventId(when, callback, args)
        heapq.heappush(self._heap, (when, next(self._counter), event))
        self._alarm.arm(when)
        return event

    def __len__(self) -> int:
        return sum(1 for _w, _c, event in self._heap if not event.cancelled)

    def _fire(self) -> None:
        self._alarm.rang()
        heap = self._heap
        now = self.clock.seconds()
        while heap and heap[0][0] <= now:
            _when, _count, event = heapq.heappop(heap)
            if not event.cancelled:
                event.cancelled = True
                event.callback(*event.args)
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        if heap:
            self._alarm.arm(heap[0][0])

    def stop(self) -> None:
        """Cancel every event and the pending delayed call."""
        for _when, _count, event in self._heap:
            event.cancelled = True
        self._heap.clear()
        self._alarm.stop()


class TimerQueue:
    """Many one-shot deadlines with one callback, for timers that are re-armed or dropped far more
    often than they fire (the PIT entries' expiry timers).

    :meth:`push` records ``(when, ticket, item)`` for ``delay`` seconds from now; ``fire(item,
    ticket)`` runs once ``when`` has come, in order of ``when`` (then ticket). Tickets come from
    :attr:`next_ticket` and only increase: the owner keeps each item's current ticket and ignores a
    firing whose ticket is no longer current, so re-arming or cancelling costs nothing and no
    event object is made. Items should be small keys (not the timed objects) because a superseded
    deadline stays queued until it is due.

    Timers with the same delay (to the millisecond) fall due in the order they were set, so each
    such group is a FIFO (an append, no comparisons); a deadline that would break a group's order
    (the clock stepped back), or whose delay would make more than :data:`MAX_GROUPS` groups, goes
    to a heap. One delayed call of the clock is pending, for the earliest deadline.
    """

    MAX_GROUPS = 8

    def __init__(self, clock: Clock, fire: Callable[[Any, int], None]) -> None:
        self.clock = clock
        self._fire_item = fire
        self._groups: dict[int, deque[tuple[float, int, Any]]] = {}
        self._heap: list[tuple[float, int, Any]] = []
        #: a new ticket, larger than every earlier one
        self.next_ticket: Callable[[], int] = itertools.count(1).__next__
        self._alarm = _Alarm(clock, self._fire)

    def __len__(self) -> int:
        """Deadlines queued, superseded ones included."""
        return len(self._heap) + sum(len(group) for group in self._groups.values())

    def push(self, delay: float, ticket: int, item: Any) -> None:
        when = self.clock.seconds() + delay
        record = (when, ticket, item)
        key = int(delay * 1000.0)
        group = self._groups.get(key)
        if group is None and len(self._groups) < self.MAX_GROUPS:
            group = self._groups[key] = deque()
        if group is not None and (not group or group[-1][0] <= when):
            group.append(record)
        else:
            heapq.heappush(self._heap, record)
        self._alarm.arm(when)

    def _fire(self) -> None:
        self._alarm.rang()
        now = self.clock.seconds()
        due: list[tuple[float, int, Any]] = []
        sources = 0
        heap = self._heap
        if heap and heap[0][0] <= now:
            sources += 1
            while heap and heap[0][0] <= now:
                due.append(heapq.heappop(heap))
        for key, group in list(self._groups.items()):
            if group[0][0] <= now:
                sources += 1
                while group and group[0][0] <= now:
                    due.append(group.popleft())
                if not group:
                    del self._groups[key]
        if sources > 1:
            due.sort()
        fire = self._fire_item
        for _when, ticket, item in due:
            fire(item, ticket)  # may push: a new earliest deadline arms the clock itself
        earliest = min([group[0][0] for group in self._groups.values() if group], default=float("inf"))
        if heap and heap[0][0] < earliest:
            earliest = heap[0][0]
        self._alarm.arm(earliest)

    def stop(self) -> None:
        """Drop every deadline and the pending delayed call."""
        self._heap.clear()
        self._groups.clear()
        self._alarm.stop()
