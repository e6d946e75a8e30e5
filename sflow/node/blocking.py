"""Run the Twisted reactor from a command-line handler until one Deferred has a result."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet.error import ReactorNotRunning
from twisted.python.failure import Failure

from sflow.node.signals import stop_on_hangup

log = logging.getLogger(__name__)

T = TypeVar("T")


def run_until(main: Callable[[Any], defer.Deferred[T]]) -> T:
    """Start the global reactor, call ``main(reactor)`` in it, stop when its Deferred fires, and
    return the result or raise its exception. A signal (Ctrl-C, SIGTERM, SIGHUP) that stops the
    reactor first raises KeyboardInterrupt, whatever ``main`` reported while shutting down."""
    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor

    outcome: list[Any] = []
    stopped_early: list[bool] = []

    def begin() -> None:
        d = defer.maybeDeferred(main, reactor)

        def record(result: Any) -> None:
            outcome.append(result)
            try:
                reactor.stop()
            except ReactorNotRunning:
                log.debug("event=reactor_already_stopping")

        d.addBoth(record)

    def interrupted() -> None:
        if not outcome:
            stopped_early.append(True)

    reactor.callWhenRunning(begin)
    reactor.addSystemEventTrigger("before", "shutdown", interrupted)
    stop_on_hangup(reactor)
    reactor.run()
    if not outcome or stopped_early:
        raise KeyboardInterrupt
    result = outcome[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result  # type: ignore[no-any-return]
