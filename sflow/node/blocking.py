"""Run the Twisted reactor from a command-line handler until one Deferred has a result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.python.failure import Failure

T = TypeVar("T")


def run_until(main: Callable[[Any], defer.Deferred[T]]) -> T:
    """Start the global reactor, call ``main(reactor)`` in it, stop when its Deferred fires, and
    return the result or raise its exception. Ctrl-C stops the reactor (KeyboardInterrupt)."""
    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor

    outcome: list[Any] = []

    def begin() -> None:
        d = defer.maybeDeferred(main, reactor)

        def record(result: Any) -> None:
            outcome.append(result)
            if reactor.running:
                reactor.stop()

        d.addBoth(record)

    reactor.callWhenRunning(begin)
    reactor.run()
    if not outcome:
        raise KeyboardInterrupt
    result = outcome[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result  # type: ignore[no-any-return]
