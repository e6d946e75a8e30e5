"""Tables, after NFD's tests/daemon/table: name tree, FIB, PIT, CS (+ policies), Dead Nonce List,
strategy choice, RIB and the scheduler. All timing is on ``task.Clock``."""

from __future__ import annotations

import pytest
from icn_harness import DummyFace
from twisted.internet.task import Clock

from sflow.icn.control import ROUTE_FLAG_CAPTURE, ROUTE_FLAG_CHILD_INHERIT
from sflow.icn.cs import ContentStore, PriorityFifoPolicy
from sflow.icn.dnl import INITIAL_CAPACITY, DeadNonceList
from sflow.icn.fib import Fib
from sflow.icn.name import Component, Name
from sflow.icn.name_tree import MAX_DEPTH, NameTree
from sflow.icn.packet import Data, Interest, NackReason, make_data, make_interest
from sflow.icn.pit import Pit
from sflow.icn.rib import Rib
from sflow.icn.scheduler import Scheduler, TimerQueue
from sflow.icn.strategy import BestRouteStrategy, MulticastStrategy, resolve_strategy
from sflow.icn.strategy.base import Strategy
from sflow.icn.strategy_choice import StrategyChoice


def N(uri: str) -> Name:
    return Name.from_uri(uri)


def I(uri: str, **kwargs: object) -> Interest:  # noqa: E743 - NFD's makeInterest
    return make_interest(uri, **kwargs)  # type: ignore[arg-type]


def D(uri: str, content: bytes = b"", **kwargs: object) -> Data:
    return make_data(uri, content, **kwargs)  # type: ignore[arg-type]


# --- name tree ------------------------------------------------------------------------------------


def test_name_tree_lookup_creates_ancestors_and_erase_cleans_up() -> None:
    tree = NameTree()
    entry = tree.lookup(N("/a/b/c"))
    assert len(tree) == 4 and entry.depth == 3 and entry.parent is tree.find_exact(N("/a/b"))
    assert tree.find_exact(N("/a")).n_children == 1  # type: ignore[union-attr]
    tree.lookup(N("/a/x"))
    tree.erase_if_empty(entry)
    assert tree.find_exact(N("/a/b")) is None and tree.find_exact(N("/a/x")) is not None and len(tree) == 3
    assert tree.find_longest_prefix_match(N("/a/x/y/z")).name == N("/a/x")
    assert tree.find_longest_prefix_match(N("/q")) is tree.root


def test_name_tree_max_depth() -> None:
    tree = NameTree()
    long_name = Name.from_components(Component.generic(str(i)) for i in range(40))
    entry = tree.lookup(long_name)
    assert entry.depth == MAX_DEPTH and len(tree) == MAX_DEPTH + 1


# --- FIB (tests/daemon/table/fib.t.cpp) -------------------------------------------------------------


@pytest.fixture
def fib() -> Fib:
    return Fib(NameTree())


def test_fib_insert_longest_prefix_match(fib: Fib) -> None:
    face1, face2 = DummyFace(), DummyFace()
    face1.face_id, face2.face_id = 256, 257
    assert fib.find_longest_prefix_match(N("/A")).prefix == N("/") and not fib.find_longest_prefix_match(N("/A")).has_next_hops()
    entry, created = fib.insert(N("/"))
    assert created and fib.insert(N("/"))[1] is False
    fib.add_or_update_next_hop(entry, face1, 0)
    a, _ = fib.insert(N("/A"))
    fib.add_or_update_next_hop(a, face2, 0)
    abc, _ = fib.insert(N("/A/B/C"))
    fib.add_or_update_next_hop(abc, face1, 0)
    assert fib.find_longest_prefix_match(N("/")).prefix == N("/")
    assert fib.find_longest_prefix_match(N("/A")).prefix == N("/A")
    assert fib.find_longest_prefix_match(N("/A/B")).prefix == N("/A")
    assert fib.find_longest_prefix_match(N("/A/B/C/D")).prefix == N("/A/B/C")
    assert fib.find_longest_prefix_match(N("/E")).prefix == N("/")
    assert len(fib) == 3


def test_fib_next_hops_sorted_by_cost_and_updated(fib: Fib) -> None:
    faces = [DummyFace() for _ in range(3)]
    for i, face in enumerate(faces):
        face.face_id = 256 + i
    entry, _ = fib.insert(N("/A"))
    new = []
    fib.after_new_next_hop.append(lambda prefix, hop: new.append((prefix, hop.face.face_id)))
    fib.add_or_update_next_hop(entry, faces[0], 20)
    fib.add_or_update_next_hop(entry, faces[1], 10)
    fib.add_or_update_next_hop(entry, faces[2], 10)
    assert [h.face.face_id for h in entry.next_hops] == [257, 258, 256]
    assert fib.add_or_update_next_hop(entry, faces[0], 5) is False
    assert [h.face.face_id for h in entry.next_hops] == [256, 257, 258]
    assert new == [(N("/A"), 256), (N("/A"), 257), (N("/A"), 258)]


def test_fib_longest_prefix_match_with_pit_entry() -> None:
    tree = NameTree()
    fib, pit = Fib(tree), Pit(tree)
    face = DummyFace()
    face.face_id = 256
    fib.add_or_update_next_hop(fib.insert(N("/A"))[0], face, 0)
    fib.add_or_update_next_hop(fib.insert(N("/A/B/C/D"))[0], face, 0)
    entry, _ = pit.insert(I("/A/B/C"))
    assert fib.find_longest_prefix_match_for_pit(entry).prefix == N("/A")
    long_name = Name.from_components(Component.generic(b"x") for _ in range(40))
    fib.add_or_update_next_hop(fib.insert(long_name.prefix(MAX_DEPTH - 1))[0], face, 0)
    long_entry, _ = pit.insert(I(long_name.to_uri()))
    assert fib.find_longest_prefix_match_for_pit(long_entry).prefix == long_name.prefix(MAX_DEPTH - 1)
    digest_entry, _ = pit.insert(I("/A/B/C/D/sha256digest=" + "00" * 32))
    assert fib.find_longest_prefix_match_for_pit(digest_entry).prefix == N("/A/B/C/D")


def test_fib_exact_match_and_gap(fib: Fib) -> None:
    face = DummyFace()
    face.face_id = 256
    for prefix in ("/A", "/A/B/C"):
        fib.add_or_update_next_hop(fib.insert(N(prefix))[0], face, 0)
    assert fib.find_exact_match(N("/A")) is not None
    assert fib.find_exact_match(N("/A/B")) is None  # the gap: a name tree node without a FIB entry
    assert fib.find_exact_match(N("/A/B/C")) is not None
    assert fib.find_exact_match(N("/A/B/C/D")) is None


def test_fib_erase_and_remove_next_hop(fib: Fib) -> None:
    face1, face2 = DummyFace(), DummyFace()
    face1.face_id, face2.face_id = 256, 257
    entry, _ = fib.insert(N("/A"))
    fib.add_or_update_next_hop(entry, face1, 0)
    fib.add_or_update_next_hop(entry, face2, 0)
    assert fib.remove_next_hop(entry, face1) and fib.find_exact_match(N("/A")) is entry
    fib.remove_next_hop(entry, face2)
    assert fib.find_exact_match(N("/A")) is None and len(fib) == 0  # last next hop gone: entry gone
    fib.add_or_update_next_hop(fib.insert(N("/B"))[0], face1, 0)
    fib.add_or_update_next_hop(fib.insert(N("/C"))[0], face1, 0)
    assert fib.erase(N("/B")) and not fib.erase(N("/B"))
    fib.remove_next_hop_from_all_entries(face1)
    assert len(fib) == 0 and len(fib.name_tree) == 1


# --- PIT (tests/daemon/table/pit*.t.cpp) ---------------------------------------------------------------


@pytest.fixture
def pit() -> Pit:
    return Pit(NameTree())


def test_pit_entry_can_match() -> None:
    pit = Pit(NameTree())
    entry, _ = pit.insert(I("/A", can_be_prefix=True, nonce=1))
    assert entry.can_match(I("/A", can_be_prefix=True, nonce=2))
    assert not entry.can_match(I("/A", nonce=1))
    assert not entry.can_match(I("/A", can_be_prefix=True, must_be_fresh=True))
    assert not entry.can_match(I("/B", can_be_prefix=True))


def test_pit_entry_in_out_records_and_lifetime() -> None:
    entry, _ = Pit(NameTree()).insert(I("/A", nonce=1))
    face1, face2 = DummyFace(), DummyFace()
    face1.face_id, face2.face_id = 256, 257
    record = entry.insert_or_update_in_record(face1, I("/A", nonce=1, lifetime=2000), 10.0, b"t")
    assert (record.nonce, record.last_renewed, record.expiry, record.pit_token) == (1, 10.0, 12.0, b"t")
    entry.insert_or_update_in_record(face1, I("/A", nonce=2, lifetime=1000), 11.0)
    assert len(entry.in_records) == 1 and entry.get_in_record(face1).nonce == 2  # type: ignore[union-attr]
    assert entry.get_in_record(face1).expiry == 12.0  # type: ignore[union-attr]
    entry.insert_or_update_in_record(face2, I("/A", nonce=3, lifetime=10**13), 11.0)
    assert entry.get_in_record(face2).expiry == 11.0 + 10 * 24 * 3600  # type: ignore[union-attr]  # capped
    out = entry.insert_or_update_out_record(face2, I("/A", nonce=4), 11.0)
    assert entry.has_pending_out_records(11.5) and not entry.has_pending_out_records(15.0)
    out.incoming_nack = NackReason.CONGESTION
    assert not entry.has_pending_out_records(11.5)
    entry.insert_or_update_out_record(face2, I("/A", nonce=5), 12.0)
    assert out.incoming_nack is None and entry.last_outgoing() == 12.0  # renewing clears the Nack
    entry.delete_in_record(face1)
    entry.delete_out_record(face2)
    assert list(entry.in_records) == [257] and not entry.out_records


def test_pit_find_insert_erase(pit: Pit) -> None:
    interest = I("/A/B", nonce=1)
    assert pit.find(interest) is None
    entry, created = pit.insert(interest)
    assert created and pit.find(I("/A/B", nonce=2)) is entry
    assert pit.insert(I("/A/B", nonce=3)) == (entry, False)
    other, created = pit.insert(I("/A/B", can_be_prefix=True))
    assert created and other is not entry and len(pit) == 2
    fresh, _ = pit.insert(I("/A/B", must_be_fresh=True))
    assert len(pit) == 3 and set(pit) == {entry, other, fresh}
    pit.erase(entry)
    pit.erase(entry)
    assert pit.find(interest) is None and len(pit) == 2


def test_pit_erase_name_tree_entry(pit: Pit) -> None:
    tree = pit.name_tree
    entry, _ = pit.insert(I("/A/B/C"))
    assert len(tree) == 4
    pit.erase(entry)
    assert len(tree) == 1


def test_pit_erase_with_full_name(pit: Pit) -> None:
    full = "/A/sha256digest=" + "ab" * 32
    entry, _ = pit.insert(I(full))
    assert entry.name_tree_entry.name == N("/A")  # a digest is not inserted in the name tree
    assert len(pit.name_tree) == 2
    pit.erase(entry)
    assert len(pit.name_tree) == 1


def test_pit_find_all_data_matches(pit: Pit) -> None:
    names = ["/", "/A", "/A/B", "/A/B/C", "/A/B/C/D", "/A/B/C/D/E", "/A/X", "/B"]
    entries = {n: pit.insert(I(n, can_be_prefix=True) if n != "/" else Interest(N("/"), can_be_prefix=True))[0] for n in names}
    exact, _ = pit.insert(I("/A/B/C/D"))
    data = D("/A/B/C/D")
    matches = pit.find_all_data_matches(data)
    expected = {entries[n] for n in ["/", "/A", "/A/B", "/A/B/C", "/A/B/C/D"]} | {exact}
    assert set(matches) == expected
    assert pit.find_all_data_matches(D("/Z")) == [entries["/"]]


def test_pit_match_full_name(pit: Pit) -> None:
    data = D("/A", b"x")
    full, _ = pit.insert(I(data.full_name().to_uri()))
    wrong, _ = pit.insert(I("/A/sha256digest=" + "00" * 32))
    plain, _ = pit.insert(I("/A"))
    assert set(pit.find_all_data_matches(data)) == {full, plain}
    assert wrong not in pit.find_all_data_matches(data)


def test_pit_insert_match_long_name(pit: Pit) -> None:
    name = Name.from_components(Component.generic(str(i)) for i in range(MAX_DEPTH + 8))
    entry, _ = pit.insert(I(name.to_uri()))
    prefix_entry, _ = pit.insert(I(name.prefix(MAX_DEPTH + 3).to_uri(), can_be_prefix=True))
    other, _ = pit.insert(I(name.prefix(MAX_DEPTH + 3).append("x").to_uri()))
    assert pit.find(I(name.to_uri())) is entry
    assert set(pit.find_all_data_matches(D(name.to_uri()))) == {entry, prefix_entry}
    assert other not in pit.find_all_data_matches(D(name.to_uri()))
    for e in (entry, prefix_entry, other):
        pit.erase(e)
    assert len(pit.name_tree) == 1


# --- CS (tests/daemon/table/cs*.t.cpp) ---------------------------------------------------------------


def test_cs_exact_name() -> None:
    cs = ContentStore()
    for name in ("/", "/A", "/A/B", "/A/C", "/D"):
        cs.insert(D(name), 0.0)
    assert cs.find(I("/A"), 0.0).name == N("/A")  # type: ignore[union-attr]
    assert cs.find(I("/A/B/C"), 0.0) is None


def test_cs_exact_name_can_be_prefix_and_prefix_name() -> None:
    cs = ContentStore()
    for name in ("/A", "/A/B", "/A/C", "/D"):
        cs.insert(D(name), 0.0)
    assert cs.find(I("/A", can_be_prefix=True), 0.0).name == N("/A")  # type: ignore[union-attr]
    cs2 = ContentStore()
    for name in ("/A/B", "/A/C", "/A/B/D"):
        cs2.insert(D(name), 0.0)
    # leftmost in canonical order
    assert cs2.find(I("/A", can_be_prefix=True), 0.0).name == N("/A/B")  # type: ignore[union-attr]
    assert cs2.find(I("/A"), 0.0) is None  # PrefixName_NoCanBePrefix
    assert cs2.find(I("/A/B/D/E", can_be_prefix=True), 0.0) is None


def test_cs_can_be_prefix_finds_entries_at_any_depth_and_removal_cleans_the_index() -> None:
    cs = ContentStore()
    for name in ("/A/x/y/z", "/A/x/w", "/A/q", "/B/c"):
        cs.insert(D(name, freshness_period=1000 if name == "/A/q" else None), 0.0)
    assert cs.find(I("/A", can_be_prefix=True), 0.0).name == N("/A/q")  # type: ignore[union-attr]
    assert cs.find(I("/A/x", can_be_prefix=True), 0.0).name == N("/A/x/w")  # type: ignore[union-attr]
    assert cs.find(I("/A/x/y", can_be_prefix=True), 0.0).name == N("/A/x/y/z")  # type: ignore[union-attr]
    assert cs.find(I("/A/x", can_be_prefix=True, must_be_fresh=True), 0.0) is None
    assert cs.erase(N("/A/x")) == 2
    assert cs.find(I("/A/x", can_be_prefix=True), 0.0) is None
    assert cs.find(I("/A", can_be_prefix=True, must_be_fresh=True), 0.5).name == N("/A/q")  # type: ignore[union-attr]
    cs.erase(N("/"))
    assert len(cs) == 0 and not cs._by_name and not cs._by_parent and not cs._children


def test_cs_full_name() -> None:
    cs = ContentStore()
    first, second = D("/A", b"1"), D("/A", b"2")
    cs.insert(first, 0.0)
    cs.insert(second, 0.0)
    assert len(cs) == 2
    assert cs.find(I(first.full_name().to_uri()), 0.0) == first
    assert cs.find(I(second.full_name().to_uri()), 0.0) == second
    assert cs.find(I("/A/sha256digest=" + "00" * 32), 0.0) is None
    assert cs.find(I(first.full_name().to_uri(), can_be_prefix=True), 0.0) == first


def test_cs_full_name_empty_data_name() -> None:
    cs = ContentStore()
    data = D("/", b"x")
    cs.insert(data, 0.0)
    assert cs.find(I(data.full_name().to_uri()), 0.0) == data


def test_cs_must_be_fresh() -> None:
    cs = ContentStore()
    cs.insert(D("/A/1"), 0.0)  # no FreshnessPeriod: stale at once
    cs.insert(D("/A/2", freshness_period=0), 0.0)
    cs.insert(D("/A/3", freshness_period=2000), 0.0)
    assert cs.find(I("/A", can_be_prefix=True, must_be_fresh=True), 0.0).name == N("/A/3")  # type: ignore[union-attr]
    assert cs.find(I("/A/3", must_be_fresh=True), 1.9) is not None
    assert cs.find(I("/A/3", must_be_fresh=True), 2.0) is None
    assert cs.find(I("/A/3"), 5.0) is not None
    cs.insert(D("/A/3", freshness_period=2000), 4.0)  # refresh
    assert cs.find(I("/A/3", must_be_fresh=True), 5.0) is not None


def test_cs_erase() -> None:
    cs = ContentStore()
    for name in ("/A/B", "/A/C", "/A/D", "/E"):
        cs.insert(D(name), 0.0)
    assert cs.erase(N("/A"), limit=2) == 2
    assert [d.name.to_uri() for d in cs] == ["/A/D", "/E"]
    assert cs.erase(N("/")) == 2 and len(cs) == 0 and cs.n_bytes == 0


def test_cs_zero_capacity_and_enablement_flags() -> None:
    cs = ContentStore(capacity=0)
    assert not cs.insert(D("/A"), 0.0) and len(cs) == 0
    cs = ContentStore()
    cs.enable_admit = False
    assert not cs.insert(D("/A"), 0.0)
    cs.enable_admit = True
    cs.insert(D("/A"), 0.0)
    cs.enable_serve = False
    assert cs.find(I("/A"), 0.0) is None
    cs.enable_serve = True
    assert cs.find(I("/A"), 0.0) is not None


def test_cs_enumeration_in_canonical_order() -> None:
    cs = ContentStore()
    names = ["/B", "/A/C", "/A", "/A/B", "/seg=1"]
    for name in names:
        cs.insert(D(name), 0.0)
    assert [d.name for d in cs] == sorted(N(n) for n in names)


def test_cs_lru_evict_one() -> None:
    cs = ContentStore(capacity=3, policy="lru")
    for name in ("/1", "/2", "/3"):
        cs.insert(D(name), 0.0)
    assert cs.find(I("/1"), 0.0) is not None  # use /1: /2 is now least recent
    cs.insert(D("/4"), 0.0)
    assert [d.name.to_uri() for d in cs] == ["/1", "/3", "/4"]
    cs.insert(D("/3"), 0.0)  # refresh makes /3 newest
    cs.insert(D("/5"), 0.0)
    assert [d.name.to_uri() for d in cs] == ["/3", "/4", "/5"]
    cs.set_limit(1)
    assert [d.name.to_uri() for d in cs] == ["/5"]


def test_cs_byte_capacity() -> None:
    one = D("/1", b"x" * 100)
    cs = ContentStore(capacity=100, capacity_bytes=2 * len(one.wire or b"") + 10)
    for name in ("/1", "/2", "/3"):
        cs.insert(D(name, b"x" * 100), 0.0)
    assert [d.name.to_uri() for d in cs] == ["/2", "/3"] and cs.n_bytes <= cs.capacity_bytes  # type: ignore[operator]
    assert not cs.insert(D("/big", b"x" * 1000), 0.0)


def test_cs_priority_fifo_evict_one() -> None:
    cs = ContentStore(capacity=3, policy="priority-fifo")
    cs.insert(D("/fresh", freshness_period=10_000), 0.0)
    cs.insert(D("/stale"), 0.0)
    cs.insert(D("/unsolicited", freshness_period=10_000), 0.0, is_unsolicited=True)
    cs.insert(D("/4", freshness_period=10_000), 0.0)  # evicts the unsolicited entry first
    assert "/unsolicited" not in {d.name.to_uri() for d in cs}
    cs.insert(D("/5", freshness_period=10_000), 0.0)  # then the stale one
    assert {d.name.to_uri() for d in cs} == {"/fresh", "/4", "/5"}
    cs.insert(D("/6", freshness_period=10_000), 0.0)  # then fresh, first in first out
    assert {d.name.to_uri() for d in cs} == {"/4", "/5", "/6"}


def test_cs_priority_fifo_refresh_and_aging() -> None:
    cs = ContentStore(capacity=3, policy="priority-fifo")
    assert isinstance(cs.policy, PriorityFifoPolicy)
    a = D("/A", freshness_period=1000)
    cs.insert(a, 0.0)
    cs.insert(D("/B", freshness_period=5000), 0.0)
    cs.insert(D("/C", freshness_period=5000), 0.0)
    full_a = cs.entry_for(a).key  # type: ignore[union-attr]
    assert cs.policy.queue_of(full_a, 0.5) == PriorityFifoPolicy.FRESH
    assert cs.policy.queue_of(full_a, 1.5) == PriorityFifoPolicy.STALE  # freshness ended
    cs.insert(D("/A", freshness_period=1000), 1.5)  # refresh: fresh again
    assert cs.policy.queue_of(full_a, 1.5) == PriorityFifoPolicy.FRESH
    cs.insert(D("/D", freshness_period=5000), 1.6)  # evicts /B, the oldest fresh one
    assert {d.name.to_uri() for d in cs} == {"/A", "/C", "/D"}
    cs.insert(D("/E", freshness_period=5000), 3.0)  # /A is stale by now: it goes first
    assert {d.name.to_uri() for d in cs} == {"/C", "/D", "/E"}


# --- Dead Nonce List (tests/daemon/table/dead-nonce-list.t.cpp) ----------------------------------------


def test_dnl_basic() -> None:
    clock = Clock()
    dnl = DeadNonceList(Scheduler(clock))
    assert len(dnl) == 5  # the initial MARKs
    dnl.add(N("/N"), 1)
    assert dnl.has(N("/N"), 1) and not dnl.has(N("/N"), 2) and not dnl.has(N("/M"), 1)
    dnl.add(N("/M"), 2)
    assert dnl.has(N("/M"), 2) and len(dnl) == 7


def test_dnl_no_duplicates() -> None:
    dnl = DeadNonceList(Scheduler(Clock()))
    for _ in range(10):
        dnl.add(N("/N"), 7)
    assert len(dnl) == 6


def test_dnl_min_lifetime() -> None:
    with pytest.raises(ValueError):
        DeadNonceList(Scheduler(Clock()), lifetime=0.049)
    DeadNonceList(Scheduler(Clock()), lifetime=0.05)


LIFETIME = 0.2


def _insert_periodically(clock: Clock, dnl: DeadNonceList, per_lifetime: int, lifetimes: float) -> int:
    """Add fresh nonces for /N at ``per_lifetime`` per lifetime, advancing the clock (NFD's fixture)."""
    step = LIFETIME / 100
    per_step = per_lifetime / 100
    nonce = 0
    carry = 0.0
    for _ in range(int(lifetimes * 100)):
        carry += per_step
        while carry >= 1:
            nonce += 1
            dnl.add(N("/N"), nonce)
            carry -= 1
        clock.advance(step)
    return nonce


def test_dnl_lifetime() -> None:
    clock = Clock()
    dnl = DeadNonceList(Scheduler(clock), LIFETIME)
    rate = INITIAL_CAPACITY // 2
    _insert_periodically(clock, dnl, rate // 2, 10)
    dnl.add(N("/N2"), 0xF323)
    assert dnl.has(N("/N2"), 0xF323)
    _insert_periodically(clock, dnl, rate // 2, 0.5)
    assert dnl.has(N("/N2"), 0xF323)  # kept for at least about half a lifetime
    _insert_periodically(clock, dnl, rate // 2, 3)
    assert not dnl.has(N("/N2"), 0xF323)  # and gone after a few lifetimes


def test_dnl_capacity_down() -> None:
    clock = Clock()
    dnl = DeadNonceList(Scheduler(clock), LIFETIME)
    cap0 = dnl.capacity
    rate = INITIAL_CAPACITY // 3
    _insert_periodically(clock, dnl, rate, 10)
    assert abs(dnl.capacity - rate) < abs(cap0 - rate) and dnl.capacity < cap0


def test_dnl_capacity_up() -> None:
    clock = Clock()
    dnl = DeadNonceList(Scheduler(clock), LIFETIME)
    cap0 = dnl.capacity
    rate = INITIAL_CAPACITY * 3 // 2
    _insert_periodically(clock, dnl, rate, 4)
    assert abs(dnl.capacity - rate) < abs(cap0 - rate) and dnl.capacity > cap0


# --- strategy choice --------------------------------------------------------------------------------


class _Named(Strategy):
    def after_receive_interest(self, interest: Interest, ingress: object, pit_entry: object) -> None:  # type: ignore[override]
        """Unused here."""


def test_strategy_choice_effective_strategy() -> None:
    tree = NameTree()

    def make(name: Name | str) -> Strategy | None:
        resolved = resolve_strategy(name)
        return resolved[0](None, resolved[1]) if resolved else None  # type: ignore[arg-type]

    table = StrategyChoice(tree, make, "best-route")
    assert isinstance(table.find_effective_strategy(N("/A/B")), BestRouteStrategy)
    assert table.insert(N("/A"), "/localhost/nfd/strategy/multicast")
    assert not table.insert(N("/A"), "no-such-strategy")
    assert isinstance(table.find_effective_strategy(N("/A/B")), MulticastStrategy)
    assert isinstance(table.find_effective_strategy(N("/B")), BestRouteStrategy)
    pit = Pit(tree)
    entry, _ = pit.insert(I("/A/B/C"))
    assert isinstance(table.find_effective_strategy_for_pit(entry), MulticastStrategy)
    assert table.get(N("/A")).strategy_name == MulticastStrategy.NAME  # type: ignore[union-attr]
    assert [c.prefix.to_uri() for c in table] == ["/", "/A"] and len(table) == 2
    assert not table.erase(N("/")) and table.erase(N("/A")) and not table.erase(N("/A"))
    assert isinstance(table.find_effective_strategy_for_pit(entry), BestRouteStrategy)


# --- RIB ----------------------------------------------------------------------------------------------


def test_rib_inheritance_capture_and_expiry() -> None:
    clock = Clock()
    applied: dict[Name, dict[int, int]] = {}
    rib = Rib(Scheduler(clock), lambda prefix, hops: applied.__setitem__(prefix, hops))
    rib.register(N("/a"), 300, cost=5)
    rib.register(N("/a/b"), 301, cost=1)
    assert applied[N("/a/b")] == {301: 1, 300: 5}  # inherited from /a (CHILD_INHERIT)
    rib.register(N("/a/b"), 300, origin=255, cost=2)
    assert applied[N("/a/b")] == {301: 1, 300: 2}  # own route wins over the inherited one
    rib.register(N("/a/b/c"), 302, flags=ROUTE_FLAG_CAPTURE)
    assert applied[N("/a/b/c")] == {302: 0}
    rib.register(N("/x"), 303, flags=0)
    rib.register(N("/x/y"), 304)
    assert applied[N("/x/y")] == {304: 0}  # /x does not let its children inherit
    rib.register(N("/t"), 305, expiration=1.0)
    assert applied[N("/t")] == {305: 0}
    clock.advance(1.0)
    assert applied[N("/t")] == {} and rib.routes(N("/t")) == []
    assert rib.unregister(N("/a"), 300)
    assert applied[N("/a")] == {} and applied[N("/a/b")] == {301: 1, 300: 2}
    assert not rib.unregister(N("/a"), 300)
    rib.remove_face(301)
    assert applied[N("/a/b")] == {300: 2}
    assert ROUTE_FLAG_CHILD_INHERIT == 1


# --- scheduler -----------------------------------------------------------------------------------------


def test_scheduler_orders_and_cancels() -> None:
    clock = Clock()
    scheduler = Scheduler(clock)
    fired: list[str] = []
    scheduler.schedule(2.0, lambda: fired.append("b"))
    event = scheduler.schedule(1.5, lambda: fired.append("x"))
    scheduler.schedule(1.0, lambda: fired.append("a"))
    event.cancel()
    assert len(clock.getDelayedCalls()) == 1  # one delayed call, for the earliest event
    clock.advance(1.0)
    assert fired == ["a"]
    clock.advance(1.0)
    assert fired == ["a", "b"] and not clock.getDelayedCalls()
    scheduler.schedule(0.0, lambda: fired.append("now"))
    clock.advance(0)
    assert fired[-1] == "now"
    scheduler.schedule(5.0, lambda: fired.append("never"))
    scheduler.stop()
    clock.advance(10)
    assert fired[-1] == "now" and not clock.getDelayedCalls()


def test_timer_queue_fires_in_deadline_order_across_groups_and_the_heap() -> None:
    clock = Clock()
    fired: list[tuple[str, int]] = []
    timers = TimerQueue(clock, lambda item, ticket: fired.append((item, ticket)))
    tickets = {name: timers.next_ticket() for name in ("a", "b", "c", "d", "e")}
    assert list(tickets.values()) == sorted(tickets.values())  # tickets only increase
    timers.push(4.0, tickets["a"], "a")  # the 4 s group: due 4.0
    clock.advance(0.5)
    timers.push(1.0, tickets["b"], "b")  # the 1 s group: due 1.5
    timers.push(4.0, tickets["c"], "c")  # 4 s again, after "a": due 4.5
    clock.rightNow -= 0.25  # the clock steps back: a 4 s deadline now breaks its group's order
    timers.push(4.0, tickets["d"], "d")  # due 4.25, to the heap
    clock.rightNow += 0.25
    assert len(timers) == 4 and len(clock.getDelayedCalls()) == 1
    clock.advance(1.0)
    assert fired == [("b", tickets["b"])]
    clock.advance(2.5)  # 4.0
    assert fired[-1] == ("a", tickets["a"])
    timers.push(0.125, tickets["e"], "e")  # due 4.125
    clock.advance(1.0)  # d, e and c together, in deadline order
    assert [item for item, _ticket in fired] == ["b", "a", "e", "d", "c"]
    assert len(timers) == 0 and not clock.getDelayedCalls()


def test_timer_queue_takes_many_delays_and_stops() -> None:
    clock = Clock()
    fired: list[float] = []
    timers = TimerQueue(clock, lambda item, ticket: fired.append(item))
    delays = [0.001 * (i + 1) for i in range(3 * TimerQueue.MAX_GROUPS)][::-1]  # more delays than groups
    for delay in delays:
        timers.push(delay, timers.next_ticket(), delay)
    clock.advance(1.0)
    assert fired == sorted(delays)
    timers.push(1.0, timers.next_ticket(), "never")
    timers.stop()
    clock.advance(2.0)
    assert fired == sorted(delays) and len(timers) == 0 and not clock.getDelayedCalls()
