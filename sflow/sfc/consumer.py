"""Asking for function results: fetch (anyone), compute (authenticated), and ``obtain`` — the two
combined, with retransmission, backoff and a deadline (the I/O side of a consumer; used by nodes
for their inputs and by the delegator for END results).

``obtain`` first fetches the result by name (a content store or a result store may have it); if
the producer says it does not exist yet, it sends the signed compute Interest and waits, asking
again while the producer reports the function is still running; when the function is ready it
fetches it (unless the ready status carries the result itself, as it does for small ones). A
caller that asks the producer's node directly may skip the fetch (``fetch_first=False``): a
producer that held the result before it was asked says so in its ready status, and the result
counts as found rather than computed, as a fetch would have. An
unanswered Interest (lost, or the node is down or restarting) is sent again after a
backoff that doubles up to ``max_backoff``; past the deadline the consumer gives up with an error
that names the function and what it last heard.

A result larger than :data:`~sflow.sfc.bundlefile.STREAM_THRESHOLD` is not gathered in memory
when the client has a :class:`Spooler`: its segments go to a file as they arrive (the node's
result store; a file beside the delegator's results), and the result is that file.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from twisted.internet import task
from twisted.internet.defer import Deferred

from sflow.errors import DecodeError, ExecutionError, FunctionFailure, IcnError
from sflow.icn.app import Endpoint
from sflow.icn.name import Name
from sflow.icn.packet import ContentType, Data, make_data, make_interest
from sflow.icn.scheduler import Clock
from sflow.icn.security import verify_data
from sflow.icn.signature import HmacSha256Signer, SignatureType, Signer
from sflow.sfc.bundle import (
    FAILED,
    READY,
    UNKNOWN,
    YIELDED,
    Status,
    bundle_version,
    decode_status,
    encode_request,
)
from sflow.sfc.bundlefile import STREAM_THRESHOLD, Spool, Spooled
from sflow.sfc.names import KEY_NAME

log = logging.getLogger(__name__)

ABSENT = b"absent"


class FunctionFailed(ExecutionError):
    """The producer reports that the function (or one of its inputs) failed; ``failure`` is the
    function where the failure began, when the producer said."""

    def __init__(self, message: str, failure: FunctionFailure | None = None) -> None:
        super().__init__(message)
        self.failure = failure


class StillRunning(ExecutionError):
    """The deadline came while the producer was still reporting that the function runs."""


class Yielded(ExecutionError):
    """The node asked is itself waiting on this one for the function: this node runs it (see
    :mod:`sflow.sfc.producer`)."""

    def __init__(self, message: str, node: str) -> None:
        super().__init__(message)
        self.node = node


@dataclass(frozen=True, slots=True)
class Obtained:
    #: the bundle (b"" when it is ``spooled``)
    content: bytes
    #: "cache" (it existed before we asked: fetched, or its producer held it) or "computed" (it was
    #: computed for us)
    how: str
    #: a large result: the file that holds it
    spooled: Spooled | None = None


def _obtained(got: bytes | Spooled, how: str) -> Obtained:
    return Obtained(b"", how, got) if isinstance(got, Spooled) else Obtained(got, how)


class Spooler(Protocol):
    """Where large results go as they arrive."""

    def open(self, prefix: Name) -> Spool | Spooled:
        """A spool to write the result under ``prefix`` into, or the file that holds it already."""
        ...

    def finish(self, prefix: Name, spool: Spool) -> Deferred[Spooled]:
        """Make the spool the result's file (off the reactor: it is fsync'd)."""
        ...


def raise_for(status: Status, prefix: Name) -> None:
    """Raise what a producer's status means for the consumer of ``prefix``, when it is neither
    ready nor running: the function failed, the producer yielded it, or it refused or does not
    know it."""
    if status.state == FAILED:
        raise FunctionFailed(status.reason or f"{prefix} failed", status.failure)
    if status.state == YIELDED:
        raise Yielded(status.reason or f"{status.node} yielded {prefix}", status.node)
    if status.state == UNKNOWN:
        raise IcnError(f"{status.node or 'the producer'}: {status.reason or 'unknown function'}")


def cluster_signer(secret: bytes) -> HmacSha256Signer:
    """The HMAC-SHA256 signer of the cluster: no signature nonce, so signed names are deterministic."""
    return HmacSha256Signer(KEY_NAME, secret)


def authenticated_data(data: Data, secret: bytes) -> bool:
    """Whether ``data`` was signed with the cluster secret (HMAC-SHA256)."""
    info = data.signature_info
    return info is not None and info.signature_type == SignatureType.HMAC_WITH_SHA256 and verify_data(data, secret)


def absent_data(name: Name, signer: HmacSha256Signer) -> Data:
    """The application Nack a producer answers a fetch with when it has no such result: it is
    never fresh, so it never satisfies a MustBeFresh Interest from a cache."""
    return make_data(name, ABSENT, content_type=ContentType.NACK, freshness_period=0, signer=signer)


class ResultClient:
    """Fetch / compute / obtain results through ``endpoint``. ``requester`` is the address of the
    node that asks (it goes in every compute request; "" for the delegator and static mode)."""

    def __init__(
        self,
        endpoint: Endpoint,
        clock: Clock,
        secret: bytes,
        *,
        lifetime_ms: int = 4000,
        min_backoff: float = 0.05,
        max_backoff: float = 2.0,
        reconnect: Callable[[], Deferred[Endpoint]] | None = None,
        requester: str = "",
        spooler: Spooler | None = None,
        signer: Signer | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.spooler = spooler
        self.requester = requester
        self._request = encode_request(requester)
        self.clock = clock
        self.secret = secret
        #: signs compute requests (a run's signer, sflow.sfc.freshness); ``obtain`` may be given another
        self.signer: Signer = signer or cluster_signer(secret)
        self.lifetime_ms = lifetime_ms
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.reconnect = reconnect
        self._random = random.Random()

    def _valid(self, data: Data) -> bool:
        return authenticated_data(data, self.secret)

    async def fetch(self, prefix: Name) -> bytes | Spooled | None:
        """The result under ``prefix`` (a large one: its file), or None when the producer says it
        does not exist."""
        first = await self.endpoint.express(prefix, can_be_prefix=True, must_be_fresh=True, lifetime=self.lifetime_ms)
        name = first.name
        if first.content_type == ContentType.NACK or len(name) != len(prefix) + 2 or not name[-1].is_segment():
            return None
        if not name[-2].is_version() or not prefix.is_prefix_of(name):
            return None
        if not self._valid(first):
            raise DecodeError(f"result {name} has no valid cluster signature")
        base = name.prefix(-1)
        final = first.meta_info.final_block_id
        if (self.spooler is not None and final is not None and final.is_segment()
                and (final.to_number() + 1) * len(first.content) > STREAM_THRESHOLD):
            return await self._spool(prefix, base, first)
        content = await self.endpoint.fetch_segmented(
            base, lifetime=self.lifetime_ms, retries=3, validate=self._valid, first=first
        )
        if bundle_version(content) != base[-1].to_number():
            raise DecodeError(f"result {base}: content does not match its version")
        return content

    async def _spool(self, prefix: Name, base: Name, first: Data) -> Spooled:
        """A large result, written to a file segment by segment as it arrives."""
        assert self.spooler is not None
        target = self.spooler.open(prefix)
        if isinstance(target, Spooled):
            return target  # held here already
        try:
            await self.endpoint.fetch_segmented(base, lifetime=self.lifetime_ms, retries=3, validate=self._valid,
                                                first=first, sink=target.write)
            if target.version != base[-1].to_number():
                raise DecodeError(f"result {base}: content does not match its version")
            return await self.spooler.finish(prefix, target)
        except BaseException:
            target.abort()
            raise

    async def compute(self, prefix: Name, signer: Signer | None = None) -> Status:
        """Send the signed compute Interest once; the producer's status."""
        interest = make_interest(
            prefix,
            must_be_fresh=True,
            lifetime=self.lifetime_ms,
            nonce=self._random.getrandbits(32),
            app_parameters=self._request,
            signer=signer or self.signer,
        )
        data = await self.endpoint.express(interest)
        if data.content_type == ContentType.NACK:
            return Status(UNKNOWN, reason="the producer refused the request (not authenticated, or its run is over)")
        if not self._valid(data):
            raise DecodeError(f"status for {prefix} has no valid cluster signature")
        return decode_status(data.content)

    async def _until_ready(self, prefix: Name, deadline: float, signer: Signer | None) -> Status:
        """Compute Interests until the producer says ready, or the deadline comes while it says
        the function is running (that ``running`` status is returned)."""
        while True:
            status = await self.compute(prefix, signer)
            if status.state == READY:
                return status
            raise_for(status, prefix)
            if self.clock.seconds() >= deadline:
                return status
            log.debug("event=still_running name=%s node=%s elapsed=%.1f", prefix, status.node, status.elapsed)
            if status.retry_ms > 0:
                await task.deferLater(self.clock, status.retry_ms / 1000.0)  # type: ignore[arg-type]

    async def obtain(self, prefix: Name, deadline: float, signer: Signer | None = None, *,
                     fetch_first: bool = True) -> Obtained:
        """The result under ``prefix``, computing it if needed; raises FunctionFailed, Yielded or
        ExecutionError (deadline). ``deadline`` is a clock time (``clock.seconds()``); ``signer``
        signs the compute requests (default: this client's). ``fetch_first=False`` asks for it to
        be computed straight away (the caller knows that no cache on the way has it: a producer
        that holds it answers ready all the same)."""
        backoff = self.min_backoff
        asked = False
        fetch = fetch_first  # (after a failed attempt, always)
        last = "no answer yet"
        running = False
        while True:
            try:
                if self.endpoint.face.closed and self.reconnect is not None:
                    self.endpoint = await self.reconnect()
                if fetch:
                    content = await self.fetch(prefix)
                    if content is not None:
                        return _obtained(content, "computed" if asked else "cache")
                asked = fetch = True
                status = await self._until_ready(prefix, deadline, signer)
                # (a producer that held the result before it was asked says so: a cache hit)
                how = "cache" if status.stored else "computed"
                if status.state == READY and status.content:
                    if bundle_version(status.content) != status.version:
                        raise DecodeError(f"result {prefix}: content does not match its version")
                    return Obtained(status.content, how)
                if status.state == READY:
                    content = await self.fetch(prefix)
                    if content is not None:
                        return _obtained(content, how)
                    last = f"{status.node}: ready, but the result could not be fetched"
                else:
                    reason = f"; {status.reason}" if status.reason else ""
                    last = f"{status.node or 'the producer'} (for {status.elapsed:.1f} s{reason}) reports it running"
                    running = True
            except (IcnError, DecodeError) as exc:
                running = False
                last = str(exc)
                log.debug("event=obtain_retry name=%s reason=%s backoff=%.3f", prefix, last, backoff)
            now = self.clock.seconds()
            if now >= deadline:
                if running:
                    raise StillRunning(f"{prefix} was still running at the deadline ({last})")
                raise ExecutionError(f"no result for {prefix} before the deadline; last: {last}")
            delay = min(backoff, max(0.0, deadline - now))
            backoff = min(self.max_backoff, backoff * 2)
            await task.deferLater(self.clock, delay)  # type: ignore[arg-type]


