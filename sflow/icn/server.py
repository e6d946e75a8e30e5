"""A standalone forwarder process: a :class:`~sflow.icn.forwarder.Forwarder` on the reactor with its
TCP, Unix-socket and UDP listeners, and static routes toward other forwarders.

This is the I/O shell around the pure forwarder (``sflow forwarder`` runs it). The reactor is
passed in; the forwarder reads time from it.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.error import CannotListenError

from sflow.errors import InputError, ListenError
from sflow.icn.face.base import Face
from sflow.icn.face.stream import ForwarderStreamFactory, connect_stream
from sflow.icn.face.udp import UdpChannel
from sflow.icn.face.uri import FaceUri, parse_face_uri
from sflow.icn.forwarder import Forwarder, ForwarderConfig
from sflow.icn.name import Name
from sflow.model.infra import Address

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StaticRoute:
    """``--route PREFIX=URI[,COST]``: a face toward URI and a route for PREFIX through it."""

    prefix: Name
    uri: FaceUri
    cost: int = 0


class ForwarderServer:
    """A forwarder with listeners on ``reactor``."""

    def __init__(self, reactor: Any, config: ForwarderConfig | None = None) -> None:
        self.reactor = reactor
        self.forwarder = Forwarder(reactor, config)
        self._ports: list[Any] = []
        self._unix_paths: list[str] = []
        self.udp_channels: list[UdpChannel] = []
        self.addresses: list[str] = []

    def listen_tcp(self, host: str, port: int) -> FaceUri:
        """Listen for TCP faces; returns the bound address (port 0 picks a free one)."""
        factory = ForwarderStreamFactory(self.forwarder)
        listening = self._listen(f"TCP {Address(host, port)}", lambda: self.reactor.listenTCP(port, factory, interface=host))
        bound = listening.getHost()
        return self._listening(FaceUri("tcp", host=bound.host, port=bound.port))

    def listen_unix(self, path: str) -> FaceUri:
        """Listen on a Unix socket (a stale socket file from a dead forwarder is replaced)."""
        if os.path.exists(path) and not _socket_in_use(path):
            os.unlink(path)
        factory = ForwarderStreamFactory(self.forwarder)
        self._listen(f"Unix socket {path}", lambda: self.reactor.listenUNIX(path, factory))
        self._unix_paths.append(path)
        return self._listening(FaceUri("unix", path=path))

    def listen_udp(self, host: str, port: int) -> FaceUri:
        channel = UdpChannel(self.forwarder, self.reactor)
        listening = self._listen(f"UDP {Address(host, port)}", lambda: self.reactor.listenUDP(port, channel, interface=host))
        self.udp_channels.append(channel)
        bound = listening.getHost()
        return self._listening(FaceUri("udp", host=bound.host, port=bound.port))

    def _listen(self, what: str, start: Callable[[], Any]) -> Any:
        """Start a listener (stopped by :meth:`stop`); :class:`ListenError` naming ``what`` if it cannot."""
        try:
            listening = start()
        except CannotListenError as exc:
            raise ListenError(what, exc) from None
        self._ports.append(listening)
        return listening

    def _listening(self, uri: FaceUri) -> FaceUri:
        self.addresses.append(str(uri))
        log.info("listening %s=%s", uri.scheme, uri.path or uri)
        return uri

    def add_static_route(self, route: StaticRoute) -> Deferred[Face]:
        """Open a face toward ``route.uri`` and route ``route.prefix`` through it."""
        uri = route.uri
        if uri.scheme == "udp":
            if not self.udp_channels:
                self.listen_udp("0.0.0.0" if ":" not in uri.host else "::", 0)
            face: Face = self.udp_channels[0].connect(uri.host, uri.port)
            self.forwarder.add_route(route.prefix, face, route.cost)
            return succeed(face)

        def connected(stream_face: Face) -> Face:
            self.forwarder.add_face(stream_face)
            self.forwarder.add_route(route.prefix, stream_face, route.cost)
            log.info("static route prefix=%s face=%d uri=%s", route.prefix, stream_face.face_id, uri)
            return stream_face

        return connect_stream(self.reactor, str(uri)).addCallback(connected)

    def stop(self) -> Deferred[Any]:
        """Stop listening, close every face and remove Unix socket files."""
        stopping = [succeed(port.stopListening()) for port in self._ports]
        self._ports = []
        self.forwarder.close()
        for path in self._unix_paths:
            if os.path.exists(path):
                os.unlink(path)
        self._unix_paths = []
        return DeferredList(stopping)


def tune_garbage_collector() -> None:
    """Make the cyclic garbage collector cheaper for a long-running forwarder.

    A full content store holds hundreds of thousands of long-lived objects that every full
    collection walks, while packets allocate short-lived ones at a high rate: with CPython's
    default thresholds (700, 10, 10) collections took about a quarter of the forwarder's time.
    Objects alive after start-up are frozen out of collection, and collections run less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)


def _socket_in_use(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def parse_static_route(text: str) -> StaticRoute:
    """Parse ``PREFIX=URI[,COST]``."""
    prefix_text, sep, rest = text.partition("=")
    if not sep or not prefix_text.startswith("/"):
        raise InputError("<flag>", text, "a route is PREFIX=URI[,COST], e.g. /sflow=tcp4://10.0.0.2:6363")
    uri_text, _, cost_text = rest.partition(",")
    try:
        cost = int(cost_text) if cost_text else 0
    except ValueError:
        raise InputError("<flag>", text, f"bad cost {cost_text!r}") from None
    return StaticRoute(Name.from_uri(prefix_text), parse_face_uri(uri_text), cost)
