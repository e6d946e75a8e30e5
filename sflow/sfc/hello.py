"""Neighbour discovery and resource advertisement for autonomous mode (UDP), and the placer that
uses them.

Every ``icn.hello_interval`` seconds a node sends a hello — its :class:`~sflow.sfc.auto.Advert`
(ICN address, vCPUs, free vCPUs, queued functions, speed, bandwidth) as msgpack, prefixed with an
HMAC-SHA256 of it under the cluster secret — to each configured neighbour (``icn.neighbours``,
``HOST:PORT`` of their hello sockets) and to the LAN broadcast address when one is configured.
Hellos that fail the HMAC are dropped. Adverts expire after three intervals, so a node that stops
is forgotten and traffic is routed around it. (The original's broadcast discovery was a stub,
sflow-original.md §6.1.)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import msgpack
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall

from sflow.errors import DecodeError
from sflow.model.infra import Address
from sflow.sfc.auto import Advert, NeighbourTable, choose, upstream_work
from sflow.sfc.names import Installed

log = logging.getLogger(__name__)

MAC_SIZE = 32
HELLO_VERSION = 1


def reachable_address(address: str, host: str) -> str:
    """``address`` (``host:port``) as others reach it: a wildcard listen host (``0.0.0.0``, ``::``
    or none) is replaced by ``host``, the host the node is known by."""
    listen, _, port = address.rpartition(":")
    if listen.strip("[]") in ("0.0.0.0", "::", ""):
        return str(Address(host, int(port)))
    return address


def encode_hello(advert: Advert, secret: bytes) -> bytes:
    payload = msgpack.packb(
        [HELLO_VERSION, advert.node, advert.vcpus, advert.free, advert.queue, advert.speed, advert.bandwidth],
        use_bin_type=True,
    )
    return hmac.new(secret, payload, hashlib.sha256).digest() + payload


def decode_hello(datagram: bytes, secret: bytes) -> Advert:
    mac, payload = datagram[:MAC_SIZE], datagram[MAC_SIZE:]
    if not hmac.compare_digest(mac, hmac.new(secret, payload, hashlib.sha256).digest()):
        raise DecodeError("hello: bad HMAC")
    try:
        raw = msgpack.unpackb(payload, raw=False)
        version, node, vcpus, free, queue, speed, bandwidth = raw
        if version != HELLO_VERSION or not isinstance(node, str):
            raise ValueError("unknown version")
        return Advert(node, int(vcpus), int(free), int(queue), float(speed), float(bandwidth))
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise DecodeError(f"hello: malformed: {exc}") from None


class HelloProtocol(DatagramProtocol):
    """Sends this node's advert periodically and records the neighbours' (see the module docstring)."""

    def __init__(
        self,
        clock: Any,
        secret: bytes,
        table: NeighbourTable,
        advert: Callable[[], Advert],
        targets: list[tuple[str, int]],
        interval: float,
        on_neighbour: Callable[[Advert], None] | None = None,
    ) -> None:
        self.clock = clock
        self.secret = secret
        self.table = table
        self.advert = advert
        self.targets = targets
        self.interval = interval
        self.on_neighbour = on_neighbour
        self._loop: LoopingCall | None = None

    def startProtocol(self) -> None:
        transport: Any = self.transport
        if transport is not None and hasattr(transport, "setBroadcastAllowed"):
            transport.setBroadcastAllowed(True)
        loop = LoopingCall(self.send)
        loop.clock = self.clock
        loop.start(self.interval, now=True)
        self._loop = loop

    def stopProtocol(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def send(self) -> None:
        transport: Any = self.transport
        if transport is None:
            return
        datagram = encode_hello(self.advert(), self.secret)
        for target in self.targets:
            try:
                transport.write(datagram, target)
            except OSError as exc:
                log.debug("event=hello_send_failed target=%s:%d error=%s", target[0], target[1], exc)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        try:
            advert = decode_hello(datagram, self.secret)
        except DecodeError as exc:
            log.debug("event=hello_dropped from=%s reason=%s", addr, exc)
            return
        if isinstance(addr, tuple):
            # A node listening on every address is reached at the address its hello came from.
            advert = replace(advert, node=reachable_address(advert.node, addr[0]))
        if advert.node == self.advert().node:
            return
        if self.table.update(advert, self.clock.seconds()):
            log.info("event=neighbour_found node=%s vcpus=%d", advert.node, advert.vcpus)
        if self.on_neighbour is not None:
            self.on_neighbour(advert)


class AutoPlacer:
    """The :data:`~sflow.sfc.service.Placer` of autonomous mode: :func:`~sflow.sfc.auto.choose`
    over this node's advert and its fresh neighbours; the functions it places on a node count as
    load there until that node's next hello."""

    def __init__(
        self,
        clock: Any,
        table: NeighbourTable,
        me: Callable[[], Advert],
        functions: Callable[[], dict[str, Installed]],
        generation: Callable[[], int] | None = None,
    ) -> None:
        """``generation()`` changes whenever a function is installed; while it does not, the
        functions' graph and the upstream work already computed are reused (without it, they are
        rebuilt for every placement: linear in the installed functions, each time)."""
        self.clock = clock
        self.table = table
        self.me = me
        self.functions = functions
        self.generation = generation
        self.placed: dict[str, int] = {}
        self._graph: tuple[int, dict[str, float], dict[str, list[str]], dict[str, float]] | None = None

    def _upstream_work(self, digest: str) -> float:
        version = self.generation() if self.generation is not None else None
        if self._graph is None or version is None or self._graph[0] != version:
            functions = self.functions()
            workloads = {d: f.workload for d, f in functions.items()}
            inputs = {d: [r.digest for r in f.spec.inputs] for d, f in functions.items()}
            self._graph = (version if version is not None else -1, workloads, inputs, {})
        _, workloads, inputs, memo = self._graph
        return upstream_work(digest, workloads, inputs, memo)

    def heard(self, advert: Advert) -> None:
        self.placed.pop(advert.node, None)

    def __call__(self, item: Installed, index: int, avoid: frozenset[str]) -> str:
        ref = item.spec.inputs[index]
        work = self._upstream_work(ref.digest)
        me = self.me()
        target = choose(me, self.table.fresh(self.clock.seconds()), work, avoid=avoid, placed=self.placed)
        self.placed[target] = self.placed.get(target, 0) + 1
        log.debug("event=placed input=%s work=%.0f target=%s", ref.prefix, work, target)
        return "" if target == me.node else target
