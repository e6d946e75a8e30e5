"""Forwarder pipelines, after NFD's tests/daemon/fw/forwarder.t.cpp and pit-expiry.t.cpp.

Counters are asserted as NFD's tests do; time only moves through ``task.Clock``.
"""

from __future__ import annotations

from collections.abc import Callable

from icn_harness import DummyFace, route
from twisted.internet.task import Clock

from sflow.icn.face.base import Face, FaceScope, LinkType
from sflow.icn.forwarder import Forwarder
from sflow.icn.lp import CACHE_POLICY_NO_CACHE, LpPacket
from sflow.icn.name import Name
from sflow.icn.packet import Data, Interest, Nack, NackReason, make_data, make_interest
from sflow.icn.pit import PitEntry
from sflow.icn.strategy import STRATEGIES
from sflow.icn.strategy.best_route import BestRouteStrategy

AddFace = Callable[..., DummyFace]


def counters(forwarder: Forwarder) -> dict[str, int]:
    return forwarder.counters.as_dict()


def test_simple_exchange(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    face1.interest("/A/B", nonce=1)
    clock.advance(0.1)
    assert [i.name.to_uri() for i in face2.sent_interests] == ["/A/B"]
    c = counters(forwarder)
    assert (c["n_in_interests"], c["n_out_interests"], c["n_in_data"], c["n_out_data"]) == (1, 1, 0, 0)
    face2.data("/A/B")
    clock.advance(0.1)
    assert [d.name.to_uri() for d in face1.sent_data] == ["/A/B"]
    c = counters(forwarder)
    assert (c["n_in_data"], c["n_out_data"], c["n_in_nacks"], c["n_out_nacks"]) == (1, 1, 0, 0)
    assert (c["n_satisfied_interests"], c["n_unsatisfied_interests"], c["n_cs_misses"]) == (1, 0, 1)
    assert len(forwarder.pit) == 0 and len(forwarder.cs) == 1


def test_cs_hit(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    forwarder.cs.insert(make_data("/A/B", b"x", freshness_period=0), clock.seconds())
    face1.interest("/A", can_be_prefix=True)
    assert face2.sent_interests == [] and [d.name.to_uri() for d in face1.sent_data] == ["/A/B"]
    c = counters(forwarder)
    assert (c["n_cs_hits"], c["n_cs_misses"], c["n_satisfied_interests"], c["n_unsatisfied_interests"]) == (1, 0, 1, 0)
    face1.interest("/A", can_be_prefix=True, must_be_fresh=True)  # stale: goes upstream
    assert len(face2.sent_interests) == 1 and counters(forwarder)["n_cs_misses"] == 1
    assert len(forwarder.pit) == 1


def test_interest_without_nonce(forwarder: Forwarder, add_face: AddFace) -> None:
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    face1.interest("/A", nonce=None)
    assert face2.sent_interests[0].nonce is not None


def test_outgoing_interest_records_and_incoming_face(forwarder: Forwarder, add_face: AddFace) -> None:
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    face1.interest("/A/1", nonce=5)
    entry = forwarder.pit.find(make_interest("/A/1"))
    assert entry is not None
    assert entry.get_in_record(face1).nonce == 5  # type: ignore[union-attr]
    assert entry.get_out_record(face2).nonce == 5  # type: ignore[union-attr]
    assert face2.counters.n_out_interests == 1 and face1.counters.n_in_interests == 1


def test_next_hop_face_id(forwarder: Forwarder, add_face: AddFace) -> None:
    app = add_face(FaceScope.LOCAL)
    face2, face3 = add_face(), add_face()
    route(forwarder, "/A", face2)
    app.receive_interest(make_interest("/A/1"), LpPacket(next_hop_face_id=face3.face_id))
    assert face2.sent_interests == [] and len(face3.sent_interests) == 1
    app.receive_interest(make_interest("/A/2"), LpPacket(next_hop_face_id=9999))  # unknown face: dropped
    assert face2.sent_interests == [] and len(face3.sent_interests) == 1


def test_hop_limit(forwarder: Forwarder, add_face: AddFace) -> None:
    face_in = add_face()
    face_remote = add_face(FaceScope.NON_LOCAL)
    face_local = add_face(FaceScope.LOCAL)
    route(forwarder, "/A", face_remote)
    route(forwarder, "/B", face_local)
    face_in.interest("/A/1", hop_limit=2)
    assert face_remote.sent_interests[-1].hop_limit == 1
    face_in.interest("/A/2", hop_limit=1)  # becomes 0: may not leave on a non-local face
    assert len(face_remote.sent_interests) == 1 and face_remote.counters.n_out_hop_limit_zero == 1
    face_in.interest("/B/1", hop_limit=1)
    assert face_local.sent_interests[-1].hop_limit == 0
    face_in.interest("/A/3", hop_limit=0)  # dropped on arrival
    assert face_in.counters.n_in_hop_limit_zero == 1 and len(face_remote.sent_interests) == 1
    face_in.interest("/A/4")
    assert face_remote.sent_interests[-1].hop_limit is None


def test_add_default_hop_limit(make_forwarder: Callable[..., Forwarder]) -> None:
    forwarder = make_forwarder(default_hop_limit=10)
    face_in, face_out = DummyFace(), DummyFace()
    forwarder.add_face(face_in)
    forwarder.add_face(face_out)
    route(forwarder, "/A", face_out)
    face_in.interest("/A/1")
    assert face_out.sent_interests[-1].hop_limit == 10
    face_in.interest("/A/2", hop_limit=4)
    assert face_out.sent_interests[-1].hop_limit == 3


def test_scope_localhost_incoming(forwarder: Forwarder, add_face: AddFace) -> None:
    remote, local, upstream = add_face(FaceScope.NON_LOCAL), add_face(FaceScope.LOCAL), add_face(FaceScope.LOCAL)
    route(forwarder, "/localhost/A", upstream)
    remote.interest("/localhost/A/1")
    assert upstream.sent_interests == [] and len(forwarder.pit) == 0
    local.interest("/localhost/A/2")
    assert len(upstream.sent_interests) == 1
    remote.data("/localhost/A/2")  # Data under /localhost from a non-local face is dropped
    assert local.sent_data == [] and len(forwarder.pit) == 1


def test_incoming_data_satisfies_several_entries(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    face1, face2, face3, upstream, other = add_face(), add_face(), add_face(), add_face(), add_face()
    route(forwarder, "/", upstream)
    route(forwarder, "/", other, cost=10)
    face1.interest("/A", can_be_prefix=True)
    face2.interest("/A/B", can_be_prefix=True)
    face3.interest("/A/B/C")
    upstream.interest("/A/B/C", can_be_prefix=True)  # the upstream is also a downstream
    assert len(forwarder.pit) == 4
    upstream.data("/A/B/C")
    assert [len(f.sent_data) for f in (face1, face2, face3, upstream)] == [1, 1, 1, 0]
    assert len(forwarder.pit) == 0 and counters(forwarder)["n_satisfied_interests"] == 4


def test_outgoing_data_localhost_scope(forwarder: Forwarder, add_face: AddFace) -> None:
    remote, local = add_face(FaceScope.NON_LOCAL), add_face(FaceScope.LOCAL)
    data = make_data("/localhost/x", b"")
    assert not forwarder.on_outgoing_data(data, remote)
    assert forwarder.on_outgoing_data(data, local) and remote.sent_data == [] and len(local.sent_data) == 1
    assert counters(forwarder)["n_out_data"] == 1


def test_incoming_nack(forwarder: Forwarder, add_face: AddFace) -> None:
    face1, face2 = add_face(), add_face()
    face3 = add_face(link_type=LinkType.MULTI_ACCESS)
    route(forwarder, "/A", face2)
    route(forwarder, "/B", face3)
    sent = face1.interest("/A/1", nonce=1)
    out = face2.sent_interests[-1]
    face2.nack(make_interest("/A/1", nonce=2), NackReason.CONGESTION)  # wrong nonce: dropped
    entry = forwarder.pit.find(sent)
    assert entry is not None and entry.get_out_record(face2).incoming_nack is None  # type: ignore[union-attr]
    face2.nack(make_interest("/Z", nonce=1), NackReason.CONGESTION)  # no PIT entry: dropped
    face3.nack(out, NackReason.CONGESTION)  # not point-to-point: dropped
    face1.nack(out, NackReason.CONGESTION)  # no out-record for face1: dropped
    assert entry.get_out_record(face2).incoming_nack is None  # type: ignore[union-attr]
    face2.nack(out, NackReason.CONGESTION)
    assert counters(forwarder)["n_in_nacks"] == 5
    assert [n.reason for n in face1.sent_nacks] == [NackReason.CONGESTION]  # best-route relays it
    assert len(forwarder.pit) == 0


def test_outgoing_nack(forwarder: Forwarder, add_face: AddFace) -> None:
    face1 = add_face()
    face2 = add_face(link_type=LinkType.MULTI_ACCESS)
    face1.receive_interest(make_interest("/A", nonce=1), LpPacket(pit_token=b"\x07"))
    # no next hop: best-route Nacks face1 (NoRoute, with its PIT token) and rejects the entry
    assert [(n.reason, n.interest.nonce) for n in face1.sent_nacks] == [(NackReason.NO_ROUTE, 1)]
    assert face1.sent_tokens == [b"\x07"] and len(forwarder.pit) == 0
    face2.receive_interest(make_interest("/A", nonce=2), None)
    assert face2.sent_nacks == [] and counters(forwarder)["n_out_nacks"] == 1  # never on multi-access
    face3 = add_face()
    entry, _ = forwarder.pit.insert(make_interest("/B", nonce=3))
    assert not forwarder.on_outgoing_nack(NackReason.DUPLICATE, face3, entry)  # no in-record
    entry.insert_or_update_in_record(face2, make_interest("/B", nonce=3), forwarder.now())
    assert not forwarder.on_outgoing_nack(NackReason.DUPLICATE, face2, entry)  # multi-access
    entry.insert_or_update_in_record(face3, make_interest("/B", nonce=4), forwarder.now())
    assert forwarder.on_outgoing_nack(NackReason.DUPLICATE, face3, entry)
    assert face3.sent_nacks[-1].interest.nonce == 4 and entry.get_in_record(face3) is None


def test_interest_loop_nack(forwarder: Forwarder, add_face: AddFace) -> None:
    face1, face2, face4 = add_face(), add_face(), add_face()
    face3 = add_face(link_type=LinkType.MULTI_ACCESS)
    route(forwarder, "/zT4XwK0Hnx", face4)
    face1.interest("/zT4XwK0Hnx/28JBUvbEzc", nonce=732)
    assert face1.sent_nacks == [] and len(face4.sent_interests) == 1
    face2.interest("/zT4XwK0Hnx/28JBUvbEzc", nonce=732)  # same nonce, other face: loop
    assert [n.reason for n in face2.sent_nacks] == [NackReason.DUPLICATE]
    face3.interest("/zT4XwK0Hnx/28JBUvbEzc", nonce=732)  # loops on multi-access faces are dropped
    assert face3.sent_nacks == []
    face1.interest("/zT4XwK0Hnx/28JBUvbEzc", nonce=732)  # retransmission from the same p2p face
    assert face1.sent_nacks == []
    assert counters(forwarder)["n_out_nacks"] == 1


def test_interest_loop_with_short_lifetime(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face1)
    route(forwarder, "/A", face2)
    face1.interest("/A/1", nonce=82101183, lifetime=50)
    assert len(face2.sent_interests) == 1
    clock.advance(0.1)  # the PIT entry expired, its nonce is in the Dead Nonce List
    assert len(forwarder.pit) == 0 and forwarder.dead_nonce_list.has(Name.from_uri("/A/1"), 82101183)
    face2.interest("/A/1", nonce=82101183, lifetime=50)  # the Interest came back: a loop
    assert [n.reason for n in face2.sent_nacks] == [NackReason.DUPLICATE] and face1.sent_interests == []


def test_pit_leak(forwarder: Forwarder, add_face: AddFace) -> None:
    face1 = add_face()
    tree_size = len(forwarder.name_tree)
    face1.interest("/no/route")
    assert len(forwarder.pit) == 0 and counters(forwarder)["n_unsatisfied_interests"] == 1
    assert len(forwarder.name_tree) == tree_size


def test_unsolicited_data(make_forwarder: Callable[..., Forwarder]) -> None:
    for policy, local_cached, remote_cached in [
        ("drop-all", False, False),
        ("admit-local", True, False),
        ("admit-network", False, True),
        ("admit-all", True, True),
    ]:
        forwarder = make_forwarder(unsolicited_data_policy=policy)
        local, remote = DummyFace(FaceScope.LOCAL), DummyFace(FaceScope.NON_LOCAL)
        forwarder.add_face(local)
        forwarder.add_face(remote)
        local.data("/local")
        remote.data("/remote")
        names = {d.name.to_uri() for d in forwarder.cs}
        assert ("/local" in names, "/remote" in names) == (local_cached, remote_cached), policy
        assert forwarder.counters.n_unsolicited_data == 2
        if policy == "admit-all":
            entry = forwarder.cs.entry_for(make_data("/local", b""))
            assert entry is not None and entry.unsolicited
            local.data("/nocache", lp=LpPacket(cache_policy=CACHE_POLICY_NO_CACHE))
            assert "/nocache" not in {d.name.to_uri() for d in forwarder.cs}


def test_cache_policy_no_cache(forwarder: Forwarder, add_face: AddFace) -> None:
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    face1.interest("/A/1")
    face2.data("/A/1", lp=LpPacket(cache_policy=CACHE_POLICY_NO_CACHE))
    assert len(face1.sent_data) == 1 and len(forwarder.cs) == 0
    face1.interest("/A/2")
    face2.data("/A/2")
    assert len(forwarder.cs) == 1


def test_new_next_hop(forwarder: Forwarder, add_face: AddFace) -> None:
    face1, face2, face3, face4 = add_face(), add_face(), add_face(), add_face()
    forwarder.strategy_choice.insert(Name.from_uri("/A"), "multicast")
    route(forwarder, "/A", face2)
    route(forwarder, "/A/B/C", face4)  # a more specific FIB entry serves /A/B/C/... Interests
    face1.interest("/A/B")
    face1.interest("/A/B/C/D")
    assert len(face2.sent_interests) == 1 and len(face4.sent_interests) == 1
    route(forwarder, "/A", face3)
    assert [i.name.to_uri() for i in face3.sent_interests] == ["/A/B"]
    route(forwarder, "/A", face1)  # a downstream cannot be an upstream: nothing sent back
    assert face1.sent_interests == []


def test_aggregation_and_pit_token_echo(forwarder: Forwarder, add_face: AddFace) -> None:
    face1, face2, upstream = add_face(), add_face(), add_face()
    route(forwarder, "/A", upstream)
    face1.receive_interest(make_interest("/A/1", nonce=1), LpPacket(pit_token=b"one"))
    face2.receive_interest(make_interest("/A/1", nonce=2), LpPacket(pit_token=b"two"))
    assert len(upstream.sent_interests) == 1  # the second was aggregated and suppressed
    entry = forwarder.pit.find(make_interest("/A/1"))
    assert entry is not None and len(entry.in_records) == 2
    upstream.data("/A/1")
    assert face1.sent_tokens == [b"one"] and face2.sent_tokens == [b"two"]
    forwarder.cs.insert(make_data("/A/2", b""), forwarder.now())
    face1.receive_interest(make_interest("/A/2"), LpPacket(pit_token=b"hit"))
    assert face1.sent_tokens[-1] == b"hit"


def test_aggregated_interest_does_not_look_up_cs(forwarder: Forwarder, add_face: AddFace) -> None:
    face1, face2, upstream = add_face(), add_face(), add_face()
    route(forwarder, "/A", upstream)
    face1.interest("/A/1", nonce=1)
    forwarder.cs.insert(make_data("/A/1", b""), forwarder.now())
    face2.interest("/A/1", nonce=2)
    assert face2.sent_data == [] and counters(forwarder)["n_cs_hits"] == 0


def test_malformed_and_face_close(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    face1.receive_wire(b"\x05\x03\x07\x01\x08")
    face1.receive_wire(b"\x99\x00")
    assert forwarder.counters.n_malformed_packets == 2 and face1.counters.n_malformed == 2
    face1.interest("/A/1")
    assert len(face2.sent_interests) == 1
    forwarder.rib.register(Name.from_uri("/B"), face2.face_id)
    face2.close()
    assert forwarder.faces.get(face2.face_id) is None and forwarder.fib.find_exact_match(Name.from_uri("/A")) is None
    assert forwarder.rib.routes(Name.from_uri("/B")) == []
    entry = forwarder.pit.find(make_interest("/A/1"))
    assert entry is not None and not entry.out_records
    clock.advance(5)
    assert len(forwarder.pit) == 0


# --- PIT expiry (tests/daemon/fw/pit-expiry.t.cpp) ----------------------------------------------------


class ExpiryStrategy(BestRouteStrategy):
    """A strategy that re-arms the PIT expiry timer from the hooks NFD's test strategy uses."""

    after_receive_interest_timer: float | None = None
    before_satisfy_timer: float | None = None
    after_receive_data_timer: float | None = None
    after_receive_nack_timer: float | None = None

    def after_receive_interest(self, interest: Interest, ingress: Face, pit_entry: PitEntry) -> None:
        super().after_receive_interest(interest, ingress, pit_entry)
        if self.after_receive_interest_timer is not None:
            self.set_expiry_timer(pit_entry, self.after_receive_interest_timer)

    def before_satisfy_interest(self, data: Data, ingress: Face, pit_entry: PitEntry) -> None:
        if self.before_satisfy_timer is not None:
            self.set_expiry_timer(pit_entry, self.before_satisfy_timer)

    def after_receive_data(self, data: Data, ingress: Face, pit_entry: PitEntry) -> None:
        super().after_receive_data(data, ingress, pit_entry)
        if self.after_receive_data_timer is not None:
            self.set_expiry_timer(pit_entry, self.after_receive_data_timer)

    def after_receive_nack(self, nack: Nack, ingress: Face, pit_entry: PitEntry) -> None:
        if self.after_receive_nack_timer is not None:
            self.set_expiry_timer(pit_entry, self.after_receive_nack_timer)


def _expiry_strategy(forwarder: Forwarder, prefix: str = "/") -> ExpiryStrategy:
    STRATEGIES["test-expiry"] = ExpiryStrategy
    try:
        forwarder.strategy_choice.insert(Name.from_uri(prefix), "test-expiry")
    finally:
        del STRATEGIES["test-expiry"]
    strategy = forwarder.strategy_choice.find_effective_strategy(Name.from_uri(prefix))
    assert isinstance(strategy, ExpiryStrategy)
    return strategy


def test_pit_expiry_unsatisfied_interest(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    face1.interest("/A/0", lifetime=90)
    face1.interest("/A/1", lifetime=90)
    clock.advance(0.03)
    assert len(forwarder.pit) == 2
    clock.advance(0.07)
    assert len(forwarder.pit) == 0 and counters(forwarder)["n_unsatisfied_interests"] == 2
    assert forwarder.dead_nonce_list.has(Name.from_uri("/A/0"), face2.sent_interests[0].nonce or 0)


def test_pit_expiry_renewed_by_retransmission(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    face1.interest("/A/0", nonce=1, lifetime=100)
    clock.advance(0.08)
    face1.interest("/A/0", nonce=2, lifetime=100)  # a new in-record expiry: the timer moves
    clock.advance(0.08)
    assert len(forwarder.pit) == 1
    clock.advance(0.03)
    assert len(forwarder.pit) == 0


def test_pit_expiry_old_deadline_leaves_a_new_entry_of_the_same_name(
    forwarder: Forwarder, add_face: AddFace, clock: Clock
) -> None:
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    face1.interest("/A/0", nonce=1, lifetime=100)
    face2.data("/A/0")  # satisfied: its 100 ms deadline stays queued but is stale
    clock.advance(0.05)
    forwarder.cs.erase(Name.from_uri("/A/0"))
    face1.interest("/A/0", nonce=2, lifetime=100)  # a new entry with the same PIT key
    assert len(forwarder.pit) == 1
    clock.advance(0.06)  # the first entry's deadline passes
    assert len(forwarder.pit) == 1 and counters(forwarder)["n_unsatisfied_interests"] == 0
    clock.advance(0.05)  # the new entry's own deadline
    assert len(forwarder.pit) == 0
    c = counters(forwarder)
    assert (c["n_satisfied_interests"], c["n_unsatisfied_interests"]) == (1, 1)


def test_pit_expiry_satisfied_interest_and_cs_hit(forwarder: Forwarder, add_face: AddFace) -> None:
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    face1.interest("/A/0", lifetime=90, must_be_fresh=True)
    face2.data("/A/0", freshness_period=100)
    assert len(forwarder.pit) == 0 and counters(forwarder)["n_satisfied_interests"] == 1
    # MustBeFresh satisfied with FreshnessPeriod shorter than the Dead Nonce List's lifetime: DNL insert
    assert forwarder.dead_nonce_list.has(Name.from_uri("/A/0"), face2.sent_interests[0].nonce or 0)
    face1.interest("/A/0")
    assert len(forwarder.pit) == 0 and counters(forwarder)["n_cs_hits"] == 1


def test_pit_expiry_receive_nack(forwarder: Forwarder, add_face: AddFace) -> None:
    face1, face2, face3 = add_face(), add_face(), add_face()
    forwarder.strategy_choice.insert(Name.from_uri("/A"), "multicast")
    route(forwarder, "/A", face2)
    route(forwarder, "/A", face3)
    face1.interest("/A/0", lifetime=90)
    face2.nack(face2.sent_interests[-1], NackReason.CONGESTION)
    assert len(forwarder.pit) == 1  # face3 is still pending
    face3.nack(face3.sent_interests[-1], NackReason.CONGESTION)
    assert len(forwarder.pit) == 0 and counters(forwarder)["n_unsatisfied_interests"] == 1


def test_pit_expiry_reset_timer_after_receive_interest(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    strategy = _expiry_strategy(forwarder)
    strategy.after_receive_interest_timer = 0.19
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    face1.interest("/A/0", lifetime=90)
    clock.advance(0.1)
    assert len(forwarder.pit) == 1
    clock.advance(0.1)
    assert len(forwarder.pit) == 0


def test_pit_expiry_reset_timer_before_satisfy_interest(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    strategy = _expiry_strategy(forwarder)
    strategy.before_satisfy_timer = 0.19
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    face1.interest("/A/0", can_be_prefix=True)
    face1.interest("/A/0/1")
    face2.data("/A/0/1")  # two matches: before_satisfy_interest runs for each
    assert len(forwarder.pit) == 2 and len(face1.sent_data) == 1
    clock.advance(0.2)
    assert len(forwarder.pit) == 0 and counters(forwarder)["n_satisfied_interests"] == 2


def test_pit_expiry_reset_timer_after_receive_data(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    strategy = _expiry_strategy(forwarder)
    strategy.after_receive_data_timer = 0.19
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    face1.interest("/A/0")
    face2.data("/A/0")
    assert len(forwarder.pit) == 1 and len(face1.sent_data) == 1
    clock.advance(0.2)
    assert len(forwarder.pit) == 0


def test_pit_expiry_receive_nack_after_reset_timer(forwarder: Forwarder, add_face: AddFace, clock: Clock) -> None:
    strategy = _expiry_strategy(forwarder)
    strategy.after_receive_nack_timer = 0.19
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    face1.interest("/A/0", lifetime=90)
    face2.nack(face2.sent_interests[-1], NackReason.CONGESTION)
    assert len(forwarder.pit) == 1  # all upstreams Nacked (timer 0), but the strategy re-armed it
    clock.advance(0.2)
    assert len(forwarder.pit) == 0


def _linked(forwarder: Forwarder, *faces: DummyFace) -> None:
    for face in faces:
        forwarder.add_face(face)


def test_interest_loop_via_dead_nonce_list_counts(forwarder: Forwarder, add_face: AddFace) -> None:
    face1, face2 = add_face(), add_face()
    route(forwarder, "/A", face2)
    face1.interest("/A/1", nonce=9)
    face2.data("/A/1", freshness_period=0)
    face2.interest("/A/1", nonce=9, must_be_fresh=False)
    # satisfied without MustBeFresh: the nonce was not put in the DNL, so this is a new Interest
    assert counters(forwarder)["n_interest_loops"] == 0


def test_nack_of_interest_is_carried_whole(forwarder: Forwarder, add_face: AddFace) -> None:
    face1 = add_face()
    interest = make_interest("/none", nonce=3, app_parameters=b"p")
    face1.receive_interest(interest, None)
    assert face1.sent_nacks[0].interest.name == interest.name
    assert isinstance(face1.sent_nacks[0], Nack)
