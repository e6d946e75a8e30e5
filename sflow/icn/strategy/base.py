"""The strategy interface: hooks the forwarder calls, and the only actions a strategy may take.

NFD ``daemon/fw/strategy.{hpp,cpp}``. The forwarder triggers ``after_receive_interest``,
``after_content_store_hit``, ``before_satisfy_interest`` / ``after_receive_data``,
``after_receive_nack``, ``on_interest_loop`` and ``after_new_next_hop``.
A strategy acts only through the forwarder's actions, wrapped here: :meth:`Strategy.send_interest`,
:meth:`Strategy.send_data`, :meth:`Strategy.send_data_to_all`, :meth:`Strategy.send_nack`,
:meth:`Strategy.send_nacks`, :meth:`Strategy.reject_pending_interest` (and
:meth:`Strategy.set_expiry_timer`, as NFD strategies may).

Also here: NFD's ``wouldViolateScope`` and ``isNextHopEligible`` helpers shared by strategies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from sflow.icn.face.base import Face, FaceScope, LinkType
from sflow.icn.fib import FibEntry, NextHop
from sflow.icn.name import LOCALHOP, LOCALHOST, Name
from sflow.icn.packet import Data, Interest, Nack, NackReason
from sflow.icn.pit import OutRecord, PitEntry

if TYPE_CHECKING:
    from sflow.icn.forwarder import Forwarder

def would_violate_scope(in_face: Face, interest: Interest, out_face: Face) -> bool:
    """NFD ``wouldViolateScope``: /localhost never leaves the host; /localhop goes at most one hop."""
    if out_face.scope == FaceScope.LOCAL:
        return False
    name = interest.name
    if LOCALHOST.is_prefix_of(name):
        return True
    if LOCALHOP.is_prefix_of(name):
        return in_face.scope != FaceScope.LOCAL
    return False


def is_next_hop_eligible(
    in_face: Face,
    interest: Interest,
    next_hop: NextHop,
    pit_entry: PitEntry,
    want_unused: bool = False,
    now: float = float("-inf"),
) -> bool:
    """NFD ``isNextHopEligible``: not back to the ingress (unless ad hoc), no scope violation, and
    with ``want_unused`` no unexpired out-record."""
    out_face = next_hop.face
    if out_face is in_face and out_face.link_type != LinkType.AD_HOC:
        return False
    if out_face.scope != FaceScope.LOCAL and would_violate_scope(in_face, interest, out_face):
        return False
    if want_unused:
        record = pit_entry.get_out_record(out_face)
        if record is not None and record.expiry > now:
            return False
    return True


class Strategy(ABC):
    """Base strategy: NFD's default hooks. Subclasses override ``after_receive_interest`` at least."""

    NAME = Name.from_uri("/localhost/nfd/strategy/base")

    def __init__(self, forwarder: Forwarder, instance_name: Name | None = None) -> None:
        self.forwarder = forwarder
        self.instance_name = instance_name or self.NAME

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.instance_name})"

    # --- hooks ----------------------------------------------------------------------------------
    @abstractmethod
    def after_receive_interest(self, interest: Interest, ingress: Face, pit_entry: PitEntry) -> None:
        """A new or retransmitted Interest missed the CS (or joined a pending entry): forward it."""

    def after_content_store_hit(self, data: Data, ingress: Face, pit_entry: PitEntry) -> None:
        """Default: return the cached Data to the requester."""
        self.send_data(data, ingress, pit_entry)

    def before_satisfy_interest(self, data: Data, ingress: Face, pit_entry: PitEntry) -> None:
        """Called for each PIT entry when a Data satisfies several; default does nothing."""

    def after_receive_data(self, data: Data, ingress: Face, pit_entry: PitEntry) -> None:
        """Default: ``before_satisfy_interest``, then send the Data to every pending downstream."""
        self.before_satisfy_interest(data, ingress, pit_entry)
        self.send_data_to_all(data, pit_entry, ingress)

    def after_receive_nack(self, nack: Nack, ingress: Face, pit_entry: PitEntry) -> None:
        """Default: nothing (the entry expires, or is finalized once every upstream Nacked)."""

    def on_interest_loop(self, interest: Interest, ingress: Face) -> None:
        """Default: answer a looping Interest with Nack(Duplicate)."""
        self.forwarder.send_loop_nack(interest, ingress, NackReason.DUPLICATE)

    def after_new_next_hop(self, next_hop: NextHop, pit_entry: PitEntry) -> None:
        """A next hop appeared on the FIB entry that serves ``pit_entry``; default does nothing."""

    # --- actions --------------------------------------------------------------------------------
    def now(self) -> float:
        return self.forwarder.clock.seconds()

    def lookup_fib(self, pit_entry: PitEntry) -> FibEntry:
        return self.forwarder.fib.find_longest_prefix_match_for_pit(pit_entry)

    def send_interest(self, interest: Interest, egress: Face, pit_entry: PitEntry) -> OutRecord | None:
        return self.forwarder.on_outgoing_interest(interest, egress, pit_entry)

    def send_data(self, data: Data, egress: Face, pit_entry: PitEntry) -> None:
        """Send Data to one downstream and delete its in-record (NFD ``Strategy::sendData``)."""
        record = pit_entry.in_records.pop(egress.face_id, None)
        token = record.pit_token if record is not None else self.forwarder.ingress_pit_token(egress)
        self.forwarder.on_outgoing_data(data, egress, token)

    def send_data_to_all(self, data: Data, pit_entry: PitEntry, in_face: Face) -> None:
        """Send Data to every downstream with an unexpired in-record, but the ingress (unless ad hoc)."""
        now = self.forwarder.clock.seconds()
        downstreams = [
            record.face
            for record in pit_entry.in_records.values()
            if record.expiry > now and not (record.face is in_face and in_face.link_type != LinkType.AD_HOC)
        ]
        for face in downstreams:
            self.send_data(data, face, pit_entry)

    def send_nack(self, reason: int, egress: Face, pit_entry: PitEntry) -> bool:
        return self.forwarder.on_outgoing_nack(reason, egress, pit_entry)

    def send_nacks(self, reason: int, pit_entry: PitEntry, except_faces: tuple[Face, ...] = ()) -> None:
        """Nack every downstream but ``except_faces`` (NFD ``Strategy::sendNacks``)."""
        downstreams = [r.face for r in pit_entry.in_records.values() if r.face not in except_faces]
        for face in downstreams:
            self.send_nack(reason, face, pit_entry)

    def reject_pending_interest(self, pit_entry: PitEntry) -> None:
        """Give up on the entry: finalize it now (NFD sets its expiry timer to 0)."""
        self.forwarder.set_expiry_timer(pit_entry, 0.0)

    def set_expiry_timer(self, pit_entry: PitEntry, duration: float) -> None:
        self.forwarder.set_expiry_timer(pit_entry, duration)
