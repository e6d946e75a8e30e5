"""Emulated links, installed in a node process: every TCP connection it makes or accepts and every
datagram it sends to another node of the topology is delayed, rate-limited and made lossy as the
topology's path to that node says (:mod:`sflow.experiment.links`).

The wrappers sit at the byte level, directly on the socket transports (in the manner of
``twisted.protocols.policies``): whatever runs above — a node channel's framing and
authentication, an NDN stream face, TLS if the channels gain it — sees an ordinary transport. They
are installed where connections are made and accepted, by handing the node an
:class:`EmulatedReactor` whose ``listenTCP``, ``connectTCP`` and ``listenUDP`` wrap the factories
and protocols they are given. Peers are told apart by IP address: each node of an emulated topology
has its own loopback address (``127.0.1.k``) and its outgoing connections start from it.

Each side emulates what it sends (its egress), as a link's queue does; bytes to a peer that cannot
be reached (its links are down) are held until it can be, datagrams to it are dropped. The node
reloads its links file on SIGHUP (the experiment runner rewrites it to take a link down or up).
"""

from __future__ import annotations

import json
import logging
import random
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.protocol import DatagramProtocol, connectionDone
from twisted.python.failure import Failure
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import directlyProvides, providedBy

from sflow.errors import ConfigError
from sflow.experiment.links import LinksFile, PathModel, PeerRoute, links_file_from_dict

log = logging.getLogger(__name__)

#: bytes waiting in an emulated link above which the writer is paused, and below which it resumes
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024


class LinkTable:
    """The node's links (from its links file), the timing model, byte counters per link, and the
    connections waiting for an unreachable peer."""

    def __init__(self, clock: Any, path: Path) -> None:
        self.clock = clock
        self.path = path
        self.doc = self._read()
        self.model = PathModel(self.doc.links, random.Random(self.doc.seed))
        self.bytes: dict[str, int] = {link: 0 for link in self.doc.links}
        self.dropped = 0
        self._waiting: set[LinkProtocol] = set()

    @property
    def address(self) -> str:
        return self.doc.address

    def _read(self) -> LinksFile:
        try:
            return links_file_from_dict(json.loads(self.path.read_text(encoding="utf-8")), str(self.path))
        except OSError as exc:
            raise ConfigError(str(self.path), "node.links", f"cannot read the links file: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ConfigError(str(self.path), "node.links", str(exc)) from None

    def reload(self) -> None:
        """Read the links file again (links taken down or up); held bytes go if their peer can be
        reached now. A file that cannot be read leaves the links as they were."""
        try:
            doc = self._read()
        except ConfigError as exc:
            log.error("event=links_reload_failed error=%s", exc)
            return
        self.doc = doc
        self.model.update(doc.links)
        for link in doc.links:
            self.bytes.setdefault(link, 0)
        down = sorted(r.node for r in doc.peers.values() if r.path is None)
        log.info("event=links_reloaded links=%d unreachable=%s", len(doc.links), ",".join(down) or "-")
        for conn in list(self._waiting):
            conn.route_changed()

    def route(self, host: str) -> PeerRoute | None:
        """The route to the peer at ``host``; None when traffic with it is not emulated."""
        return self.doc.peers.get(host)

    def count(self, path: tuple[str, ...], size: int) -> None:
        for link in path:
            self.bytes[link] = self.bytes.get(link, 0) + size

    def wait(self, conn: LinkProtocol, waiting: bool) -> None:
        if waiting:
            self._waiting.add(conn)
        else:
            self._waiting.discard(conn)

    def status(self) -> dict[str, Any]:
        """For the node's status reply: bytes sent over each link, datagrams dropped."""
        return {"node": self.doc.node, "address": self.doc.address, "bytes": dict(self.bytes),
                "datagrams_dropped": self.dropped}


class LinkProtocol(ProtocolWrapper):
    """One emulated TCP connection: what the wrapped protocol writes is delivered to the socket
    when the path says, in order."""

    def __init__(self, factory: Any, wrapped: Any) -> None:
        super().__init__(factory, wrapped)
        self.table: LinkTable = factory.table
        self.peer: PeerRoute | None = None
        self._host = ""
        self._queue: deque[tuple[float, bytes]] = deque()
        self._held: list[bytes] = []
        self._queued = 0
        self._timer: Any = None
        self._last = 0.0
        self._producer: Any = None
        self._paused_producer = False
        self._closing = False

    def makeConnection(self, transport: Any) -> None:
        self._host = transport.getPeer().host
        self.peer = self.table.route(self._host)
        super().makeConnection(transport)

    # -- writing ---------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.peer = self.table.route(self._host)  # links may have gone down or up since
        if self.peer is None:
            self._t.write(data)
            return
        if self.peer.path is None or self._held:
            self._held.append(bytes(data))
            self._queued += len(data)
            self.table.wait(self, True)
        else:
            self._enqueue(bytes(data))
        self._throttle()

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def _enqueue(self, data: bytes) -> None:
        assert self.peer is not None and self.peer.path is not None
        now = self.clock.seconds()
        at = max(self.table.model.stream(self.peer.path, len(data), now), self._last)
        self._last = at
        self.table.count(self.peer.path, len(data))
        self._queue.append((at, data))
        if not self._held:  # counted already when it was held
            self._queued += len(data)
        self._schedule()

    @property
    def clock(self) -> Any:
        return self.table.clock

    @property
    def _t(self) -> Any:
        """The socket's transport (typed loosely: Twisted's zope interfaces do not type-check)."""
        return self.transport

    def _schedule(self) -> None:
        if self._timer is not None or not self._queue:
            return
        self._timer = self.clock.callLater(max(0.0, self._queue[0][0] - self.clock.seconds()), self._deliver)

    def _deliver(self) -> None:
        self._timer = None
        now = self.clock.seconds()
        out = []
        while self._queue and self._queue[0][0] <= now:
            _, data = self._queue.popleft()
            self._queued -= len(data)
            out.append(data)
        if out and not self.disconnecting and self.transport is not None:
            self._t.writeSequence(out)
        self._schedule()
        self._throttle()
        self._maybe_close()

    def route_changed(self) -> None:
        """The links file was reloaded: bytes held for an unreachable peer go now if they can."""
        if self.peer is None or self.transport is None:
            return
        self.peer = self.table.route(self._host)
        if self.peer is None or self.peer.path is None:
            return
        held, self._held = self._held, []
        self.table.wait(self, False)
        for data in held:
            self._queued -= len(data)
            self._enqueue(data)
        self._maybe_close()

    # -- flow control: a producer writing into a slow link is paused --------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._producer = producer
        self._paused_producer = False
        super().registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._producer = None
        super().unregisterProducer()

    def _throttle(self) -> None:
        producer = self._producer
        if producer is None:
            return
        if self._queued > HIGH_WATER and not self._paused_producer:
            self._paused_producer = True
            producer.pauseProducing()
        elif self._queued < LOW_WATER and self._paused_producer:
            self._paused_producer = False
            producer.resumeProducing()

    # -- closing ---------------------------------------------------------------------------------

    def loseConnection(self) -> None:
        """Close once every byte written before has been delivered."""
        self._closing = True
        self._maybe_close()

    def _maybe_close(self) -> None:
        if self._closing and not self._queue and not self._held and not self.disconnecting:
            self.disconnecting = 1
            self._t.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._queue.clear()
        self._held.clear()
        self.table.wait(self, False)
        super().connectionLost(reason)


class LinkFactory(WrappingFactory):
    protocol = LinkProtocol

    def __init__(self, wrapped: Any, table: LinkTable) -> None:
        super().__init__(wrapped)
        self.table = table


class _DatagramTransport:
    """What a wrapped datagram protocol sees as its transport: ``write`` to a peer of the topology
    is delayed or dropped; everything else is the port's."""

    def __init__(self, port: Any, table: LinkTable) -> None:
        self._port = port
        self._table = table

    def write(self, data: bytes, addr: Any = None) -> None:
        route = self._table.route(addr[0]) if addr is not None else None
        if route is None:
            self._port.write(data, addr)
            return
        clock = self._table.clock
        at = None if route.path is None else self._table.model.datagram(route.path, len(data), clock.seconds())
        if at is None or route.path is None:
            self._table.dropped += 1
            return
        self._table.count(route.path, len(data))
        clock.callLater(max(0.0, at - clock.seconds()), self._send, data, addr)

    def _send(self, data: bytes, addr: Any) -> None:
        try:
            self._port.write(data, addr)
        except OSError as exc:
            log.debug("event=datagram_send_failed peer=%s error=%s", addr, exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)


class LinkDatagram(DatagramProtocol):
    """Wraps a datagram protocol so that what it sends crosses the emulated links."""

    def __init__(self, wrapped: DatagramProtocol, table: LinkTable) -> None:
        self.wrapped = wrapped
        self.table = table

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self.wrapped.makeConnection(_DatagramTransport(transport, self.table))  # type: ignore[arg-type]

    def doStop(self) -> None:
        self.wrapped.doStop()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.wrapped.datagramReceived(datagram, addr)

    def connectionRefused(self) -> None:
        self.wrapped.connectionRefused()


class EmulatedReactor:
    """The reactor as the node sees it: connections and UDP ports go through the emulated links;
    everything else is the real reactor's."""

    def __init__(self, reactor: Any, table: LinkTable) -> None:
        self._reactor = reactor
        self._table = table
        directlyProvides(self, *providedBy(reactor))

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        return self._reactor.listenTCP(port, LinkFactory(factory, self._table), backlog, interface)

    def connectTCP(self, host: str, port: int, factory: Any, timeout: float = 30, bindAddress: Any = None) -> Any:
        if bindAddress is None and ":" not in host:
            bindAddress = (self._table.address, 0)  # so that the peer knows which node this is
        return self._reactor.connectTCP(host, port, LinkFactory(factory, self._table), timeout, bindAddress)

    # TLS goes above the emulated link: the link carries the encrypted bytes, as a wire would.
    def listenSSL(self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = "") -> Any:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        return self.listenTCP(port, TLSMemoryBIOFactory(contextFactory, False, factory), backlog, interface)

    def connectSSL(self, host: str, port: int, factory: Any, contextFactory: Any, timeout: float = 30,
                   bindAddress: Any = None) -> Any:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        return self.connectTCP(host, port, TLSMemoryBIOFactory(contextFactory, True, factory), timeout, bindAddress)

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> Any:
        return self._reactor.listenUDP(port, LinkDatagram(protocol, self._table), interface, maxPacketSize)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


def emulate_links(reactor: Any, path: Path) -> tuple[EmulatedReactor, LinkTable]:
    """The reactor a node of an emulated topology uses, and its link table (reloaded on SIGHUP)."""
    import signal

    table = LinkTable(reactor, path)

    def hangup(signum: int, frame: Any) -> None:
        reactor.callFromThread(table.reload)

    signal.signal(signal.SIGHUP, hangup)
    log.info("event=links_emulated node=%s address=%s links=%d", table.doc.node, table.address, len(table.doc.links))
    return EmulatedReactor(reactor, table), table


StatusReport = Callable[[], Any]
