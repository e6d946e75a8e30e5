"""PeerPool: one connection per peer, shared by everyone who asks while it is being made."""

from __future__ import annotations

from twisted.internet.defer import Deferred

from sflow.node.peers import PeerPool


class Conn:
    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.closed = False


def test_concurrent_requests_share_one_attempt_and_a_closed_connection_is_replaced() -> None:
    attempts: list[Deferred[Conn]] = []

    def connect(peer: str) -> Deferred[Conn]:
        attempts.append(Deferred())
        return attempts[-1]

    pool: PeerPool[Conn] = PeerPool(connect, lambda c: not c.closed)
    got: list[Conn] = []
    pool.get("a").addCallback(got.append)
    pool.get("a").addCallback(got.append)
    assert len(attempts) == 1
    first = Conn("a")
    attempts[0].callback(first)
    assert got == [first, first]
    pool.get("a").addCallback(got.append)
    assert len(attempts) == 1 and got[-1] is first  # kept and reused
    first.closed = True
    pool.get("a")
    assert len(attempts) == 2  # a closed one is not handed out
    pool.forget(first)
    assert list(pool.connections()) == []


def test_a_failed_attempt_fails_every_waiter_and_the_next_request_tries_again() -> None:
    attempts: list[Deferred[Conn]] = []

    def connect(peer: str) -> Deferred[Conn]:
        attempts.append(Deferred())
        return attempts[-1]

    pool: PeerPool[Conn] = PeerPool(connect, lambda c: not c.closed)
    errors: list[str] = []
    for _ in range(2):
        pool.get("b").addErrback(lambda f: errors.append(f.getErrorMessage()))
    attempts[0].errback(ConnectionRefusedError("refused"))
    assert errors == ["refused", "refused"]
    pool.get("b")
    assert len(attempts) == 2


