"""The RIB: registered routes, from which the FIB is computed.

NFD ``daemon/rib/{rib,fib-updater}.cpp``. A route is (prefix, face, origin) with a cost, flags and
an optional expiration. The FIB next hops of a RIB prefix are its own routes (lowest cost per
face) plus the routes inherited from ancestors flagged CHILD_INHERIT, the nearest ancestor first,
for faces not already present; an ancestor whose route has the CAPTURE flag stops inheritance from
further up. Routes of a face that goes away are removed; an expiring route is removed when its
expiration period ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sflow.icn.control import ROUTE_FLAG_CAPTURE, ROUTE_FLAG_CHILD_INHERIT, ROUTE_ORIGIN_APP
from sflow.icn.name import Name
from sflow.icn.scheduler import EventId, Scheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    """One registered route; ``expires`` is an absolute clock time or None."""

    face_id: int
    origin: int = ROUTE_ORIGIN_APP
    cost: int = 0
    flags: int = ROUTE_FLAG_CHILD_INHERIT
    expires: float | None = None


class Rib:
    """Routes per prefix. ``apply(prefix, {face_id: cost})`` sets the FIB entry's next hops."""

    def __init__(self, scheduler: Scheduler, apply: Callable[[Name, dict[int, int]], None]) -> None:
        self._scheduler = scheduler
        self._apply = apply
        self._entries: dict[bytes, tuple[Name, dict[tuple[int, int], Route]]] = {}
        self._expiry_events: dict[tuple[bytes, int, int], EventId] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[Name, Route]]:
        for key in sorted(self._entries):
            name, routes = self._entries[key]
            for route_key in sorted(routes):
                yield name, routes[route_key]

    def routes(self, prefix: Name) -> list[Route]:
        entry = self._entries.get(prefix.wire)
        return list(entry[1].values()) if entry else []

    def register(
        self,
        prefix: Name,
        face_id: int,
        *,
        origin: int = ROUTE_ORIGIN_APP,
        cost: int = 0,
        flags: int = ROUTE_FLAG_CHILD_INHERIT,
        expiration: float | None = None,
    ) -> Route:
        """Add or update a route (NFD ``rib/register``); ``expiration`` in seconds from now."""
        expires = self._scheduler.now() + expiration if expiration is not None else None
        route = Route(face_id, origin, cost, flags, expires)
        name, routes = self._entries.setdefault(prefix.wire, (prefix, {}))
        routes[(face_id, origin)] = route
        event_key = (prefix.wire, face_id, origin)
        old_event = self._expiry_events.pop(event_key, None)
        if old_event is not None:
            old_event.cancel()
        if expiration is not None:
            self._expiry_events[event_key] = self._scheduler.schedule(
                expiration, lambda: self._expire(prefix, face_id, origin)
            )
        log.info("rib register prefix=%s face=%d origin=%d cost=%d flags=%d", prefix, face_id, origin, cost, flags)
        self._refresh(prefix)
        return route

    def unregister(self, prefix: Name, face_id: int, origin: int = ROUTE_ORIGIN_APP) -> bool:
        """Remove a route (NFD ``rib/unregister``); False if there was none."""
        entry = self._entries.get(prefix.wire)
        if entry is None or (face_id, origin) not in entry[1]:
            return False
        del entry[1][(face_id, origin)]
        if not entry[1]:
            del self._entries[prefix.wire]
        event = self._expiry_events.pop((prefix.wire, face_id, origin), None)
        if event is not None:
            event.cancel()
        log.info("rib unregister prefix=%s face=%d origin=%d", prefix, face_id, origin)
        self._refresh(prefix)
        return True

    def remove_face(self, face_id: int) -> None:
        """Remove every route through ``face_id`` (the face was destroyed)."""
        affected = [
            (name, key) for name, routes in self._entries.values() for key in routes if key[0] == face_id
        ]
        for name, (face, origin) in affected:
            self.unregister(name, face, origin)

    def _expire(self, prefix: Name, face_id: int, origin: int) -> None:
        self._expiry_events.pop((prefix.wire, face_id, origin), None)
        log.info("rib route expired prefix=%s face=%d origin=%d", prefix, face_id, origin)
        self.unregister(prefix, face_id, origin)

    def next_hops(self, prefix: Name) -> dict[int, int]:
        """The FIB next hops {face id: cost} that the RIB yields for ``prefix``."""
        result: dict[int, int] = {}
        entry = self._entries.get(prefix.wire)
        captured = False
        if entry is not None:
            for route in entry[1].values():
                if route.face_id not in result or route.cost < result[route.face_id]:
                    result[route.face_id] = route.cost
                captured = captured or bool(route.flags & ROUTE_FLAG_CAPTURE)
        if captured:
            return result
        for depth in range(len(prefix) - 1, -1, -1):
            ancestor = self._entries.get(prefix.prefix_wire(depth))
            if ancestor is None:
                continue
            inherited: dict[int, int] = {}
            stop = False
            for route in ancestor[1].values():
                if route.flags & ROUTE_FLAG_CHILD_INHERIT:
                    if route.face_id not in inherited or route.cost < inherited[route.face_id]:
                        inherited[route.face_id] = route.cost
                stop = stop or bool(route.flags & ROUTE_FLAG_CAPTURE)
            for face_id, cost in inherited.items():
                result.setdefault(face_id, cost)
            if stop:
                break
        return result

    def _refresh(self, prefix: Name) -> None:
        """Recompute the FIB entries of ``prefix`` and of every RIB prefix under it."""
        self._apply(prefix, self.next_hops(prefix) if prefix.wire in self._entries else {})
        for name, _routes in list(self._entries.values()):
            if len(name) > len(prefix) and prefix.is_prefix_of(name):
                self._apply(name, self.next_hops(name))
