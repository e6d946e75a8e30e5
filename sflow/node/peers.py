"""One connection per peer, shared: a caller that asks while a connection is being made waits for
that same attempt instead of opening another. Used for node-to-node channels (IP chaining) and for
faces toward other nodes' forwarders (ICN chaining)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

T = TypeVar("T")


class PeerPool(Generic[T]):
    """``connect(peer)`` opens a connection; ``usable(conn)`` says whether a kept one still is."""

    def __init__(self, connect: Callable[[str], Deferred[T]], usable: Callable[[T], bool]) -> None:
        self._connect = connect
        self._usable = usable
        self._open: dict[str, T] = {}
        self._waiting: dict[str, list[Deferred[T]]] = {}

    def get(self, peer: str) -> Deferred[T]:
        conn = self._open.get(peer)
        if conn is not None and self._usable(conn):
            return succeed(conn)
        waiter: Deferred[T] = Deferred()
        waiting = self._waiting.get(peer)
        if waiting is not None:
            waiting.append(waiter)
            return waiter
        self._waiting[peer] = [waiter]

        def connected(conn: T) -> None:
            self._open[peer] = conn
            for w in self._waiting.pop(peer, []):
                w.callback(conn)

        def failed(failure: Failure) -> None:
            for w in self._waiting.pop(peer, []):
                w.errback(failure)

        self._connect(peer).addCallbacks(connected, failed)
        return waiter

    def forget(self, conn: T) -> None:
        """Drop ``conn`` (it closed); the next :meth:`get` for its peer connects again."""
        for peer in [p for p, c in self._open.items() if c is conn]:
            del self._open[peer]

    def connections(self) -> Iterator[T]:
        return iter(list(self._open.values()))
