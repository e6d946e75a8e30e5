"""multicast: forward every Interest to all eligible next hops.

NFD ``daemon/fw/multicast-strategy.cpp`` (multicast v4): retransmission suppression is decided
per upstream (``RetxSuppressionExponential::decidePerUpstream``); with no eligible next hop and
nothing suppressed, the downstreams get Nack(NoRoute) and the entry is rejected. When a next hop
appears, a pending Interest is sent to it if one of its downstreams may reach it. Nacks from
upstreams are not relayed (NFD's multicast keeps the default no-op); the entry is finalized once
every upstream has Nacked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sflow.icn.face.base import Face
from sflow.icn.fib import NextHop
from sflow.icn.name import Name
from sflow.icn.packet import Interest, NackReason
from sflow.icn.pit import PitEntry
from sflow.icn.strategy.base import Strategy, is_next_hop_eligible
from sflow.icn.strategy.retx_suppression import RetxSuppressionExponential, RetxSuppressionResult

if TYPE_CHECKING:
    from sflow.icn.forwarder import Forwarder


class MulticastStrategy(Strategy):
    """NFD's multicast strategy (v4)."""

    NAME = Name.from_uri("/localhost/nfd/strategy/multicast/v=4")

    def __init__(self, forwarder: Forwarder, instance_name: Name | None = None) -> None:
        super().__init__(forwarder, instance_name)
        self.retx_suppression = RetxSuppressionExponential()

    def after_receive_interest(self, interest: Interest, ingress: Face, pit_entry: PitEntry) -> None:
        now = self.now()
        n_eligible = 0
        suppressed = False
        for hop in list(self.lookup_fib(pit_entry).next_hops):
            out_face = hop.face
            result = self.retx_suppression.decide_per_upstream(pit_entry, out_face, now)
            if result is RetxSuppressionResult.SUPPRESS:
                suppressed = True
                continue
            if not is_next_hop_eligible(ingress, interest, hop, pit_entry):
                continue
            record = self.send_interest(interest, out_face, pit_entry)
            if not pit_entry.has_in_records():
                break
            if result is RetxSuppressionResult.FORWARD and record is not None:
                self.retx_suppression.increment_interval_for_out_record(record)
            n_eligible += 1
        if n_eligible == 0 and not suppressed:
            self.send_nacks(NackReason.NO_ROUTE, pit_entry)
            self.reject_pending_interest(pit_entry)

    def after_new_next_hop(self, next_hop: NextHop, pit_entry: PitEntry) -> None:
        interest = pit_entry.interest
        for record in list(pit_entry.in_records.values()):
            if is_next_hop_eligible(record.face, interest, next_hop, pit_entry):
                self.send_interest(record.interest or interest, next_hop.face, pit_entry)
                break
