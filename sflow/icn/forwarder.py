"""The forwarder: NFD's packet-processing pipelines over the tables, with NFD's counters.

NFD ``daemon/fw/forwarder.cpp`` (HEAD fe044ce), pipeline by pipeline:

* **incoming Interest** — count; add a Nonce if missing; HopLimit 0 → drop, else decrement;
  ``/localhost`` from a non-local face → drop; (Name, Nonce) in the Dead Nonce List → *Interest
  loop*; strip the ForwardingHint in the producer region; PIT insert; duplicate Nonce in the entry
  (except a retransmission from the same point-to-point face) → *Interest loop*; an entry without
  in-records looks up the CS (*hit* / *miss*), an entry already pending goes straight to *miss*
  (aggregation).
* **Interest loop** — dropped on non-point-to-point faces, else the strategy decides (default:
  Nack Duplicate).
* **CS miss** — count; attach the configured default HopLimit; insert the in-record; set the expiry
  timer to the latest in-record expiry; honour NextHopFaceId; else the strategy's
  ``after_receive_interest``.
* **CS hit** — count; mark satisfied; expiry timer 0; strategy ``after_content_store_hit``.
* **outgoing Interest** — HopLimit 0 never leaves on a non-local face; insert the out-record; send.
* **incoming Data** — count; ``/localhost`` scope; PIT match (none → *unsolicited Data*); CS insert
  unless NDNLPv2 CachePolicy=NoCache; one match → expiry 0, strategy ``after_receive_data``, mark
  satisfied, Dead Nonce List, delete the ingress out-record; several → collect the unexpired
  downstreams, and per entry expiry 0, ``before_satisfy_interest``, satisfied, Dead Nonce List,
  clear records; then send to the downstreams but the ingress.
* **unsolicited Data** — count; the unsolicited-data policy may cache it (default drop-all).
* **outgoing Data** — ``/localhost`` scope; send.
* **incoming Nack** — count; only on point-to-point faces, for an existing out-record whose Nonce
  matches; record it; expiry 0 once no out-record is pending; strategy ``after_receive_nack``.
* **outgoing Nack** — needs the downstream's in-record (the Nack carries its Interest), erases it;
  never on non-point-to-point faces.
* **finalize** (expiry timer) — Dead Nonce List insertion (all out-record Nonces when
  unsatisfied; when satisfied only for MustBeFresh with FreshnessPeriod shorter than the list's
  lifetime), count satisfied/unsatisfied, erase the entry.

A timer of 0 ms is run when the current packet (and anything it triggered) is done, before the
next packet — the order NFD's scheduler gives it. The forwarder reads time only from the clock it
is given.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from sflow.icn import cs as csmod
from sflow.icn.cs import ContentStore
from sflow.icn.dnl import DEFAULT_LIFETIME, DeadNonceList
from sflow.icn.face.base import FACE_ID_INTERNAL, INVALID_FACE_ID, Face, FaceScope, LinkType
from sflow.icn.face_table import FaceTable
from sflow.icn.fib import Fib, NextHop
from sflow.icn.limits import ForwarderLimits, LimitCounters, TokenBucket, room
from sflow.icn.lp import CACHE_POLICY_NO_CACHE, LpPacket
from sflow.icn.mgmt import Management
from sflow.icn.name import LOCALHOST, Name
from sflow.icn.name_tree import NameTree
from sflow.icn.packet import Data, Interest, Nack
from sflow.icn.pit import OutRecord, Pit, PitEntry
from sflow.icn.rib import Rib
from sflow.icn.scheduler import Clock, Scheduler, TimerQueue
from sflow.icn.strategy import DEFAULT_STRATEGY, Strategy, resolve_strategy
from sflow.icn.strategy_choice import StrategyChoice, install_default_choices

log = logging.getLogger(__name__)

UNSOLICITED_DATA_POLICIES = ("drop-all", "admit-local", "admit-network", "admit-all")

DUPLICATE_NONCE_NONE = 0
DUPLICATE_NONCE_IN_SAME = 1 << 0
DUPLICATE_NONCE_IN_OTHER = 1 << 1
DUPLICATE_NONCE_OUT_SAME = 1 << 2
DUPLICATE_NONCE_OUT_OTHER = 1 << 3


@dataclass(frozen=True, slots=True)
class ForwarderConfig:
    """Forwarder settings (NFD ``nfd.conf`` equivalents)."""

    cs_capacity: int = csmod.DEFAULT_CAPACITY
    cs_capacity_bytes: int | None = None
    cs_policy: str = "lru"
    unsolicited_data_policy: str = "drop-all"
    default_hop_limit: int = 0
    dead_nonce_list_lifetime: float = DEFAULT_LIFETIME
    network_regions: tuple[Name, ...] = ()
    default_strategy: Name | str = DEFAULT_STRATEGY
    limits: ForwarderLimits = ForwarderLimits()
    #: the cluster secret: management commands from faces other than in-process and Unix-socket
    #: ones must carry an HMAC-SHA256 signature under it (None: only those faces may manage)
    management_key: bytes | None = None
    #: seconds a management command's SignatureTime may differ from the forwarder's clock
    clock_skew: float = 30.0

    def __post_init__(self) -> None:
        if self.unsolicited_data_policy not in UNSOLICITED_DATA_POLICIES:
            raise ValueError(
                f"unknown unsolicited data policy {self.unsolicited_data_policy!r}; "
                f"choose from {', '.join(UNSOLICITED_DATA_POLICIES)}"
            )
        if self.cs_policy not in csmod.POLICIES:
            raise ValueError(f"unknown CS policy {self.cs_policy!r}; choose from {', '.join(csmod.POLICIES)}")
        if not 0 <= self.default_hop_limit <= 255:
            raise ValueError("default HopLimit must be 0 (none) to 255")


@dataclass(slots=True)
class ForwarderCounters:
    """NFD ``ForwarderCounters`` plus malformed/oversize packet drops."""

    n_in_interests: int = 0
    n_out_interests: int = 0
    n_in_data: int = 0
    n_out_data: int = 0
    n_in_nacks: int = 0
    n_out_nacks: int = 0
    n_satisfied_interests: int = 0
    n_unsatisfied_interests: int = 0
    n_unsolicited_data: int = 0
    n_cs_hits: int = 0
    n_cs_misses: int = 0
    n_malformed_packets: int = 0
    n_oversize_packets: int = 0
    n_interest_loops: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Forwarder:
    """An NDN forwarder. Attach faces with :meth:`add_face`; it is the faces' packet handler."""

    def __init__(self, clock: Clock, config: ForwarderConfig | None = None) -> None:
        self.config = config or ForwarderConfig()
        self.clock = clock
        self.scheduler = Scheduler(clock)
        self.counters = ForwarderCounters()
        self.limits = self.config.limits
        self.limit_counters = LimitCounters()
        #: per-face Interest rate (face id → bucket), for faces other than in-process ones
        self._buckets: dict[int, TokenBucket] = {}
        #: PIT entries created by each face (face id → count); each entry keeps its creator's id
        self._pit_by_face: dict[int, int] = {}
        self.name_tree = NameTree()
        self.fib = Fib(self.name_tree)
        self.pit = Pit(self.name_tree)
        self.cs = ContentStore(self.config.cs_capacity, self.config.cs_capacity_bytes, self.config.cs_policy)
        self.dead_nonce_list = DeadNonceList(self.scheduler, self.config.dead_nonce_list_lifetime)
        #: the PIT entries' expiry timers (items: PIT keys; see set_expiry_timer)
        self._expiry_timers = TimerQueue(clock, self._expire)
        self.strategy_choice = StrategyChoice(self.name_tree, self._make_strategy, self.config.default_strategy)
        install_default_choices(self.strategy_choice)
        self.faces = FaceTable()
        self.rib = Rib(self.scheduler, self._apply_rib)
        self.unsolicited_data_policy = self.config.unsolicited_data_policy
        self.start_time = clock.seconds()
        self.fib.after_new_next_hop.append(self.on_new_next_hop)
        self._dnl_lifetime_ms = self.config.dead_nonce_list_lifetime * 1000.0
        self._finalize_queue: deque[tuple[PitEntry, int]] = deque()
        self._depth = 0
        self._ingress: Face | None = None
        self._ingress_lp: LpPacket | None = None
        self._random = random.Random()
        self.management = Management(self)

    def _make_strategy(self, name: Name | str) -> Strategy | None:
        resolved = resolve_strategy(name)
        if resolved is None:
            return None
        cls, instance_name = resolved
        return cls(self, instance_name)

    def now(self) -> float:
        return self.clock.seconds()

    # --- faces ------------------------------------------------------------------------------------
    def add_face(self, face: Face, face_id: int | None = None) -> int:
        """Put ``face`` in the face table and become its packet handler."""
        face.handler = self
        face_id = self.faces.add(face, face_id)
        log.info("face added id=%d remote=%s local=%s scope=%s", face_id, face.remote_uri, face.local_uri,
                 face.scope.name.lower())
        return face_id

    def on_face_closed(self, face: Face) -> None:
        """NFD ``cleanupOnFaceRemoval``: drop the face's next hops, records and routes."""
        if self.faces.get(face.face_id) is not face:
            return
        self.rib.remove_face(face.face_id)
        self.fib.remove_next_hop_from_all_entries(face)
        for entry in self.pit:
            entry.delete_in_record(face)
            entry.delete_out_record(face)
        self.faces.remove(face)
        self._buckets.pop(face.face_id, None)
        log.info("face removed id=%d remote=%s", face.face_id, face.remote_uri)

    def accepts_face(self, remote: str) -> bool:
        """Whether a new face (a connection, a UDP peer) fits under ``limits.max_faces``; a
        refusal is counted and logged."""
        if room(self.limits.max_faces, len(self.faces)):
            return True
        self.limit_counters.n_faces_refused += 1
        log.warning("event=face_refused remote=%s reason=max_faces limit=%d", remote, self.limits.max_faces)
        return False

    def on_face_malformed(self, face: Face, reason: str) -> None:
        self.counters.n_malformed_packets += 1

    def on_face_oversize(self, face: Face) -> None:
        self.counters.n_oversize_packets += 1

    # --- routes -----------------------------------------------------------------------------------
    def add_route(self, prefix: Name | str, face: Face, cost: int = 0, *, origin: int = 255) -> None:
        """A static route (origin 255 = static, as NFD's ``nfdc route add``)."""
        self.rib.register(Name.coerce(prefix), face.face_id, origin=origin, cost=cost)

    def remove_route(self, prefix: Name | str, face: Face, *, origin: int = 255) -> bool:
        return self.rib.unregister(Name.coerce(prefix), face.face_id, origin)

    def set_next_hops(self, prefix: Name, next_hops: dict[int, int]) -> None:
        """Make the FIB entry of ``prefix`` hold exactly these {face id: cost} (no entry when empty)."""
        wanted = {fid: cost for fid, cost in next_hops.items() if self.faces.get(fid) is not None}
        entry = self.fib.find_exact_match(prefix)
        if not wanted:
            if entry is not None:
                self.fib.erase(prefix)
            return
        if entry is None:
            if not room(self.limits.fib_max_entries, len(self.fib)):
                self.limit_counters.n_fib_full += 1
                log.warning("event=route_refused prefix=%s reason=fib_max_entries limit=%d", prefix,
                            self.limits.fib_max_entries)
                return
            entry, _created = self.fib.insert(prefix)
        wanted = self._cheapest_next_hops(prefix, wanted)
        for hop in list(entry.next_hops):
            if hop.face.face_id not in wanted:
                entry.next_hops.remove(hop)
        for face_id, cost in wanted.items():
            face = self.faces.get(face_id)
            if face is not None:
                self.fib.add_or_update_next_hop(entry, face, cost)

    def _cheapest_next_hops(self, prefix: Name, wanted: dict[int, int]) -> dict[int, int]:
        """At most ``limits.fib_max_nexthops`` of ``wanted`` (the cheapest); the rest counted."""
        most = self.limits.fib_max_nexthops
        if not most or len(wanted) <= most:
            return wanted
        kept = dict(sorted(wanted.items(), key=lambda hop: (hop[1], hop[0]))[:most])
        self.limit_counters.n_nexthops_refused += len(wanted) - most
        log.warning("event=next_hops_refused prefix=%s kept=%d refused=%d", prefix, most, len(wanted) - most)
        return kept

    def _apply_rib(self, prefix: Name, next_hops: dict[int, int]) -> None:
        self._run(self.set_next_hops, prefix, next_hops)

    # --- dispatch ---------------------------------------------------------------------------------
    def _run(self, fn: Callable[..., None], *args: Any) -> None:
        """Run a pipeline; when the outermost one ends, run the 0 ms timers it set."""
        self._depth += 1
        try:
            fn(*args)
        finally:
            self._depth -= 1
        if self._depth == 0 and self._finalize_queue:
            self._drain()

    def _drain(self) -> None:
        queue = self._finalize_queue
        self._depth += 1
        try:
            while queue:
                entry, ticket = queue.popleft()
                if not entry.erased and entry.expiry_ticket == ticket:
                    self.on_interest_finalize(entry)
        finally:
            self._depth -= 1

    def set_expiry_timer(self, entry: PitEntry, duration: float) -> None:
        """NFD ``Forwarder::setExpiryTimer``: (re)arm the entry's finalize timer.

        The entry's new ticket makes any earlier timer of it stale; nothing is cancelled."""
        ticket = self._expiry_timers.next_ticket()
        entry.expiry_ticket = ticket
        if duration <= 0:
            self._finalize_queue.append((entry, ticket))
            if self._depth == 0:
                self._drain()
            return
        self._expiry_timers.push(duration, ticket, entry.key)

    def _expire(self, key: tuple[bytes, bool, bool], ticket: int) -> None:
        entry = self.pit.get(key)
        if entry is not None and entry.expiry_ticket == ticket:
            self._run(self.on_interest_finalize, entry)

    def ingress_pit_token(self, face: Face) -> bytes | None:
        """The PIT token of the packet being processed, if it came from ``face`` (NFD's packet tag)."""
        if face is self._ingress and self._ingress_lp is not None:
            return self._ingress_lp.pit_token
        return None

    # --- incoming Interest ------------------------------------------------------------------------
    def on_incoming_interest(self, face: Face, interest: Interest, lp: LpPacket | None) -> None:
        self._depth += 1
        saved = self._ingress, self._ingress_lp
        self._ingress, self._ingress_lp = face, lp
        try:
            self._incoming_interest(face, interest, lp)
        finally:
            self._ingress, self._ingress_lp = saved
            self._depth -= 1
        if self._depth == 0 and self._finalize_queue:
            self._drain()

    def _incoming_interest(self, face: Face, interest: Interest, lp: LpPacket | None) -> None:
        self.counters.n_in_interests += 1
        if not self._admit_interest(face, interest):
            return
        if interest.nonce is None:
            interest = replace(interest, nonce=self._random.getrandbits(32))
        hop_limit = interest.hop_limit
        if hop_limit is not None:
            if hop_limit == 0:
                face.counters.n_in_hop_limit_zero += 1
                return
            interest = replace(interest, hop_limit=hop_limit - 1)
        name = interest.name
        if face.scope == FaceScope.NON_LOCAL and LOCALHOST.is_prefix_of(name):
            log.debug("interest violates /localhost face=%d name=%s", face.face_id, name)
            return
        nonce = interest.nonce or 0
        if self.dead_nonce_list.has(name, nonce):
            self.on_interest_loop(interest, face)
            return
        if interest.forwarding_hint and self._in_producer_region(interest.forwarding_hint):
            interest = replace(interest, forwarding_hint=())
        entry, created = self.pit.insert(interest)
        if created:
            self._pit_created(face, entry)
        elif entry.in_records or entry.out_records:
            duplicate = self._find_duplicate_nonce(entry, nonce, face)
            if duplicate and not (face.link_type == LinkType.POINT_TO_POINT and duplicate & DUPLICATE_NONCE_IN_SAME):
                self.on_interest_loop(interest, face)
                return
        if not entry.in_records:
            cached = self.cs.find_entry(interest, self.clock.seconds())
            if cached is not None:
                self.on_content_store_hit(interest, face, entry, cached.data)
                return
        self.on_content_store_miss(interest, face, entry, lp)

    def _admit_interest(self, face: Face, interest: Interest) -> bool:
        """The per-face Interest rate and the PIT size limit (:mod:`sflow.icn.limits`): False
        drops the Interest (counted)."""
        limits = self.limits
        if limits.interest_rate > 0 and not face.in_process:
            bucket = self._buckets.get(face.face_id)
            now = self.clock.seconds()
            if bucket is None:
                bucket = self._buckets[face.face_id] = TokenBucket(limits.interest_rate, limits.interest_burst, now)
            if not bucket.take(now):
                self.limit_counters.n_rate_limited += 1
                log.debug("event=interest_dropped reason=rate face=%d", face.face_id)
                return False
        if limits.pit_max_entries and len(self.pit) >= limits.pit_max_entries and self.pit.find(interest) is None:
            self.limit_counters.n_pit_full += 1
            log.debug("event=interest_dropped reason=pit_full face=%d", face.face_id)
            return False
        quota = limits.pit_max_entries_per_face
        if quota and self._pit_by_face.get(face.face_id, 0) >= quota and self.pit.find(interest) is None:
            self.limit_counters.n_pit_face_quota += 1
            log.debug("event=interest_dropped reason=pit_face_quota face=%d", face.face_id)
            return False
        return True

    def _pit_created(self, face: Face, entry: PitEntry) -> None:
        """Count the entry against the face whose Interest created it (its PIT quota); the node's
        own in-process faces have none."""
        if self.limits.pit_max_entries_per_face and not face.in_process:
            entry.quota_face_id = face.face_id
            self._pit_by_face[face.face_id] = self._pit_by_face.get(face.face_id, 0) + 1

    def _pit_erased(self, entry: PitEntry) -> None:
        face_id = entry.quota_face_id
        if face_id:
            entry.quota_face_id = 0
            left = self._pit_by_face[face_id] - 1
            if left:
                self._pit_by_face[face_id] = left
            else:
                del self._pit_by_face[face_id]

    def _in_producer_region(self, hints: tuple[Name, ...]) -> bool:
        """NFD ``NetworkRegionTable::isInProducerRegion``."""
        return any(hint.is_prefix_of(region) for hint in hints for region in self.config.network_regions)

    @staticmethod
    def _find_duplicate_nonce(entry: PitEntry, nonce: int, face: Face) -> int:
        """NFD ``fw::findDuplicateNonce``."""
        result = DUPLICATE_NONCE_NONE
        for record in entry.in_records.values():
            if record.nonce == nonce:
                result |= DUPLICATE_NONCE_IN_SAME if record.face is face else DUPLICATE_NONCE_IN_OTHER
        for out in entry.out_records.values():
            if out.nonce == nonce:
                result |= DUPLICATE_NONCE_OUT_SAME if out.face is face else DUPLICATE_NONCE_OUT_OTHER
        return result

    def on_interest_loop(self, interest: Interest, face: Face) -> None:
        self.counters.n_interest_loops += 1
        if face.link_type != LinkType.POINT_TO_POINT:
            return
        self.strategy_choice.find_effective_strategy(interest.name).on_interest_loop(interest, face)

    def send_loop_nack(self, interest: Interest, face: Face, reason: int) -> None:
        """Nack a looping Interest directly (it has no in-record: NFD ``Strategy::onInterestLoop``)."""
        face.send_nack(Nack(interest, reason), pit_token=self.ingress_pit_token(face))
        self.counters.n_out_nacks += 1

    def on_content_store_miss(self, interest: Interest, face: Face, entry: PitEntry, lp: LpPacket | None) -> None:
        self.counters.n_cs_misses += 1
        default_hop_limit = self.config.default_hop_limit
        if default_hop_limit and interest.hop_limit is None:
            interest = replace(interest, hop_limit=default_hop_limit)
        now = self.clock.seconds()
        record = entry.insert_or_update_in_record(face, interest, now, lp.pit_token if lp is not None else None)
        in_records = entry.in_records
        last_expiry = record.expiry if len(in_records) == 1 else max(r.expiry for r in in_records.values())
        self.set_expiry_timer(entry, last_expiry - now)
        if lp is not None and lp.next_hop_face_id is not None:
            next_hop = self.faces.get(lp.next_hop_face_id)
            if next_hop is not None:
                self.on_outgoing_interest(interest, next_hop, entry)
            return
        self.strategy_choice.find_effective_strategy_for_pit(entry).after_receive_interest(interest, face, entry)

    def on_content_store_hit(self, interest: Interest, face: Face, entry: PitEntry, data: Data) -> None:
        self.counters.n_cs_hits += 1
        entry.is_satisfied = True
        entry.data_freshness_period = data.freshness_period
        self.set_expiry_timer(entry, 0.0)
        self.strategy_choice.find_effective_strategy_for_pit(entry).after_content_store_hit(data, face, entry)

    def on_outgoing_interest(self, interest: Interest, egress: Face, entry: PitEntry) -> OutRecord | None:
        if interest.hop_limit == 0 and egress.scope == FaceScope.NON_LOCAL:
            egress.counters.n_out_hop_limit_zero += 1
            return None
        record = entry.insert_or_update_out_record(egress, interest, self.clock.seconds())
        if egress.face_id == FACE_ID_INTERNAL:
            # the management face learns who asked (NDNLPv2 IncomingFaceId, a local field)
            requester = self._ingress if self._ingress is not None else next(
                (r.face for r in entry.in_records.values()), None
            )
            egress.send_interest(interest, incoming_face_id=requester.face_id if requester else None)
        else:
            egress.send_interest(interest)
        self.counters.n_out_interests += 1
        return record

    def on_interest_finalize(self, entry: PitEntry) -> None:
        self._insert_dead_nonce_list(entry, None)
        if entry.is_satisfied:
            self.counters.n_satisfied_interests += 1
        else:
            self.counters.n_unsatisfied_interests += 1
        self._pit_erased(entry)
        self.pit.erase(entry)

    def _insert_dead_nonce_list(self, entry: PitEntry, upstream: Face | None) -> None:
        """NFD ``Forwarder::insertDeadNonceList``."""
        # entry.key[2] is its MustBeFresh
        if entry.is_satisfied and not (entry.key[2] and entry.data_freshness_period < self._dnl_lifetime_ms):
            return
        if upstream is None:
            for out in entry.out_records.values():
                self.dead_nonce_list.add(entry.name, out.nonce)
        else:
            record = entry.get_out_record(upstream)
            if record is not None:
                self.dead_nonce_list.add(entry.name, record.nonce)

    # --- Data -------------------------------------------------------------------------------------
    def on_incoming_data(self, face: Face, data: Data, lp: LpPacket | None) -> None:
        self._run(self._incoming_data, face, data, lp)

    def _incoming_data(self, face: Face, data: Data, lp: LpPacket | None) -> None:
        self.counters.n_in_data += 1
        if face.scope == FaceScope.NON_LOCAL and LOCALHOST.is_prefix_of(data.name):
            return
        matches = self.pit.find_all_data_matches(data)
        if not matches:
            self.on_data_unsolicited(face, data, lp)
            return
        now = self.clock.seconds()
        if lp is None or lp.cache_policy != CACHE_POLICY_NO_CACHE:
            self.cs.insert(data, now)
        if len(matches) == 1:
            entry = matches[0]
            self.set_expiry_timer(entry, 0.0)
            self.strategy_choice.find_effective_strategy_for_pit(entry).after_receive_data(data, face, entry)
            entry.is_satisfied = True
            entry.data_freshness_period = data.freshness_period
            self._insert_dead_nonce_list(entry, face)
            entry.delete_out_record(face)
            return
        downstreams: dict[int, tuple[Face, bytes | None]] = {}
        for entry in matches:
            for record in entry.in_records.values():
                if record.expiry > now:
                    downstreams[record.face.face_id] = (record.face, record.pit_token)
            self.set_expiry_timer(entry, 0.0)
            self.strategy_choice.find_effective_strategy_for_pit(entry).before_satisfy_interest(data, face, entry)
            entry.is_satisfied = True
            entry.data_freshness_period = data.freshness_period
            self._insert_dead_nonce_list(entry, face)
            entry.clear_in_records()
            entry.delete_out_record(face)
        for downstream, token in downstreams.values():
            if downstream is face and downstream.link_type != LinkType.AD_HOC:
                continue
            self.on_outgoing_data(data, downstream, token)

    def on_data_unsolicited(self, face: Face, data: Data, lp: LpPacket | None = None) -> None:
        self.counters.n_unsolicited_data += 1
        policy = self.unsolicited_data_policy
        no_cache = lp is not None and lp.cache_policy == CACHE_POLICY_NO_CACHE
        admit = not no_cache and (
            policy == "admit-all"
            or (policy == "admit-local" and face.scope == FaceScope.LOCAL)
            or (policy == "admit-network" and face.scope == FaceScope.NON_LOCAL)
        )
        log.debug("unsolicited data face=%d name=%s cache=%s", face.face_id, data.name, admit)
        if admit:
            self.cs.insert(data, self.clock.seconds(), is_unsolicited=True)

    def on_outgoing_data(self, data: Data, egress: Face, pit_token: bytes | None = None) -> bool:
        if egress.face_id == INVALID_FACE_ID:
            return False
        if egress.scope == FaceScope.NON_LOCAL and LOCALHOST.is_prefix_of(data.name):
            return False
        egress.send_data(data, pit_token=pit_token)
        self.counters.n_out_data += 1
        return True

    # --- Nack -------------------------------------------------------------------------------------
    def on_incoming_nack(self, face: Face, nack: Nack, lp: LpPacket | None) -> None:
        self._run(self._incoming_nack, face, nack)

    def _incoming_nack(self, face: Face, nack: Nack) -> None:
        self.counters.n_in_nacks += 1
        if face.link_type != LinkType.POINT_TO_POINT:
            return
        entry = self.pit.find(nack.interest)
        if entry is None:
            return
        record = entry.get_out_record(face)
        if record is None or nack.interest.nonce != record.nonce:
            return
        record.incoming_nack = nack.reason
        if not entry.has_pending_out_records(self.clock.seconds()):
            self.set_expiry_timer(entry, 0.0)
        self.strategy_choice.find_effective_strategy_for_pit(entry).after_receive_nack(nack, face, entry)

    def on_outgoing_nack(self, reason: int, egress: Face, entry: PitEntry) -> bool:
        if egress.face_id == INVALID_FACE_ID:
            return False
        record = entry.get_in_record(egress)
        if record is None or record.interest is None:
            return False
        if egress.link_type != LinkType.POINT_TO_POINT:
            return False
        entry.delete_in_record(egress)
        egress.send_nack(Nack(record.interest, reason), pit_token=record.pit_token)
        self.counters.n_out_nacks += 1
        return True

    # --- new next hop -----------------------------------------------------------------------------
    def on_new_next_hop(self, prefix: Name, next_hop: NextHop) -> None:
        """NFD ``Forwarder::onNewNextHop``: pending entries served by this FIB entry may use it."""
        fib_entry = self.fib.find_exact_match(prefix)
        if fib_entry is None:
            return
        affected = [
            entry
            for entry in self.pit
            if prefix.is_prefix_of(entry.name) and self.fib.find_longest_prefix_match_for_pit(entry) is fib_entry
        ]
        for entry in affected:
            if not entry.erased:
                self.strategy_choice.find_effective_strategy_for_pit(entry).after_new_next_hop(next_hop, entry)

    # --- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every face and stop the timers."""
        for face in list(self.faces):
            face.close()
        self.dead_nonce_list.stop()
        self._expiry_timers.stop()
        self.scheduler.stop()
