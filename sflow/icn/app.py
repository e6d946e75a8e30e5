"""The application API, on Twisted Deferreds: express Interests, serve prefixes, fetch and serve
content larger than one packet.

An :class:`Endpoint` is an application's side of one face to a forwarder: in-process
(:meth:`Endpoint.attach`, for tests and for nodes that embed a forwarder) or over TCP / a Unix
socket (:func:`connect`). The clock (the reactor, or ``task.Clock`` in tests) is passed in.

* :meth:`Endpoint.express` sends an Interest and returns a Deferred that fires with the Data, or
  fails with :class:`~sflow.errors.InterestTimeout` (after ``retries`` retransmissions, each with
  a new Nonce, one per lifetime) or :class:`~sflow.errors.InterestNacked` (a Congestion Nack is
  retried like a timeout while retries remain).
* :meth:`Endpoint.route` serves a prefix with a handler and registers it on the forwarder with a
  signed ``/localhost/nfd/rib/register`` command, as NFD applications do.
* :meth:`Endpoint.serve_segmented` / :meth:`Endpoint.fetch_segmented` move content of any size as
  ``/<prefix>/v=<version>/seg=<n>`` segments with FinalBlockId (NDN naming conventions), the
  fetcher keeping a window of Interests in flight (AIMD by default, or fixed). The first Interest
  (``/<prefix>`` with CanBePrefix and MustBeFresh) discovers the latest version, so python-ndn's
  ``segment_fetcher`` and this fetcher interoperate.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Union

from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

from sflow.errors import DecodeError, FaceClosedError, InterestNacked, InterestTimeout, RegistrationError
from sflow.icn import tlv
from sflow.icn.control import (
    ROUTE_FLAG_CHILD_INHERIT,
    ROUTE_ORIGIN_APP,
    ControlParameters,
    ControlResponse,
    decode_control_response,
)
from sflow.icn.face.base import Face, FaceScope
from sflow.icn.face.inprocess import linked_faces
from sflow.icn.face.stream import connect_stream
from sflow.icn.forwarder import Forwarder
from sflow.icn.lp import LpPacket
from sflow.icn.name import Component, Name
from sflow.icn.packet import (
    DEFAULT_INTEREST_LIFETIME,
    Data,
    Interest,
    Nack,
    NackReason,
    make_data,
    make_interest,
    nack_reason_text,
)
from sflow.icn.scheduler import Clock, DelayedCall
from sflow.icn.signature import DigestSha256Signer, Signer

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class Uncached:
    """A handler's answer that no content store along the way keeps (NDNLPv2 CachePolicy
    NoCache): a large result's segments, which its producer serves again from disk."""

    data: Data


HandlerResult = Union[Data, Uncached, bytes, None]
Handler = Callable[[Interest], Union[HandlerResult, "Deferred[HandlerResult]"]]

DEFAULT_SEGMENT_SIZE = 8000
"""Content octets per segment: keeps a segment Data under the 8800-octet packet limit."""


@dataclass(frozen=True, slots=True)
class _Route:
    prefix: Name
    handler: Handler
    freshness_period: int | None


class _PendingInterest:
    __slots__ = ("interest", "deferred", "timer", "retries_left", "key")

    def __init__(self, interest: Interest, deferred: Deferred[Data], retries: int) -> None:
        self.interest = interest
        self.deferred = deferred
        self.timer: DelayedCall | None = None
        self.retries_left = retries
        self.key = interest.name.wire


class Endpoint:
    """An application's endpoint on one face (it is the face's packet handler)."""

    def __init__(
        self,
        face: Face,
        clock: Clock,
        *,
        data_signer: Signer | None = None,
        command_signer: Signer | None = None,
    ) -> None:
        self.face = face
        self.clock = clock
        self.data_signer: Signer = data_signer or DigestSha256Signer()
        self.command_signer: Signer = command_signer or DigestSha256Signer(interest_nonce_size=8)
        self._pending: dict[bytes, list[_PendingInterest]] = {}
        self._n_digest_pending = 0
        self._routes: dict[bytes, _Route] = {}
        self._random = random.Random()
        face.handler = self
        self.closed: Deferred[None] = Deferred()
        #: when a packet last came in on the face (a sign of life of what is at its other end)
        self.last_heard = clock.seconds()

    @classmethod
    def attach(cls, forwarder: Forwarder, *, delay: float = 0.0, **kwargs: Any) -> Endpoint:
        """An endpoint on a new in-process face of ``forwarder`` (for tests and embedding nodes)."""
        forwarder_side, app_side = linked_faces(
            forwarder.clock, delay=delay, scope=FaceScope.LOCAL, names=("inproc://forwarder", "inproc://app"),
            application=True,
        )
        forwarder.add_face(forwarder_side)
        return cls(app_side, forwarder.clock, **kwargs)

    def close(self) -> None:
        self.face.close()

    # --- consumer -------------------------------------------------------------------------------
    def express(
        self,
        name: Name | str | Interest,
        *,
        can_be_prefix: bool = False,
        must_be_fresh: bool = False,
        lifetime: int = DEFAULT_INTEREST_LIFETIME,
        hop_limit: int | None = None,
        forwarding_hint: tuple[Name, ...] = (),
        app_parameters: bytes | None = None,
        signer: Signer | None = None,
        retries: int = 0,
    ) -> Deferred[Data]:
        """Express an Interest; the Deferred fires with the Data that satisfies it."""
        if self.face.closed:
            return fail(FaceClosedError(f"face {self.face.remote_uri} is closed"))
        if isinstance(name, Interest):
            interest = name
        else:
            interest = make_interest(
                name,
                can_be_prefix=can_be_prefix,
                must_be_fresh=must_be_fresh,
                lifetime=lifetime,
                hop_limit=hop_limit,
                forwarding_hint=forwarding_hint,
                app_parameters=app_parameters,
                signer=signer,
                nonce=self._random.getrandbits(32),
            )
        pending: _PendingInterest

        def cancel(_d: Deferred[Data]) -> None:
            self._forget(pending)

        deferred: Deferred[Data] = Deferred(cancel)
        pending = _PendingInterest(interest, deferred, retries)
        self._pending.setdefault(pending.key, []).append(pending)
        if interest.name.has_implicit_digest():
            self._n_digest_pending += 1
        self._transmit(pending)
        return deferred

    def _transmit(self, pending: _PendingInterest) -> None:
        self.face.send_interest(pending.interest)
        pending.timer = self.clock.callLater(pending.interest.lifetime_ms / 1000.0, self._on_timeout, pending)

    def _retransmit(self, pending: _PendingInterest) -> None:
        pending.retries_left -= 1
        interest = pending.interest
        if interest.signature_info is None:
            pending.interest = replace(interest, nonce=self._random.getrandbits(32))
        self._transmit(pending)

    def _forget(self, pending: _PendingInterest) -> None:
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.timer = None
        siblings = self._pending.get(pending.key)
        if siblings is not None and pending in siblings:
            siblings.remove(pending)
            if not siblings:
                del self._pending[pending.key]
            if pending.interest.name.has_implicit_digest():
                self._n_digest_pending -= 1

    def _on_timeout(self, pending: _PendingInterest) -> None:
        pending.timer = None
        if pending.retries_left > 0:
            log.debug("interest retransmitted name=%s retries_left=%d", pending.interest.name, pending.retries_left)
            self._retransmit(pending)
            return
        self._forget(pending)
        pending.deferred.errback(InterestTimeout(pending.interest.name.to_uri()))

    def on_incoming_data(self, face: Face, data: Data, lp: LpPacket | None) -> None:
        self.last_heard = self.clock.seconds()
        matched: list[_PendingInterest] = []
        name = data.name
        wire = name.wire
        ends = name.ends
        for depth in range(len(ends), -1, -1):
            candidates = self._pending.get(wire[: ends[depth - 1]] if depth else b"")
            if candidates:
                exact = depth == len(ends)
                matched.extend(p for p in candidates if exact or p.interest.can_be_prefix)
        if self._n_digest_pending:
            matched.extend(self._pending.get(data.full_name_wire(), ()))
        if not matched:
            log.debug("unsolicited data name=%s", name)
            return
        for pending in matched:
            self._forget(pending)
        for pending in matched:
            pending.deferred.callback(data)

    def on_incoming_nack(self, face: Face, nack: Nack, lp: LpPacket | None) -> None:
        self.last_heard = self.clock.seconds()
        candidates = [
            p for p in self._pending.get(nack.interest.name.wire, ()) if p.interest.nonce == nack.interest.nonce
        ]
        for pending in candidates:
            if pending.timer is not None and pending.timer.active():
                pending.timer.cancel()
            if nack.reason == NackReason.CONGESTION and pending.retries_left > 0:
                self._retransmit(pending)
                continue
            self._forget(pending)
            pending.deferred.errback(
                InterestNacked(pending.interest.name.to_uri(), nack.reason, nack_reason_text(nack.reason))
            )

    # --- producer -------------------------------------------------------------------------------
    def route(
        self,
        prefix: Name | str,
        handler: Handler,
        *,
        register: bool = True,
        cost: int = 0,
        freshness_period: int | None = None,
    ) -> Deferred[None]:
        """Serve ``prefix``: Interests under it go to ``handler`` (longest registered prefix wins).

        ``handler(interest)`` returns a Data, bytes (made into a Data with the Interest's name,
        ``freshness_period`` and this endpoint's signer), None (no answer), or a Deferred of those.
        With ``register`` the prefix is registered on the forwarder; the Deferred fires then.
        """
        prefix = Name.coerce(prefix)
        self._routes[prefix.wire] = _Route(prefix, handler, freshness_period)
        if not register:
            return succeed(None)
        return self.register(prefix, cost=cost).addCallback(lambda _response: None)

    def unroute(self, prefix: Name | str, *, unregister: bool = True) -> Deferred[None]:
        prefix = Name.coerce(prefix)
        self._routes.pop(prefix.wire, None)
        if not unregister:
            return succeed(None)
        return self.unregister(prefix).addCallback(lambda _response: None)

    def on_incoming_interest(self, face: Face, interest: Interest, lp: LpPacket | None) -> None:
        self.last_heard = self.clock.seconds()
        name = interest.name
        route = None
        for depth in range(len(name), -1, -1):
            route = self._routes.get(name.prefix_wire(depth))
            if route is not None:
                break
        if route is None:
            log.debug("no route for interest name=%s", name)
            return
        token = lp.pit_token if lp is not None else None
        try:
            result = route.handler(interest)
        except Exception:
            log.exception("interest handler failed prefix=%s name=%s", route.prefix, name)
            return
        if isinstance(result, Deferred):
            result.addCallback(self._answer, interest, route, token)
            result.addErrback(self._handler_failed, interest, route)
        else:
            self._answer(result, interest, route, token)

    def _answer(self, result: HandlerResult, interest: Interest, route: _Route, token: bytes | None) -> None:
        if result is None:
            return
        if isinstance(result, Uncached):
            self.face.send_data(result.data, pit_token=token, no_cache=True)
            return
        if isinstance(result, bytes):
            result = make_data(interest.name, result, freshness_period=route.freshness_period, signer=self.data_signer)
        self.face.send_data(result, pit_token=token)

    @staticmethod
    def _handler_failed(failure: Failure, interest: Interest, route: _Route) -> None:
        log.error("interest handler failed prefix=%s name=%s error=%s", route.prefix, interest.name,
                  failure.getErrorMessage())

    def put(self, data: Data, *, no_cache: bool = False) -> None:
        """Send a Data to the forwarder (it is forwarded if it satisfies a pending Interest)."""
        self.face.send_data(data, no_cache=no_cache)

    def nack(self, interest: Interest, reason: int = NackReason.NO_ROUTE) -> None:
        """Answer an Interest with a network Nack."""
        self.face.send_nack(Nack(interest, reason))

    # --- management -----------------------------------------------------------------------------
    def command(self, module: str, verb: str, params: ControlParameters) -> Deferred[ControlResponse]:
        """Send a signed NFD command Interest; fires with a 200 ControlResponse, else fails."""
        name = Name.from_uri(f"/localhost/nfd/{module}/{verb}").append(Component.generic(params.encode()))
        d = self.express(name, app_parameters=b"", signer=self.command_signer, lifetime=1000, retries=1)

        def parse(data: Data) -> ControlResponse:
            try:
                response = decode_control_response(data.content)
            except DecodeError as exc:
                raise RegistrationError(f"{module}/{verb}: malformed ControlResponse: {exc}") from None
            if response.status_code != 200:
                raise RegistrationError(
                    f"{module}/{verb} for {params.name} refused: {response.status_code} {response.status_text}"
                )
            return response

        def failed(failure: Failure) -> Failure:
            if failure.check(InterestTimeout, InterestNacked):
                return Failure(RegistrationError(f"{module}/{verb} for {params.name}: {failure.getErrorMessage()}"))
            return failure

        return d.addCallbacks(parse, failed)

    def register(
        self, prefix: Name | str, *, cost: int = 0, origin: int = ROUTE_ORIGIN_APP, flags: int = ROUTE_FLAG_CHILD_INHERIT
    ) -> Deferred[ControlResponse]:
        """Register ``prefix`` toward this endpoint's face (``rib/register``)."""
        params = ControlParameters(name=Name.coerce(prefix), origin=origin, cost=cost, flags=flags)
        return self.command("rib", "register", params)

    def unregister(self, prefix: Name | str, *, origin: int = ROUTE_ORIGIN_APP) -> Deferred[ControlResponse]:
        return self.command("rib", "unregister", ControlParameters(name=Name.coerce(prefix), origin=origin))

    def set_strategy(self, prefix: Name | str, strategy: Name | str) -> Deferred[ControlResponse]:
        """Choose the forwarding strategy for ``prefix`` (``strategy-choice/set``)."""
        if isinstance(strategy, str) and not strategy.startswith("/"):
            strategy = f"/localhost/nfd/strategy/{strategy}"
        params = ControlParameters(name=Name.coerce(prefix), strategy=Name.coerce(strategy))
        return self.command("strategy-choice", "set", params)

    # --- segmented content ----------------------------------------------------------------------
    def serve_segmented(
        self,
        prefix: Name | str,
        content: bytes,
        *,
        version: int | None = None,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        freshness_period: int = 10_000,
        register: bool = True,
    ) -> Deferred[Name]:
        """Serve ``content`` as ``/<prefix>/v=<version>/seg=<n>``; fires with the versioned name.

        An Interest for ``/<prefix>`` or ``/<prefix>/v=<version>`` with CanBePrefix gets segment 0.
        The version defaults to the clock in milliseconds.
        """
        prefix = Name.coerce(prefix)
        if version is None:
            version = int(self.clock.seconds() * 1000)
        served = SegmentedContent(prefix, content, version, self.data_signer, segment_size, freshness_period)
        base = served.base
        handler = served.answer
        return self.route(prefix, handler, register=register).addCallback(lambda _none: base)

    def fetch_segmented(
        self,
        name: Name | str,
        *,
        window: int = 8,
        aimd: bool = True,
        max_window: int = 64,
        lifetime: int = DEFAULT_INTEREST_LIFETIME,
        retries: int = 3,
        must_be_fresh: bool = True,
        validate: Callable[[Data], bool] | None = None,
        first: Data | None = None,
        sink: Callable[[bytes], None] | None = None,
    ) -> Deferred[bytes]:
        """Fetch segmented content under ``name`` (a prefix, a versioned name or a segment name).

        ``first`` is a segment the caller already has (say, from discovering the name itself): the
        fetch starts from it instead of asking for it again.

        Keeps up to ``window`` Interests in flight; with ``aimd`` the window grows by one per
        window of Data and halves on a timeout or Congestion Nack (between 1 and ``max_window``).
        Content that is not segmented comes back as it is. With ``validate``, a segment it
        rejects fails the fetch with :class:`~sflow.errors.DecodeError`. With ``sink``, the content
        is not gathered: each segment is passed to ``sink`` in order as soon as it can be (at most
        a window of segments is held), and the fetch fires with ``b""``.
        """
        fetcher = _SegmentFetcher(
            self, Name.coerce(name), window, aimd, max_window, lifetime, retries, must_be_fresh, validate, sink
        )
        return fetcher.start(first)

    # --- face events ----------------------------------------------------------------------------
    def on_face_malformed(self, face: Face, reason: str) -> None:
        log.debug("malformed packet from forwarder reason=%s", reason)

    def on_face_oversize(self, face: Face) -> None:
        log.warning("oversize packet from forwarder")

    def on_face_closed(self, face: Face) -> None:
        pending = [p for group in self._pending.values() for p in group]
        for item in pending:
            self._forget(item)
        for item in pending:
            item.deferred.errback(FaceClosedError(f"face closed before {item.interest.name} was answered"))
        if not self.closed.called:
            self.closed.callback(None)


#: octets a Data adds to its name's, its content's and its SignatureInfo's: its own, Name's, Content's
#: and SignatureValue's TLV headers, the segment component, MetaInfo (ContentType, FreshnessPeriod,
#: FinalBlockId) and a SignatureValue of up to 128 octets, with room to spare
_DATA_OVERHEAD = 256


class SegmentedContent:
    """Content served as ``/<prefix>/v=<version>/seg=<n>`` segments with FinalBlockId.

    An Interest for ``/<prefix>`` or ``/<prefix>/v=<version>`` with CanBePrefix gets segment 0;
    an Interest for a segment name gets that segment. Segments are signed when they are asked for.
    """

    def __init__(
        self,
        prefix: Name,
        content: bytes,
        version: int,
        signer: Signer,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        freshness_period: int = 10_000,
    ) -> None:
        if segment_size <= 0:
            raise ValueError("segment size must be positive")
        self.prefix = prefix
        self.content = content
        self.base = prefix.append(Component.version(version))
        self.segment_size = segment_size
        self.freshness_period = freshness_period
        self.signer = signer
        self.count = max(1, -(-len(content) // segment_size))
        self._final = Component.segment(self.count - 1)
        #: the first segment, the one every fetch asks for first: made when it is first asked for
        #: (most small results are never fetched by name: they travel in the "ready" answer)
        self._first: Data | None = None
        # The first segment is the largest. Unless it could come near the packet limit, its size
        # needs no check (what a Data adds to its name and content is bounded: its TLV headers,
        # MetaInfo, SignatureInfo and a SignatureValue of at most a few dozen octets); if it
        # could, it is made now and measured.
        bound = min(len(content), segment_size) + len(self.base.wire) + len(signer.signature_info().encode()) + _DATA_OVERHEAD
        if bound > tlv.MAX_NDN_PACKET_SIZE:
            largest = len(self.segment(0).wire or b"")
            if largest > tlv.MAX_NDN_PACKET_SIZE:
                raise ValueError(
                    f"a segment of {segment_size} octets makes a {largest}-octet packet, over the "
                    f"{tlv.MAX_NDN_PACKET_SIZE}-octet limit; use a smaller segment size"
                )

    def segment(self, index: int) -> Data:
        if index:
            return self._make(index)
        if self._first is None:
            self._first = self._make(0)
        return self._first

    def _make(self, index: int) -> Data:
        size = self.segment_size
        return make_data(
            self.base.append(Component.segment(index)),
            self.content[index * size : (index + 1) * size],
            freshness_period=self.freshness_period,
            final_block_id=self._final,
            signer=self.signer,
        )

    def answer(self, interest: Interest) -> Data | None:
        """The segment ``interest`` asks for, or None when it asks for none of them."""
        index = segment_asked(interest, self.prefix, self.base, self.count)
        return self.segment(index) if index is not None else None


def segment_asked(interest: Interest, prefix: Name, base: Name, count: int) -> int | None:
    """Which of the ``count`` segments under ``base`` (``prefix`` + version) ``interest`` asks for:
    0 for the prefix or the versioned name with CanBePrefix; None when it asks for none."""
    name = interest.name
    if interest.can_be_prefix and (name == prefix or name == base):
        return 0
    if len(name) == len(base) + 1 and name[-1].is_segment() and base.is_prefix_of(name):
        index = name[-1].to_number()
        if index < count:
            return index
    return None


class _SegmentFetcher:
    """One segmented fetch: discovery, then a window of segment Interests."""

    def __init__(
        self,
        endpoint: Endpoint,
        name: Name,
        window: int,
        aimd: bool,
        max_window: int,
        lifetime: int,
        retries: int,
        must_be_fresh: bool,
        validate: Callable[[Data], bool] | None = None,
        sink: Callable[[bytes], None] | None = None,
    ) -> None:
        if window < 1 or max_window < window:
            raise ValueError("window must be at least 1 and at most max_window")
        self.endpoint = endpoint
        self.name = name
        self.cwnd = float(window)
        self.aimd = aimd
        self.max_window = max_window
        self.lifetime = lifetime
        self.retries = retries
        self.must_be_fresh = must_be_fresh
        self.validate = validate
        self.sink = sink
        #: with a sink: the segments before this one were passed to it
        self.delivered = 0
        self.base: Name | None = None
        self.final: int | None = None
        self.segments: dict[int, bytes] = {}
        self.in_flight: set[int] = set()
        self.tries: dict[int, int] = {}
        self.next_index = 0
        self.result: Deferred[bytes] = Deferred()

    def start(self, first: Data | None = None) -> Deferred[bytes]:
        name = self.name
        last = name[-1] if len(name) else None
        if first is not None:
            self._discovered(first)
        elif last is not None and last.is_segment():
            self.base = name.prefix(-1)
            self._request(last.to_number())
        elif last is not None and last.is_version():
            self.base = name
            self._request(0)
        else:
            d = self.endpoint.express(
                name, can_be_prefix=True, must_be_fresh=self.must_be_fresh, lifetime=self.lifetime, retries=self.retries
            )
            d.addCallbacks(self._discovered, self._fail)
        return self.result

    def _discovered(self, data: Data) -> None:
        if not len(data.name) or not data.name[-1].is_segment():
            self._done(data.content)
            return
        self.base = data.name.prefix(-1)
        self._store(data.name[-1].to_number(), data)

    def _request(self, index: int) -> None:
        if self.base is None or self.result.called:
            return
        self.in_flight.add(index)
        self.tries[index] = self.tries.get(index, 0) + 1
        d = self.endpoint.express(self.base.append(Component.segment(index)), lifetime=self.lifetime)
        d.addCallbacks(self._received, self._segment_failed, errbackArgs=(index,))

    def _received(self, data: Data) -> None:
        index = data.name[-1].to_number() if len(data.name) and data.name[-1].is_segment() else -1
        self.in_flight.discard(index)
        if index < 0:
            self._fail(Failure(InterestNacked(data.name.to_uri(), 0, "not a segment")))
            return
        if self.aimd:
            self.cwnd = min(float(self.max_window), self.cwnd + 1.0 / self.cwnd)
        self._store(index, data)

    def _store(self, index: int, data: Data) -> None:
        if self.result.called:
            return
        if self.validate is not None and not self.validate(data):
            self._fail(Failure(DecodeError(f"segment {data.name} failed validation")))
            return
        if index >= self.delivered:
            self.segments[index] = data.content
        final_block = data.meta_info.final_block_id
        if final_block is not None and final_block.is_segment():
            self.final = final_block.to_number()
        final = self.final
        if self.sink is not None:
            while self.delivered in self.segments:
                try:
                    self.sink(self.segments.pop(self.delivered))
                except Exception:  # the sink's own failure (a full disk) ends the fetch
                    self._fail(Failure())
                    return
                self.delivered += 1
            if final is not None and self.delivered > final:
                self._done(b"")
                return
        elif final is not None and len(self.segments) > final and all(i in self.segments for i in range(final + 1)):
            self._done(b"".join(self.segments[i] for i in range(final + 1)))
            return
        self._fill()

    def _fill(self) -> None:
        # Until FinalBlockId is known, fetch one segment at a time (never far past the end).
        limit = max(1, int(self.cwnd)) if self.final is not None else 1
        while len(self.in_flight) < limit and not self.result.called:
            index = self.next_index
            while index in self.segments or index in self.in_flight or index < self.delivered:
                index += 1
            if self.final is not None and index > self.final:
                break
            self.next_index = index + 1
            self._request(index)

    def _segment_failed(self, failure: Failure, index: int) -> None:
        self.in_flight.discard(index)
        if self.result.called:
            return
        retryable = failure.check(InterestTimeout) or (
            failure.check(InterestNacked) and getattr(failure.value, "reason", None) == NackReason.CONGESTION
        )
        if retryable and self.tries.get(index, 0) <= self.retries:
            if self.aimd:
                self.cwnd = max(1.0, self.cwnd / 2)
            self._request(index)
            return
        self._fail(failure)

    def _done(self, content: bytes) -> None:
        if not self.result.called:
            self.result.callback(content)

    def _fail(self, failure: Failure) -> None:
        if not self.result.called:
            self.result.errback(failure)


def connect(reactor: Any, address: str, **kwargs: Any) -> Deferred[Endpoint]:
    """Connect an endpoint to a forwarder: ``tcp://HOST:PORT``, ``HOST:PORT`` or ``unix:///PATH``."""
    return connect_stream(reactor, address).addCallback(lambda face: Endpoint(face, reactor, **kwargs))
