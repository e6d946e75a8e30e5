"""UDP faces over Twisted (NFD ``UnicastUdpTransport`` / ``UdpChannel``).

One listening socket (a *channel*) serves every peer: the first datagram from a new address
creates an on-demand, point-to-point face for it, closed after ``idle_timeout`` seconds without
traffic (NFD's default is 600 s), and no more faces than the forwarder accepts
(``icn.max_faces``; datagrams from further peers are dropped). Each datagram holds exactly one packet (bare or LpPacket); a
datagram over 8800 octets closes that peer's face. Faces toward a given peer (for static routes)
are made with :meth:`UdpChannel.connect` and are persistent. UDP faces are never local (NFD), so
``/localhost`` management is not reachable over UDP.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall

from sflow.icn import tlv
from sflow.icn.face.base import Face, FacePersistency, FaceScope, LinkType

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 600.0


def _uri(host: str, port: int) -> str:
    return f"udp6://[{host}]:{port}" if ":" in host else f"udp4://{host}:{port}"


class UdpFace(Face):
    """The face for one remote UDP endpoint of a channel."""

    def __init__(self, channel: UdpChannel, remote: tuple[str, int], persistency: FacePersistency) -> None:
        host = channel.local_address()
        super().__init__(
            remote_uri=_uri(*remote),
            local_uri=_uri(*host),
            scope=FaceScope.NON_LOCAL,  # as NFD's UnicastUdpTransport, even on loopback
            link_type=LinkType.POINT_TO_POINT,
            persistency=persistency,
        )
        self.channel = channel
        self.remote = remote
        self.last_activity = channel.clock.seconds()

    def transmit(self, wire: bytes) -> None:
        transport: Any = self.channel.transport
        if transport is not None:
            transport.write(wire, self.remote)

    def close_transport(self) -> None:
        self.channel.forget(self)


class UdpChannel(DatagramProtocol):
    """A listening UDP socket that makes a face per remote endpoint for ``forwarder``."""

    def __init__(self, forwarder: Any, clock: Any, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self.forwarder = forwarder
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.faces: dict[tuple[str, int], UdpFace] = {}
        self._idle_check = LoopingCall(self._close_idle_faces)
        self._idle_check.clock = clock

    def local_address(self) -> tuple[str, int]:
        transport: Any = self.transport
        if transport is None:
            return ("0.0.0.0", 0)
        host = transport.getHost()
        return (host.host, host.port)

    def startProtocol(self) -> None:
        self._idle_check.start(max(self.idle_timeout / 4, 0.01), now=False)

    def stopProtocol(self) -> None:
        if self._idle_check.running:
            self._idle_check.stop()
        for face in list(self.faces.values()):
            face.close()

    def connect(self, host: str, port: int) -> UdpFace:
        """A persistent face toward ``host:port`` (reused if the peer already has one)."""
        return self._face_for((host, port), FacePersistency.PERSISTENT)

    def _face_for(self, remote: tuple[str, int], persistency: FacePersistency) -> UdpFace:
        face = self.faces.get(remote)
        if face is None:
            face = UdpFace(self, remote, persistency)
            self.faces[remote] = face
            self.forwarder.add_face(face)
        return face

    def forget(self, face: UdpFace) -> None:
        if self.faces.get(face.remote) is face:
            del self.faces[face.remote]

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        remote = (addr[0], addr[1])
        # A face per source address, but no more than the forwarder may hold: a datagram from a
        # new peer beyond the limit is dropped (counted by the forwarder).
        if remote not in self.faces and not self.forwarder.accepts_face(_uri(*remote)):
            return
        face = self._face_for(remote, FacePersistency.ON_DEMAND)
        face.last_activity = self.clock.seconds()
        if len(datagram) > tlv.MAX_NDN_PACKET_SIZE:
            face.counters.n_in_bytes += len(datagram)
            face.report_oversize()
            face.close()
            return
        face.receive_wire(datagram)

    def _close_idle_faces(self) -> None:
        deadline = self.clock.seconds() - self.idle_timeout
        for face in list(self.faces.values()):
            if face.persistency == FacePersistency.ON_DEMAND and face.last_activity < deadline:
                log.info("udp face idle, closing id=%d remote=%s", face.face_id, face.remote_uri)
                face.close()
