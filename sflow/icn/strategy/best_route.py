"""best-route: forward to the cheapest eligible next hop; retransmissions to an unused one.

NFD ``daemon/fw/best-route-strategy.cpp`` (best-route v5) with ``RetxSuppressionExponential`` and
``ProcessNackTraits``:

* a new Interest goes to the lowest-cost eligible next hop; with none, the downstream gets
  Nack(NoRoute) and the PIT entry is rejected;
* a retransmission within the suppression interval is suppressed; otherwise it goes to the
  cheapest eligible next hop without an unexpired out-record, else to the eligible next hop whose
  out-record is oldest;
* Nacks are combined as in :func:`process_nack`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sflow.icn.face.base import Face
from sflow.icn.fib import NextHop
from sflow.icn.name import Name
from sflow.icn.packet import Interest, Nack, NackReason, is_less_severe
from sflow.icn.pit import PitEntry
from sflow.icn.strategy.base import Strategy, is_next_hop_eligible
from sflow.icn.strategy.retx_suppression import RetxSuppressionExponential, RetxSuppressionResult

if TYPE_CHECKING:
    from sflow.icn.forwarder import Forwarder


def process_nack(strategy: Strategy, in_face: Face, nack: Nack, pit_entry: PitEntry) -> None:
    """NFD ``ProcessNackTraits::processNack``.

    If every out-record is Nacked, Nack all downstreams with the least severe reason. If exactly
    one upstream has not Nacked and it is also a downstream, Nack it (so two consumers asking each
    other do not deadlock). Otherwise keep waiting.
    """
    n_not_nacked = 0
    last_not_nacked: Face | None = None
    least_severe = int(NackReason.NONE)
    for record in pit_entry.out_records.values():
        if record.incoming_nack is None:
            n_not_nacked += 1
            last_not_nacked = record.face
            continue
        if is_less_severe(record.incoming_nack, least_severe):
            least_severe = record.incoming_nack
    if n_not_nacked == 1 and last_not_nacked is not None:
        if pit_entry.get_in_record(last_not_nacked) is not None:
            strategy.send_nack(least_severe, last_not_nacked, pit_entry)
            return
    if n_not_nacked > 0:
        return
    strategy.send_nacks(least_severe, pit_entry)


class BestRouteStrategy(Strategy):
    """NFD's best-route strategy (v5)."""

    NAME = Name.from_uri("/localhost/nfd/strategy/best-route/v=5")

    def __init__(self, forwarder: Forwarder, instance_name: Name | None = None) -> None:
        super().__init__(forwarder, instance_name)
        self.retx_suppression = RetxSuppressionExponential()

    def after_receive_interest(self, interest: Interest, ingress: Face, pit_entry: PitEntry) -> None:
        now = self.forwarder.clock.seconds()
        suppression = self.retx_suppression.decide_per_pit_entry(pit_entry, now)
        if suppression is RetxSuppressionResult.SUPPRESS:
            return
        next_hops = self.lookup_fib(pit_entry).next_hops
        if suppression is RetxSuppressionResult.NEW:
            for hop in next_hops:
                if is_next_hop_eligible(ingress, interest, hop, pit_entry):
                    self.send_interest(interest, hop.face, pit_entry)
                    return
            self.send_nack(NackReason.NO_ROUTE, ingress, pit_entry)
            self.reject_pending_interest(pit_entry)
            return
        for hop in next_hops:
            if is_next_hop_eligible(ingress, interest, hop, pit_entry, want_unused=True, now=now):
                self.send_interest(interest, hop.face, pit_entry)
                return
        earliest = self._eligible_with_earliest_out_record(ingress, interest, next_hops, pit_entry)
        if earliest is not None:
            self.send_interest(interest, earliest.face, pit_entry)

    @staticmethod
    def _eligible_with_earliest_out_record(
        ingress: Face, interest: Interest, next_hops: list[NextHop], pit_entry: PitEntry
    ) -> NextHop | None:
        """NFD ``findEligibleNextHopWithEarliestOutRecord``."""
        best: NextHop | None = None
        earliest = float("inf")
        for hop in next_hops:
            if not is_next_hop_eligible(ingress, interest, hop, pit_entry):
                continue
            record = pit_entry.get_out_record(hop.face)
            renewed = record.last_renewed if record is not None else float("-inf")
            if renewed < earliest:
                earliest = renewed
                best = hop
        return best

    def after_receive_nack(self, nack: Nack, ingress: Face, pit_entry: PitEntry) -> None:
        process_nack(self, ingress, nack, pit_entry)
