"""Stream faces over Twisted: TCP and Unix sockets (NFD ``StreamTransport``).

:class:`NdnStreamProtocol` only frames bytes: it cuts the stream into TLV packets by their
VAR-NUMBER type and length, whatever the chunking, and hands each packet to its face's link
service. A packet that announces more than 8800 octets closes that face (NFD: "packet too large
to process"); a header that is not a valid VAR-NUMBER closes it too (the stream cannot be
resynchronized). Malformed packets inside a well-framed stream are dropped by the link service and
the face goes on. The reactor is passed in by callers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.internet import address as taddress
from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from sflow.errors import DecodeError
from sflow.icn import tlv
from sflow.icn.face.base import Face, FacePersistency, FaceScope, LinkType
from sflow.icn.face.uri import is_loopback, parse_face_uri

log = logging.getLogger(__name__)


def _describe(addr: Any, scheme: str) -> tuple[str, bool]:
    """(face URI, is local) for a Twisted address."""
    if isinstance(addr, taddress.IPv4Address):
        return f"{scheme}4://{addr.host}:{addr.port}", is_loopback(addr.host)
    if isinstance(addr, taddress.IPv6Address):
        return f"{scheme}6://[{addr.host}]:{addr.port}", is_loopback(addr.host)
    if isinstance(addr, taddress.UNIXAddress):
        name = addr.name.decode() if isinstance(addr.name, bytes) else addr.name
        return f"unix://{name or ''}", True
    return f"{scheme}://unknown", False


class _OutputBatch:
    """Packets sent while stream input is being processed, written once that input is done.

    A read hands a stream face dozens of packets, each of which may send one; writing them to the
    transport one by one costs Twisted's whole write path per packet. While any stream protocol's
    ``dataReceived`` runs, stream faces queue their packets here and every face's queue is written
    as one buffer when the outermost ``dataReceived`` returns (or before the face closes). Outside
    of it (timers, datagrams, applications in this process) a face writes at once.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.faces: list[StreamFace] = []

    def flush(self) -> None:
        faces = self.faces
        while faces:
            faces.pop().flush()


_batch = _OutputBatch()


def _sendable(transport: Any) -> bool:
    """Whether ``transport`` is a socket connection this module may push to at once: not one
    that is closing, has a producer or runs TLS (those keep Twisted's own write path)."""
    return isinstance(transport, tcp.Connection) and bool(transport.connected) and not transport.disconnecting \
        and transport.producer is None and not transport.TLS


def write_now(transport: Any, wire: bytes) -> None:
    """Send ``wire`` at once, rather than at the reactor's next turn: a Twisted transport only
    queues what it is given until its descriptor polls writable, so a packet would wait for the
    rest of the turn that made it (the next function's input, a function's result) plus one more
    poll.

    When the transport has nothing queued, the socket is given ``wire`` directly (the
    transport's ``writeSomeData``, as its own write path would), so a packet the socket takes
    whole costs one system call, not two more to register the descriptor for writing and to
    take it off again. What the socket does not take now, and any error, is left to the
    transport's own write path (an error is met again, and handled, at the reactor's next poll)."""
    sendable = _sendable(transport)
    if sendable and not transport.dataBuffer and not transport._tempDataLen:
        sent = transport.writeSomeData(wire)
        if type(sent) is int:
            if sent == len(wire):
                return
            wire = wire[sent:]
        transport.write(wire)
        return
    transport.write(wire)
    if sendable:
        transport.doWrite()


class StreamFace(Face):
    """A face whose link is one stream connection."""

    def __init__(self, protocol: NdnStreamProtocol, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.protocol = protocol
        self._queued: list[bytes] = []
        #: whether this face has sent a packet at once in this turn of the reactor (see transmit)
        self._sent_this_turn = False

    def transmit(self, wire: bytes) -> None:
        """Send ``wire``: queued while input is processed (:class:`_OutputBatch`); otherwise the
        face's first packet in a turn of the reactor goes at once (latency: :func:`write_now`),
        and the others it sends in that turn (a burst: a join asking for its thousand inputs) are
        left to the transport, which sends them together at its next poll, as one system call
        rather than one each."""
        if _batch.depth:
            if not self._queued:
                _batch.faces.append(self)
            self._queued.append(wire)
            return
        transport: Any = self.protocol.transport
        if transport is None:
            return
        if self._sent_this_turn or not _sendable(transport):
            transport.write(wire)
            return
        self._sent_this_turn = True
        transport.reactor.callLater(0, self._turn_ended)
        write_now(transport, wire)

    def _turn_ended(self) -> None:
        self._sent_this_turn = False

    def flush(self) -> None:
        """Write the packets queued during input processing (see :class:`_OutputBatch`)."""
        queued = self._queued
        if not queued:
            return
        self._queued = []
        transport: Any = self.protocol.transport
        if transport is not None:
            write_now(transport, queued[0] if len(queued) == 1 else b"".join(queued))

    def close_transport(self) -> None:
        self.flush()
        transport: Any = self.protocol.transport
        if transport is not None:
            transport.loseConnection()


class NdnStreamProtocol(Protocol):
    """Frames an NDN-TLV byte stream; ``on_face`` receives the face once connected."""

    def __init__(self, on_face: Callable[[StreamFace], None] | None = None) -> None:
        self.on_face = on_face
        self.face: StreamFace | None = None
        self._buffer = b""

    def connectionMade(self) -> None:
        transport: Any = self.transport
        if transport is None:
            return
        peer = transport.getPeer()
        scheme = "unix" if isinstance(peer, taddress.UNIXAddress) else "tcp"
        remote, local = _describe(peer, scheme)
        local_uri, _ = _describe(transport.getHost(), scheme)
        if scheme == "tcp" and hasattr(transport, "setTcpNoDelay"):
            transport.setTcpNoDelay(True)
        self.face = StreamFace(
            self,
            remote_uri=remote,
            local_uri=local_uri,
            scope=FaceScope.LOCAL if local else FaceScope.NON_LOCAL,
            link_type=LinkType.POINT_TO_POINT,
            persistency=FacePersistency.ON_DEMAND,
        )
        if self.on_face is not None:
            self.on_face(self.face)

    def dataReceived(self, data: bytes) -> None:
        face = self.face
        if face is None or face.closed:
            return
        batch = _batch
        batch.depth += 1
        try:
            self._frame(face, data)
        finally:
            batch.depth -= 1
            if not batch.depth:
                batch.flush()

    def _frame(self, face: StreamFace, data: bytes) -> None:
        buf = self._buffer + data if self._buffer else data
        end = len(buf)
        pos = 0
        receive = face.receive_wire
        limit = tlv.MAX_NDN_PACKET_SIZE
        while pos < end:
            # Fast path for a one-octet type and a 1- or 3-octet length.
            if pos + 2 <= end and buf[pos] < 253 and buf[pos + 1] < 253:
                size = 2 + buf[pos + 1]
            else:
                try:
                    found = tlv.read_packet_length(buf, pos, end)
                except DecodeError as exc:
                    face.report_malformed(f"stream framing: {exc}")
                    face.close()
                    return
                if found is None:
                    break
                size = found
            if size > limit:
                face.report_oversize()
                face.close()
                return
            if pos + size > end:
                break
            receive(buf[pos : pos + size])
            if face.closed:
                return
            pos += size
        self._buffer = buf[pos:] if pos < end else b""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.face is not None:
            self.face.transport_closed()


class ForwarderStreamFactory(Factory):
    """Accepts stream connections and adds each as a face of ``forwarder``."""

    def __init__(self, forwarder: Any) -> None:
        self.forwarder = forwarder

    def buildProtocol(self, addr: Any) -> NdnStreamProtocol | None:
        # None closes the connection at once: the forwarder holds as many faces as it may.
        if not self.forwarder.accepts_face(_describe(addr, "tcp")[0]):
            return None
        return NdnStreamProtocol(self.forwarder.add_face)


def connect_stream(reactor: Any, address: str) -> Deferred[StreamFace]:
    """Connect to a forwarder at ``address`` (TCP or Unix face URI); fires with the face."""
    uri = parse_face_uri(address)
    endpoint: Any
    if uri.scheme == "unix":
        endpoint = UNIXClientEndpoint(reactor, uri.path)
    elif ":" in uri.host:
        endpoint = TCP6ClientEndpoint(reactor, uri.host, uri.port)
    else:
        endpoint = TCP4ClientEndpoint(reactor, uri.host, uri.port)
    protocol = NdnStreamProtocol()

    def connected(proto: NdnStreamProtocol) -> StreamFace:
        if proto.face is None:
            raise ConnectionError(f"no face for the connection to {address}")
        return proto.face

    connecting: Deferred[NdnStreamProtocol] = connectProtocol(endpoint, protocol)
    return connecting.addCallback(connected)
