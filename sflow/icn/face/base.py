"""A face: the forwarder's view of one link, and the link service that turns wire bytes into packets.

NFD ``daemon/face/face.hpp`` + ``generic-link-service.cpp``. A :class:`Face` has an id (given by
the face table), a scope (local faces — applications on this host — may use ``/localhost`` and the
NDNLPv2 local fields), a link type (Nacks and loop handling only apply on point-to-point links),
per-face counters, and a *handler* (the forwarder, or an application) that receives decoded
packets. Concrete faces implement :meth:`Face.transmit` (bytes out) and
:meth:`Face.close_transport`; Twisted lives only in those subclasses.

Incoming wire (``receive_wire``): a bare Interest or Data, or an LpPacket whose Fragment is one (a
Nack header makes it a Nack). Malformed packets are dropped, counted on the face and reported to
the handler; nothing else happens to the face. Fragmented LpPackets (FragCount > 1) are not
reassembled: they are dropped and counted as malformed.

Outgoing: Interest and Data go out bare unless a PIT token (NDNLPv2 PitToken), a Nack, or local
fields need an LpPacket. A packet larger than 8800 octets is not sent (ndn-cxx
``MAX_NDN_PACKET_SIZE``) and is counted in ``n_out_oversize``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from sflow.errors import DecodeError
from sflow.icn import lp as lpmod
from sflow.icn import tlv
from sflow.icn.lp import LpPacket, decode_lp_packet
from sflow.icn.packet import Data, Interest, Nack, decode_data, decode_interest, encode_data, encode_interest

log = logging.getLogger(__name__)

INVALID_FACE_ID = 0
FACE_ID_INTERNAL = 1
FACE_ID_CONTENT_STORE = 254
FACE_ID_NULL = 255
FIRST_FACE_ID = 256


class FaceScope(IntEnum):
    NON_LOCAL = 0
    LOCAL = 1


class LinkType(IntEnum):
    POINT_TO_POINT = 0
    MULTI_ACCESS = 1
    AD_HOC = 2


class FacePersistency(IntEnum):
    PERSISTENT = 0
    ON_DEMAND = 1
    PERMANENT = 2


@dataclass(slots=True)
class FaceCounters:
    """NFD's per-face counters (``face/face-counters.hpp``) plus malformed/oversize drops."""

    n_in_interests: int = 0
    n_in_data: int = 0
    n_in_nacks: int = 0
    n_out_interests: int = 0
    n_out_data: int = 0
    n_out_nacks: int = 0
    n_in_bytes: int = 0
    n_out_bytes: int = 0
    n_in_hop_limit_zero: int = 0
    n_out_hop_limit_zero: int = 0
    n_malformed: int = 0
    n_in_oversize: int = 0
    n_out_oversize: int = 0


class PacketHandler(Protocol):
    """Who receives a face's packets: the forwarder, or an application's endpoint."""

    def on_incoming_interest(self, face: Face, interest: Interest, lp: LpPacket | None) -> None: ...

    def on_incoming_data(self, face: Face, data: Data, lp: LpPacket | None) -> None: ...

    def on_incoming_nack(self, face: Face, nack: Nack, lp: LpPacket | None) -> None: ...

    def on_face_malformed(self, face: Face, reason: str) -> None: ...

    def on_face_oversize(self, face: Face) -> None: ...

    def on_face_closed(self, face: Face) -> None: ...


class Face(ABC):
    """One face. Subclasses carry packets; this class counts, encodes and decodes them."""

    #: a face inside this process (the node's own applications): not subject to per-face limits
    in_process = False

    def __init__(
        self,
        *,
        remote_uri: str,
        local_uri: str,
        scope: FaceScope = FaceScope.NON_LOCAL,
        link_type: LinkType = LinkType.POINT_TO_POINT,
        persistency: FacePersistency = FacePersistency.ON_DEMAND,
    ) -> None:
        self.face_id = INVALID_FACE_ID
        self.remote_uri = remote_uri
        self.local_uri = local_uri
        self.scope = scope
        self.link_type = link_type
        self.persistency = persistency
        self.counters = FaceCounters()
        self.handler: PacketHandler | None = None
        self.closed = False
        self.local_fields_enabled = scope == FaceScope.LOCAL

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.face_id}, remote={self.remote_uri})"

    # --- receiving ------------------------------------------------------------------------------
    def receive_wire(self, wire: bytes) -> None:
        """Decode one packet from the link and hand it to the handler (generic link service)."""
        counters = self.counters
        counters.n_in_bytes += len(wire)
        if self.closed:
            return
        try:
            first = wire[0] if wire else -1
            if first == tlv.INTEREST:
                self.receive_interest(decode_interest(wire), None)
            elif first == tlv.DATA:
                self.receive_data(decode_data(wire), None)
            elif first == tlv.LP_PACKET:
                self._receive_lp(decode_lp_packet(wire))
            else:
                raise DecodeError(f"unexpected packet type {first}")
        except DecodeError as exc:
            self.report_malformed(str(exc))

    def _receive_lp(self, packet: LpPacket) -> None:
        fragment = packet.fragment
        if fragment is None:
            return  # an IDLE packet (acknowledgements only)
        if packet.frag_count is not None and packet.frag_count > 1:
            raise DecodeError("fragmented LpPacket (reassembly is not supported)")
        if not self.local_fields_enabled and (
            packet.next_hop_face_id is not None or packet.cache_policy is not None
        ):
            # NDNLPv2 local fields from a face that may not use them: ignore the fields.
            packet = LpPacket(fragment=fragment, pit_token=packet.pit_token, nack_reason=packet.nack_reason)
        first = fragment[0] if fragment else -1
        if packet.nack_reason is not None:
            if first != tlv.INTEREST:
                raise DecodeError("Nack must carry an Interest")
            self.receive_nack(Nack(decode_interest(fragment), packet.nack_reason), packet)
        elif first == tlv.INTEREST:
            self.receive_interest(decode_interest(fragment), packet)
        elif first == tlv.DATA:
            self.receive_data(decode_data(fragment), packet)
        else:
            raise DecodeError(f"unexpected fragment type {first}")

    def report_malformed(self, reason: str) -> None:
        self.counters.n_malformed += 1
        log.debug("malformed packet dropped face=%d reason=%s", self.face_id, reason)
        if self.handler is not None:
            self.handler.on_face_malformed(self, reason)

    def report_oversize(self) -> None:
        """A packet over 8800 octets arrived: count it (the transport closes the face)."""
        self.counters.n_in_oversize += 1
        log.warning("packet over %d octets face=%d remote=%s", tlv.MAX_NDN_PACKET_SIZE, self.face_id, self.remote_uri)
        if self.handler is not None:
            self.handler.on_face_oversize(self)

    def receive_interest(self, interest: Interest, lp: LpPacket | None) -> None:
        self.counters.n_in_interests += 1
        if self.handler is not None:
            self.handler.on_incoming_interest(self, interest, lp)

    def receive_data(self, data: Data, lp: LpPacket | None) -> None:
        self.counters.n_in_data += 1
        if self.handler is not None:
            self.handler.on_incoming_data(self, data, lp)

    def receive_nack(self, nack: Nack, lp: LpPacket | None) -> None:
        self.counters.n_in_nacks += 1
        if self.handler is not None:
            self.handler.on_incoming_nack(self, nack, lp)

    # --- sending --------------------------------------------------------------------------------
    def send_interest(
        self, interest: Interest, *, next_hop_face_id: int | None = None, incoming_face_id: int | None = None
    ) -> None:
        """Send an Interest; ``incoming_face_id`` is only carried by in-process faces."""
        if self.closed:
            return
        self.counters.n_out_interests += 1
        wire = interest.wire or encode_interest(interest)
        if next_hop_face_id is not None:
            wire = lpmod.encode_lp_packet(LpPacket(fragment=wire, next_hop_face_id=next_hop_face_id))
        if self._fits(wire):
            self.transmit(wire)

    def send_data(self, data: Data, *, pit_token: bytes | None = None, no_cache: bool = False) -> None:
        if self.closed:
            return
        self.counters.n_out_data += 1
        wire = data.wire or encode_data(data)
        if pit_token is not None or no_cache:
            wire = lpmod.wrap(
                wire, pit_token=pit_token, cache_policy=lpmod.CACHE_POLICY_NO_CACHE if no_cache else None
            )
        if self._fits(wire):
            self.transmit(wire)

    def send_nack(self, nack: Nack, *, pit_token: bytes | None = None) -> None:
        if self.closed:
            return
        self.counters.n_out_nacks += 1
        wire = lpmod.wrap(encode_interest(nack.interest), pit_token=pit_token, nack_reason=nack.reason)
        if self._fits(wire):
            self.transmit(wire)

    def _fits(self, wire: bytes) -> bool:
        """Count an outgoing packet: its bytes if it may be sent, else as oversize (it is not sent)."""
        size = len(wire)
        if size > tlv.MAX_NDN_PACKET_SIZE:
            self.counters.n_out_oversize += 1
            log.warning("packet over %d octets not sent face=%d size=%d", tlv.MAX_NDN_PACKET_SIZE, self.face_id, size)
            return False
        self.counters.n_out_bytes += size
        return True

    @abstractmethod
    def transmit(self, wire: bytes) -> None:
        """Put one encoded packet on the link."""

    # --- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the face: stop its transport and tell the handler (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.close_transport()
        if self.handler is not None:
            self.handler.on_face_closed(self)

    def close_transport(self) -> None:
        """Release the transport; nothing to do by default."""

    def transport_closed(self) -> None:
        """The transport went away on its own (peer closed the connection)."""
        if self.closed:
            return
        self.closed = True
        if self.handler is not None:
            self.handler.on_face_closed(self)
