"""Neighbour discovery and resource advertisement for autonomous mode (UDP).

Every ``icn.hello_interval`` seconds — and soon after its work changes (a function accepted,
started or ended), at most every :data:`MIN_GAP` seconds — a node sends a hello: its
:class:`~sflow.sfc.auto.Advert` (its advertised ICN address, vCPUs, free vCPUs, queued and pending
functions, speed, bandwidth, and the short digests of the functions under way there and of the
results it holds, at most :data:`MAX_LISTED` of each) as msgpack, prefixed with an HMAC-SHA256 of
it under the cluster secret, to each neighbour (``icn.neighbours``, ``HOST:PORT`` of their hello
sockets; ``sflow cluster start --mode auto`` gives them from the inventory) and to the LAN
broadcast address when one is configured. Each hello carries the time it was sent (milliseconds
since the epoch) and a sequence number, inside the HMAC: a hello whose time is further than
``icn.clock_skew`` from the receiver's clock, or not newer (time, then sequence) than the last one
heard from the same node, is stale and dropped — a captured hello replayed later cannot keep a
dead neighbour alive. Hellos that fail the HMAC are dropped, and so are this
node's own (it may be in its neighbour list, or hear its broadcast). Adverts expire after three
intervals: a node that stops is forgotten, reported lost, and traffic is routed around it. (The
original's broadcast discovery was a stub, sflow-original.md §6.1.)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import msgpack
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall

from sflow.errors import DecodeError
from sflow.model.infra import Address
from sflow.sfc.auto import SHORT_DIGEST, Advert, NeighbourTable

log = logging.getLogger(__name__)

MAC_SIZE = 32
HELLO_VERSION = 3
#: senders whose last (time, sequence) is remembered
MAX_SENDERS = 1024
#: short digests listed per kind (under way, held) in one hello
MAX_LISTED = 48
#: seconds between two hellos sent because the node's work changed
MIN_GAP = 0.05


def reachable_address(address: str, host: str) -> str:
    """``address`` (``host:port``) as others reach it: a wildcard listen host (``0.0.0.0``, ``::``
    or none) is replaced by ``host``, the host the node is known by."""
    listen, _, port = address.rpartition(":")
    if listen.strip("[]") in ("0.0.0.0", "::", ""):
        return str(Address(host, int(port)))
    return address


def _digests(values: frozenset[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in sorted(values)[:MAX_LISTED]]


def encode_hello(advert: Advert, secret: bytes, time_ms: int = 0, seq: int = 0) -> bytes:
    """A hello sent at ``time_ms`` (milliseconds since the epoch), ``seq``-th of its sender."""
    payload = msgpack.packb(
        [HELLO_VERSION, time_ms, seq, advert.node, advert.vcpus, advert.free, advert.queue, advert.pending, advert.speed,
         advert.bandwidth, _digests(advert.working), _digests(advert.held)],
        use_bin_type=True,
    )
    return hmac.new(secret, payload, hashlib.sha256).digest() + payload


def _read_digests(raw: Any) -> frozenset[str]:
    if not isinstance(raw, list) or len(raw) > MAX_LISTED:
        raise ValueError("expected a short list of digests")
    if not all(isinstance(d, bytes) and len(d) * 2 == SHORT_DIGEST for d in raw):
        raise ValueError("expected digests of 8 bytes")
    return frozenset(d.hex() for d in raw)


def decode_hello(datagram: bytes, secret: bytes) -> tuple[Advert, int, int]:
    """The advert of a hello, with its time (ms) and sequence number."""
    mac, payload = datagram[:MAC_SIZE], datagram[MAC_SIZE:]
    if not hmac.compare_digest(mac, hmac.new(secret, payload, hashlib.sha256).digest()):
        raise DecodeError("hello: bad HMAC")
    try:
        raw = msgpack.unpackb(payload, raw=False)
        if not isinstance(raw, list) or not raw or raw[0] != HELLO_VERSION:
            raise ValueError("unknown version")
        _, time_ms, seq, node, vcpus, free, queue, pending, speed, bandwidth, working, held = raw
        if not isinstance(node, str):
            raise ValueError("the node must be an address")
        if not isinstance(time_ms, int) or not isinstance(seq, int):
            raise ValueError("time and sequence must be integers")
        advert = Advert(node, int(vcpus), int(free), int(queue), float(speed), float(bandwidth), int(pending),
                        _read_digests(working), _read_digests(held))
        return advert, time_ms, seq
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise DecodeError(f"hello: malformed: {exc}") from None


class HelloProtocol(DatagramProtocol):
    """Sends this node's advert periodically and when :meth:`soon` is called, records the
    neighbours' (see the module docstring). ``is_me`` recognises this node's own address in every
    form; ``on_neighbour`` hears each advert recorded, ``on_lost`` each neighbour that expired."""

    def __init__(
        self,
        clock: Any,
        secret: bytes,
        table: NeighbourTable,
        advert: Callable[[], Advert],
        targets: list[tuple[str, int]],
        interval: float,
        on_neighbour: Callable[[Advert], None] | None = None,
        *,
        is_me: Callable[[str], bool] | None = None,
        on_lost: Callable[[str], None] | None = None,
        skew: float = 30.0,
    ) -> None:
        self.clock = clock
        self.secret = secret
        self.table = table
        self.advert = advert
        self.targets = targets
        self.interval = interval
        self.on_neighbour = on_neighbour
        self.is_me = is_me
        self.on_lost = on_lost
        self.skew_ms = int(skew * 1000)
        self._seq = 0
        #: the last (time, sequence) heard from each sender
        self._last: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self.counters = {"received": 0, "bad": 0, "stale": 0}
        self._loop: LoopingCall | None = None
        self._soon: Any = None
        self._last_sent = float("-inf")
        self._last_tick = float("inf")

    def startProtocol(self) -> None:
        transport: Any = self.transport
        if transport is not None and hasattr(transport, "setBroadcastAllowed"):
            transport.setBroadcastAllowed(True)
        loop = LoopingCall(self._tick)
        loop.clock = self.clock
        loop.start(self.interval, now=True)
        self._loop = loop

    def stopProtocol(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._soon is not None and self._soon.active():
            self._soon.cancel()
        self._soon = None

    def _tick(self) -> None:
        now = self.clock.seconds()
        late = now - self._last_tick - self.interval
        self._last_tick = now
        if late > self.interval / 2:  # this node's loop was busy: its neighbours' silence is not theirs
            self.table.busy(late, now)
        self.send()
        for node in self.table.expire(now):
            log.warning("event=neighbour_lost node=%s reason=no_hello_for_%gs", node, self.table.ttl)
            if self.on_lost is not None:
                self.on_lost(node)

    def soon(self) -> None:
        """Send a hello soon (this node's work changed), at most one per :data:`MIN_GAP`."""
        if self._soon is not None or self._loop is None:
            return
        delay = max(0.0, self._last_sent + MIN_GAP - self.clock.seconds())
        self._soon = self.clock.callLater(delay, self._send_soon)

    def _send_soon(self) -> None:
        self._soon = None
        self.send()

    def send(self) -> None:
        transport: Any = self.transport
        if transport is None:
            return
        self._last_sent = self.clock.seconds()
        self._seq += 1
        datagram = encode_hello(self.advert(), self.secret, int(self._last_sent * 1000), self._seq)
        for target in self.targets:
            try:
                transport.write(datagram, target)
            except OSError as exc:
                log.debug("event=hello_send_failed target=%s:%d error=%s", target[0], target[1], exc)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        try:
            advert, time_ms, seq = decode_hello(datagram, self.secret)
        except DecodeError as exc:
            self.counters["bad"] += 1
            log.debug("event=hello_dropped from=%s reason=%s", addr, exc)
            return
        if not self._fresh(advert.node, time_ms, seq):
            self.counters["stale"] += 1
            log.debug("event=hello_dropped from=%s node=%s reason=stale time_ms=%d seq=%d", addr, advert.node,
                      time_ms, seq)
            return
        self.counters["received"] += 1
        if isinstance(addr, tuple):
            # A node that advertises a wildcard is reached at the address its hello came from.
            advert = replace(advert, node=reachable_address(advert.node, addr[0]))
        if self.is_me(advert.node) if self.is_me is not None else advert.node == self.advert().node:
            return
        if self.table.update(advert, self.clock.seconds()):
            log.info("event=neighbour_found node=%s vcpus=%d free=%d queue=%d", advert.node, advert.vcpus,
                     advert.free, advert.queue)
        if self.on_neighbour is not None:
            self.on_neighbour(advert)

    def _fresh(self, sender: str, time_ms: int, seq: int) -> bool:
        """Whether a hello is within the skew of this node's clock and newer than the last one
        heard from ``sender`` (then it becomes the last)."""
        if abs(time_ms - int(self.clock.seconds() * 1000)) > self.skew_ms:
            return False
        last = self._last.get(sender)
        if last is not None and (time_ms, seq) <= last:
            return False
        self._last[sender] = (time_ms, seq)
        self._last.move_to_end(sender)
        while len(self._last) > MAX_SENDERS:
            self._last.popitem(last=False)
        return True
