"""Strategies, after NFD's tests/daemon/fw: strategy-nack-return, strategy-no-route,
multicast-strategy and retx-suppression."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from icn_harness import DummyFace, route
from twisted.internet.task import Clock

from sflow.icn.face.base import LinkType
from sflow.icn.forwarder import Forwarder
from sflow.icn.name import Name
from sflow.icn.name_tree import NameTree
from sflow.icn.packet import NackReason, make_interest
from sflow.icn.pit import Pit
from sflow.icn.strategy.retx_suppression import (
    RetxSuppressionExponential,
    RetxSuppressionFixed,
    RetxSuppressionResult,
)

AddFace = Callable[..., DummyFace]


def setup_upstreams(forwarder: Forwarder, add_face: AddFace) -> tuple[DummyFace, ...]:
    faces = tuple(add_face() for _ in range(5))
    route(forwarder, "/P", faces[2], 10)
    route(forwarder, "/P", faces[3], 20)
    route(forwarder, "/P", faces[4], 30)
    return faces


# --- best-route: strategy-nack-return.t.cpp ---------------------------------------------------------


def test_nack_return_one_upstream(forwarder: Forwarder, add_face: AddFace) -> None:
    face1, _f2, face3, _f4, _f5 = setup_upstreams(forwarder, add_face)
    face1.interest("/P/1", nonce=1)
    assert len(face3.sent_interests) == 1
    face3.nack(face3.sent_interests[0], NackReason.CONGESTION)
    assert [(n.reason, n.interest.nonce) for n in face1.sent_nacks] == [(NackReason.CONGESTION, 1)]
    assert len(forwarder.pit) == 0


def test_nack_return_two_upstreams(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    face1, _f2, face3, face4, _f5 = setup_upstreams(forwarder, add_face)
    face1.interest("/P/1", nonce=1)
    clock.advance(0.03)
    face1.interest("/P/1", nonce=2)  # retransmission after the suppression interval: to an unused next hop
    assert len(face3.sent_interests) == 1 and len(face4.sent_interests) == 1
    face3.nack(face3.sent_interests[0], NackReason.CONGESTION)
    assert face1.sent_nacks == []  # face4 is still pending
    face4.nack(face4.sent_interests[0], NackReason.NO_ROUTE)
    assert [n.reason for n in face1.sent_nacks] == [NackReason.CONGESTION]  # the least severe
    assert face1.sent_nacks[0].interest.nonce == 2


def test_nack_return_timeout(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    face1, _f2, face3, face4, _f5 = setup_upstreams(forwarder, add_face)
    face1.interest("/P/1", nonce=1, lifetime=400)
    clock.advance(0.03)
    face1.interest("/P/1", nonce=2, lifetime=400)
    face3.nack(face3.sent_interests[0], NackReason.CONGESTION)
    clock.advance(0.5)  # face4 never answers: the entry expires without a Nack downstream
    assert face1.sent_nacks == [] and len(forwarder.pit) == 0
    assert forwarder.counters.n_unsatisfied_interests == 1


def test_nack_return_live_deadlock(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    face1, face2, face3 = add_face(), add_face(), add_face()
    route(forwarder, "/P", face1, 10)
    route(forwarder, "/P", face2, 20)
    route(forwarder, "/P", face3, 30)
    face1.interest("/P/1", nonce=1)  # → face2
    clock.advance(0.03)
    face2.interest("/P/1", nonce=2)  # retransmission → face1, unused: both are downstream and upstream
    assert [len(f.sent_interests) for f in (face1, face2, face3)] == [1, 1, 0]
    clock.advance(0.06)
    face1.interest("/P/1", nonce=3)  # → the unused face3
    assert len(face3.sent_interests) == 1
    face2.nack(face2.sent_interests[-1], NackReason.NO_ROUTE)
    assert face1.sent_nacks == [] and face2.sent_nacks == []  # face1 and face3 still pending
    face3.nack(face3.sent_interests[-1], NackReason.CONGESTION)
    # only face1's out-record is not Nacked and face1 is a downstream: Nack it, breaking the deadlock
    assert [n.reason for n in face1.sent_nacks] == [NackReason.CONGESTION] and face2.sent_nacks == []
    face1.nack(face1.sent_interests[-1], NackReason.NO_ROUTE)
    assert [n.reason for n in face2.sent_nacks] == [NackReason.CONGESTION]


def test_nack_return_bidirectional(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    face1, face2 = add_face(), add_face()
    route(forwarder, "/P", face1, 10)
    route(forwarder, "/P", face2, 20)
    face1.interest("/P/1", nonce=1)  # → face2
    clock.advance(0.03)
    face2.interest("/P/1", nonce=2)  # → face1: both are downstream and upstream
    face2.nack(face2.sent_interests[-1], NackReason.NO_ROUTE)
    # one out-record (face1) not Nacked and face1 is a downstream: Nack it so the two do not wait forever
    assert [n.reason for n in face1.sent_nacks] == [NackReason.NO_ROUTE]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (NackReason.CONGESTION, NackReason.DUPLICATE, NackReason.CONGESTION),
        (NackReason.DUPLICATE, NackReason.CONGESTION, NackReason.CONGESTION),
        (NackReason.DUPLICATE, NackReason.NO_ROUTE, NackReason.DUPLICATE),
        (NackReason.NO_ROUTE, NackReason.NONE, NackReason.NO_ROUTE),
        (NackReason.NONE, NackReason.NONE, NackReason.NONE),
    ],
)
def test_nack_return_combine_reasons(
    forwarder: Forwarder, add_face: AddFace, clock: Clock, first: int, second: int, expected: int
) -> None:
    face1, _f2, face3, face4, _f5 = setup_upstreams(forwarder, add_face)
    face1.interest("/P/1", nonce=1)
    clock.advance(0.03)
    face1.interest("/P/1", nonce=2)
    face3.nack(face3.sent_interests[0], first)
    face4.nack(face4.sent_interests[0], second)
    assert [n.reason for n in face1.sent_nacks] == [expected]


# --- strategy-no-route ----------------------------------------------------------------------------------


def test_no_route(forwarder: Forwarder, add_face: AddFace) -> None:
    face1, face2 = add_face(), add_face()
    face1.interest("/A/1")
    assert [n.reason for n in face1.sent_nacks] == [NackReason.NO_ROUTE]
    route(forwarder, "/B", face1)  # the only next hop is the downstream itself
    face1.interest("/B/1")
    assert [n.reason for n in face1.sent_nacks] == [NackReason.NO_ROUTE] * 2
    assert face1.sent_interests == [] and len(forwarder.pit) == 0
    route(forwarder, "/localhost/x", face2)  # /localhost never goes to a non-local face
    local = add_face()
    local.scope = local.scope.LOCAL
    local.interest("/localhost/x/1")
    assert face2.sent_interests == [] and [n.reason for n in local.sent_nacks] == [NackReason.NO_ROUTE]


def test_best_route_retransmission_suppression(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    face1, _f2, face3, face4, face5 = setup_upstreams(forwarder, add_face)
    face1.interest("/P/1", nonce=1)
    clock.advance(0.005)
    face1.interest("/P/1", nonce=2)  # within 10 ms: suppressed
    assert [len(f.sent_interests) for f in (face3, face4, face5)] == [1, 0, 0]
    clock.advance(0.006)
    face1.interest("/P/1", nonce=3)  # 11 ms: forwarded to an unused next hop; interval now 20 ms
    assert [len(f.sent_interests) for f in (face3, face4, face5)] == [1, 1, 0]
    clock.advance(0.015)
    face1.interest("/P/1", nonce=4)  # 15 ms < 20 ms: suppressed
    clock.advance(0.006)
    face1.interest("/P/1", nonce=5)  # 21 ms: forwarded, to face5
    assert [len(f.sent_interests) for f in (face3, face4, face5)] == [1, 1, 1]
    clock.advance(0.041)
    face1.interest("/P/1", nonce=6)  # no unused next hop: the one with the oldest out-record
    assert [len(f.sent_interests) for f in (face3, face4, face5)] == [2, 1, 1]


# --- multicast-strategy.t.cpp ---------------------------------------------------------------------------


@pytest.fixture
def multicast(forwarder: Forwarder, add_face: AddFace) -> tuple[DummyFace, DummyFace, DummyFace]:
    forwarder.strategy_choice.insert(Name.from_uri("/"), "multicast")
    faces = (add_face(), add_face(), add_face())
    for face in faces:
        route(forwarder, "/P", face)
    return faces


def test_multicast_forward2(forwarder: Forwarder, multicast: tuple[DummyFace, ...], clock: Clock) -> None:
    face1, face2, face3 = multicast
    face3.interest("/P/1", nonce=1)
    assert [len(f.sent_interests) for f in multicast] == [1, 1, 0]
    clock.advance(0.005)
    face3.interest("/P/1", nonce=2)  # suppressed on both upstreams
    assert [len(f.sent_interests) for f in multicast] == [1, 1, 0]
    clock.advance(0.006)
    face3.interest("/P/1", nonce=3)
    assert [len(f.sent_interests) for f in multicast] == [2, 2, 0]


def test_multicast_reject_loopback(forwarder: Forwarder, add_face: AddFace) -> None:
    forwarder.strategy_choice.insert(Name.from_uri("/"), "multicast")
    face1 = add_face()
    route(forwarder, "/P", face1)
    face1.interest("/P/1")
    assert face1.sent_interests == [] and [n.reason for n in face1.sent_nacks] == [NackReason.NO_ROUTE]
    assert len(forwarder.pit) == 0


def test_multicast_looping_and_duplicate_interest(forwarder: Forwarder, multicast: tuple[DummyFace, ...]) -> None:
    face1, face2, face3 = multicast
    face3.interest("/P/1", nonce=7)
    face1.interest("/P/1", nonce=7)  # came back through face1: a loop
    assert [n.reason for n in face1.sent_nacks] == [NackReason.DUPLICATE]
    face3.interest("/P/1", nonce=7)  # the same consumer retransmitting: not a loop
    assert face3.sent_nacks == []


def test_multicast_retx_suppression_per_upstream(
    forwarder: Forwarder, multicast: tuple[DummyFace, ...], clock: Clock
) -> None:
    face1, face2, face3 = multicast
    face3.interest("/P/1", nonce=1)  # t=0
    clock.advance(0.015)
    face3.interest("/P/1", nonce=2)  # t=15ms: forwarded; per-upstream interval now 20 ms
    assert [len(f.sent_interests) for f in multicast] == [2, 2, 0]
    clock.advance(0.010)
    face3.interest("/P/1", nonce=3)  # 10 ms since: suppressed
    assert [len(f.sent_interests) for f in multicast] == [2, 2, 0]
    clock.advance(0.015)
    face3.interest("/P/1", nonce=4)  # 25 ms since: forwarded
    assert [len(f.sent_interests) for f in multicast] == [3, 3, 0]


def test_multicast_new_next_hop(forwarder: Forwarder, add_face: AddFace) -> None:
    forwarder.strategy_choice.insert(Name.from_uri("/"), "multicast")
    face1, face2, face3 = add_face(), add_face(), add_face()
    route(forwarder, "/P", face1)
    face2.interest("/P/1")
    route(forwarder, "/P", face3)
    assert len(face1.sent_interests) == 1 and len(face3.sent_interests) == 1


def test_multicast_does_not_relay_nacks(forwarder: Forwarder, multicast: tuple[DummyFace, ...]) -> None:
    face1, face2, face3 = multicast
    face3.interest("/P/1", nonce=1)
    face1.nack(face1.sent_interests[0], NackReason.CONGESTION)
    face2.nack(face2.sent_interests[0], NackReason.CONGESTION)
    assert face3.sent_nacks == [] and len(forwarder.pit) == 0


def test_multi_access_face_loop_dropped(forwarder: Forwarder, add_face: AddFace) -> None:
    ma = add_face(link_type=LinkType.MULTI_ACCESS)
    face2 = add_face()
    route(forwarder, "/P", face2)
    face2.interest("/P/1", nonce=4)
    ma.interest("/P/1", nonce=4)
    assert ma.sent_nacks == []


# --- retx-suppression.t.cpp ----------------------------------------------------------------------------


def _entry_with_out_record(now: float) -> tuple[Pit, DummyFace]:
    pit = Pit(NameTree())
    face = DummyFace()
    face.face_id = 300
    entry, _ = pit.insert(make_interest("/A", nonce=1))
    entry.insert_or_update_in_record(DummyFace(), make_interest("/A", nonce=1), now)
    entry.insert_or_update_out_record(face, make_interest("/A", nonce=1), now)
    return pit, face


def test_retx_suppression_fixed() -> None:
    policy = RetxSuppressionFixed(0.1)
    pit = Pit(NameTree())
    entry, _ = pit.insert(make_interest("/A"))
    assert policy.decide_per_pit_entry(entry, 0.0) is RetxSuppressionResult.NEW
    face = DummyFace()
    face.face_id = 300
    entry.insert_or_update_out_record(face, make_interest("/A", nonce=1), 0.0)
    assert policy.decide_per_pit_entry(entry, 0.05) is RetxSuppressionResult.SUPPRESS
    assert policy.decide_per_pit_entry(entry, 0.1) is RetxSuppressionResult.FORWARD
    assert policy.decide_per_pit_entry(entry, 0.15) is RetxSuppressionResult.FORWARD  # fixed: no growth


def test_retx_suppression_exponential() -> None:
    policy = RetxSuppressionExponential()
    pit = Pit(NameTree())
    entry, _ = pit.insert(make_interest("/A"))
    assert policy.decide_per_pit_entry(entry, 0.0) is RetxSuppressionResult.NEW
    face = DummyFace()
    face.face_id = 300
    now = 0.0
    entry.insert_or_update_out_record(face, make_interest("/A", nonce=1), now)
    intervals = []
    interval = 0.010
    for _ in range(7):
        assert policy.decide_per_pit_entry(entry, now + interval * 0.9) is RetxSuppressionResult.SUPPRESS
        assert policy.decide_per_pit_entry(entry, now + interval + 1e-9) is RetxSuppressionResult.FORWARD
        now += interval + 1e-9
        entry.insert_or_update_out_record(face, make_interest("/A", nonce=2), now)
        intervals.append(round(interval, 3))
        interval = min(interval * 2, 0.250)
    assert intervals == [0.01, 0.02, 0.04, 0.08, 0.16, 0.25, 0.25]


def test_retx_suppression_exponential_per_upstream() -> None:
    policy = RetxSuppressionExponential()
    pit, face = _entry_with_out_record(0.0)
    entry = next(iter(pit))
    other = DummyFace()
    other.face_id = 301
    assert policy.decide_per_upstream(entry, other, 0.0) is RetxSuppressionResult.NEW
    assert policy.decide_per_upstream(entry, face, 0.005) is RetxSuppressionResult.SUPPRESS
    assert policy.decide_per_upstream(entry, face, 0.010) is RetxSuppressionResult.FORWARD
    record = entry.get_out_record(face)
    assert record is not None
    policy.increment_interval_for_out_record(record)
    assert policy.decide_per_upstream(entry, face, 0.015) is RetxSuppressionResult.SUPPRESS
    assert policy.decide_per_upstream(entry, face, 0.020) is RetxSuppressionResult.FORWARD
    with pytest.raises(ValueError):
        RetxSuppressionExponential(initial_interval=0.5, max_interval=0.1)
