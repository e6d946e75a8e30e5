"""In-process faces: two linked faces that hand packet objects to each other through a clock.

The equivalent of NFD's ``InternalFace`` / test ``DummyFace`` links and of ``TopologyTester``
links: a packet sent on one face is delivered to the other after ``delay`` seconds, through the
injected clock's ``callLater`` (so several forwarders in one process never re-enter each other,
and ``task.Clock`` drives them deterministically). An application's face to its forwarder may
deliver at once (``at_once``): the forwarder's packets to the application are still delivered
later, so neither ever runs inside the other's call. Packets are passed as objects; nothing is
encoded, except when a packet would be larger than a real link allows (it is dropped, as on a
wire).
"""

from __future__ import annotations

from sflow.icn.face.base import Face, FacePersistency, FaceScope, LinkType
from sflow.icn.lp import CACHE_POLICY_NO_CACHE, LpPacket
from sflow.icn.packet import Data, Interest, Nack, encode_data, encode_interest
from sflow.icn.scheduler import Clock


class InProcessFace(Face):
    """One end of an in-process link; see :func:`linked_faces`."""

    in_process = True

    def __init__(
        self,
        clock: Clock,
        *,
        remote_uri: str,
        local_uri: str,
        scope: FaceScope = FaceScope.LOCAL,
        link_type: LinkType = LinkType.POINT_TO_POINT,
        delay: float = 0.0,
        at_once: bool = False,
    ) -> None:
        super().__init__(
            remote_uri=remote_uri,
            local_uri=local_uri,
            scope=scope,
            link_type=link_type,
            persistency=FacePersistency.PERMANENT,
        )
        self.clock = clock
        self.delay = delay
        #: what this face sends is handled by its peer before send returns (see the module docstring)
        self.at_once = at_once
        self.peer: InProcessFace | None = None

    def _deliver(self, kind: str, packet: Interest | Data | Nack, lp: LpPacket | None) -> None:
        peer = self.peer
        if self.closed or peer is None:
            return
        if self.at_once:
            peer._arrive(kind, packet, lp)
        else:
            self.clock.callLater(self.delay, peer._arrive, kind, packet, lp)

    def _arrive(self, kind: str, packet: Interest | Data | Nack, lp: LpPacket | None) -> None:
        if self.closed:
            return
        if kind == "i" and isinstance(packet, Interest):
            self.receive_interest(packet, lp)
        elif kind == "d" and isinstance(packet, Data):
            self.receive_data(packet, lp)
        elif kind == "n" and isinstance(packet, Nack):
            self.receive_nack(packet, lp)

    def send_interest(
        self, interest: Interest, *, next_hop_face_id: int | None = None, incoming_face_id: int | None = None
    ) -> None:
        if self.closed:
            return
        self.counters.n_out_interests += 1
        lp = None
        if next_hop_face_id is not None or incoming_face_id is not None:
            lp = LpPacket(next_hop_face_id=next_hop_face_id, incoming_face_id=incoming_face_id)
        if self._fits(encode_interest(interest)):
            self._deliver("i", interest, lp)

    def send_data(self, data: Data, *, pit_token: bytes | None = None, no_cache: bool = False) -> None:
        if self.closed:
            return
        self.counters.n_out_data += 1
        lp = None
        if pit_token is not None or no_cache:
            lp = LpPacket(pit_token=pit_token, cache_policy=CACHE_POLICY_NO_CACHE if no_cache else None)
        if self._fits(encode_data(data)):
            self._deliver("d", data, lp)

    def send_nack(self, nack: Nack, *, pit_token: bytes | None = None) -> None:
        if self.closed:
            return
        self.counters.n_out_nacks += 1
        self._deliver("n", nack, LpPacket(pit_token=pit_token, nack_reason=nack.reason))

    def transmit(self, wire: bytes) -> None:
        """Wire bytes (from :meth:`Face.receive_wire` users) are decoded by the peer as on a link."""
        peer = self.peer
        if self.closed or peer is None:
            return
        self.clock.callLater(self.delay, peer.receive_wire, wire)

    def close_transport(self) -> None:
        peer = self.peer
        self.peer = None
        if peer is not None and not peer.closed:
            peer.peer = None
            self.clock.callLater(self.delay, peer.transport_closed)


def linked_faces(
    clock: Clock,
    *,
    delay: float = 0.0,
    scope: FaceScope = FaceScope.LOCAL,
    link_type: LinkType = LinkType.POINT_TO_POINT,
    names: tuple[str, str] = ("inproc://a", "inproc://b"),
    application: bool = False,
) -> tuple[InProcessFace, InProcessFace]:
    """Two faces linked to each other: what one sends, the other receives ``delay`` seconds later;
    ``application``: the second is an application's face to the forwarder that has the first, and
    what the application sends reaches the forwarder at once."""
    a = InProcessFace(clock, remote_uri=names[1], local_uri=names[0], scope=scope, link_type=link_type, delay=delay)
    b = InProcessFace(clock, remote_uri=names[0], local_uri=names[1], scope=scope, link_type=link_type, delay=delay,
                      at_once=application and delay == 0)
    a.peer = b
    b.peer = a
    return a, b
