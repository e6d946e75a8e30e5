"""The node side of ICN chaining: an embedded forwarder, the producer of function results, and the
consumer of their inputs.

:class:`SfcService` owns a :class:`~sflow.icn.forwarder.Forwarder` (given, so that tests can use
in-process forwarders on ``task.Clock``) and two in-process faces to it: the *producer* face
serves ``/sflow/fn`` (results, compute requests) and ``/sflow/ctl`` (install, events, status); the
*consumer* face expresses the Interests for inputs produced on this very node that its content
store holds (a separate face, so that they are forwarded to the producer face rather than back
where they came from).

A compute request for a function is checked (HMAC with the cluster secret), then handled by the
pure :class:`~sflow.sfc.producer.Producer`: inputs are obtained through the consumer — one obtain
per input result, shared by every function here that needs it — from the node the placement says
(the delegator's schedule in ``icn`` mode, the node's :class:`~sflow.sfc.placer.AutoPlacer` in
``auto`` mode). An input placed here — this node in any form of its address,
:class:`~sflow.sfc.identity.Identity` — is asked of this node's own producer directly (the checks,
decision and answers of a compute request, without an Interest; through the forwarder only when
its content store holds the result); an input placed on another node is asked of that node's
forwarder directly, on a face of the consumer's own toward it (so that a request never waits in
this node's PIT behind one of the other node's for the same name), with a compute request at once
(a fetch first only of a neighbour that advertises the result), and the result is kept by this
node's result store (a small one in memory only, :meth:`~sflow.sfc.store.ResultStore.keep`): it
holds it from then on. An input already held is not asked for. Inputs are written into a fresh working
directory, the function runs
on one of the node's vCPU slots (:mod:`sflow.sfc.slots`; it waits in the node's queue, in
schedule order, while all are taken) through the node's :class:`~sflow.node.execution.Executor`
(natively or in Docker), and its declared outputs become a result bundle in the
:class:`~sflow.sfc.store.ResultStore`, served as signed segments. Requests held while the function
runs are answered when it ends, or with ``running`` shortly before their Interest would expire, so
that the consumer asks again.

In static mode, a function installed again with an input on another node (the delegator placed the
input's function again, its node being lost) asks the new node at once. Large results are never
held whole: outputs go into the store from their files and inputs are spooled into it as they
arrive (:mod:`sflow.sfc.bundlefile`), off the reactor.

In autonomous mode an input whose node goes away (its face closes, or its hellos stop) is placed
again at once, avoiding that node; two nodes that placed the same function on each other are told
apart by the producer (``yielded``), so that exactly one runs it without waiting.

Events (executed here on vCPU slot k, found in the store, input found in a cache) are kept per run
for the delegator's report (``/sflow/ctl/events/<run>/<page>``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgpack
from cachetools import LRUCache
from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.python.failure import Failure

from sflow import deferred_log
from sflow.config import Config
from sflow.errors import FunctionFailure, IcnError, ProtocolError, SflowError
from sflow.icn.app import Endpoint, HandlerResult, SegmentedContent
from sflow.icn.face.base import Face, FaceScope
from sflow.icn.face.inprocess import linked_faces
from sflow.icn.forwarder import Forwarder
from sflow.icn.name import PARAMETERS_SHA256_DIGEST, Name
from sflow.icn.packet import Data, Interest, make_data, make_interest
from sflow.model.paths import UnsafePath
from sflow.node.execution import ExecRequest, ExecResult, job_file
from sflow.node.peers import PeerPool
from sflow.node.transfer import open_beneath
from sflow.sfc.auto import Advert, short
from sflow.sfc.bundle import (
    FAILED,
    INLINE_LIMIT,
    READY,
    RUNNING,
    UNKNOWN,
    YIELDED,
    Status,
    decode_bundle,
    decode_request,
    encode_bundle,
    encode_status,
)
from sflow.sfc.bundlefile import STREAM_THRESHOLD, Spool, Spooled, extract_bundle, plain_file, write_bundle
from sflow.sfc.consumer import (
    FunctionFailed,
    Obtained,
    ResultClient,
    StillRunning,
    Yielded,
    absent_data,
    cluster_signer,
    raise_for,
)
from sflow.sfc.freshness import RequestGuard, RunKey, RunSigner
from sflow.sfc.identity import Identity
from sflow.sfc.install import Held, Reassembly, decode_part
from sflow.sfc.names import CTL_PREFIX, FN_PREFIX, InputRef, Installed, installed_from_wire, parse_result_name
from sflow.sfc.producer import INPUTS, Execute, FunctionRun, Hold, Obtain, Producer, Reply, ReplyAll
from sflow.sfc.scratch import READY_PER_VCPU, FreshDirectories
from sflow.sfc.slots import VcpuSlots
from sflow.sfc.store import FileSegments, ResultStore

log = logging.getLogger(__name__)

_A = TypeVar("_A")

#: a held compute request is answered "running" when this fraction of its lifetime has passed
HOLD_FRACTION = 0.75
#: content-store probes kept (:meth:`SfcService.holds`, asked by the autonomous placer about the
#: function it places and that function's inputs, at every decision)
CS_PROBES = 4096
#: a function's inputs (already in memory) and outputs up to this many bytes together are written
#: into and read from its working directory on the reactor: a few small files in the page cache
#: cost less than two thread hops per function; larger ones go through the store's threads (the
#: store's own files, written durably, always do)
STAGE_HERE_BYTES = 64 * 1024
#: events per page of /sflow/ctl/events/<run>/<page>
EVENTS_PER_PAGE = 40
#: runs whose events are kept
MAX_RUNS = 64
MAX_INSTALL_PARAMS = 7000
#: a node's own requests made inside one another before the next waits for the reactor's next
#: turn (see SfcService._request_here)
HERE_NESTING = 16
#: of the functions a start (static mode) began on a node, how many may be asking for their
#: inputs at once (see SfcService._start_run)
START_WINDOW = 8
#: why such a function waits, as a consumer that asks meanwhile is told
_UNASKED = (f"its inputs not yet asked for: a start asks for those of {START_WINDOW} of a node's functions at a "
            "time, in the job's order")
#: inputs of one function asked for in one turn of the reactor (see SfcService._ask_inputs)
INPUTS_PER_TURN = 32
#: functions waiting behind a result that a placement looks at (see SfcService._waiting_behind)
WAITING_BEHIND_MAX = 256
#: results this node produced or obtained lately, advertised as held (short digests)
HELD_MEMORY = 48
#: run keys remembered per run and per function
MAX_KEYS = 4096
#: how an input was had when this node's result store held it already
STORED = "stored"


class FunctionExecutor(Protocol):
    def run(self, request: ExecRequest) -> Deferred[ExecResult]: ...


#: open (or reuse) a face toward another node's forwarder, by its ICN address (``host:port``)
PeerConnector = Callable[[str], Deferred[Face]]

#: autonomous mode: where input ``index`` of ``item`` should run ("" = here); ``avoid`` are
#: addresses that did not answer
Placer = Callable[[Installed, int, frozenset[str]], str]


class NeighbourLost(IcnError):
    """The node an input was placed on went away (its face closed, or its hellos stopped)."""


@dataclass(slots=True)
class _Held:
    interest: Interest
    deferred: Deferred[HandlerResult]
    timer: Any


@dataclass(frozen=True, slots=True)
class _Peer:
    """The consumer's own face toward another node's forwarder."""

    address: str
    face: Face
    client: ResultClient


@dataclass(slots=True)
class _SharedObtain:
    """One obtain of an input result, and the functions here waiting for it."""

    waiters: list[Deferred[Obtained]] = field(default_factory=list)


class SfcService:
    """ICN chaining on one node (see the module docstring)."""

    def __init__(
        self,
        clock: Any,
        forwarder: Forwarder,
        config: Config,
        secret: bytes,
        executor: FunctionExecutor,
        workdir: Path,
        store: ResultStore,
        *,
        name: str,
        connect_peer: PeerConnector,
        vcpus: int = 1,
        placer: Placer | None = None,
        identity: Identity | None = None,
        prepare_directory: Callable[[Path], None] | None = None,
    ) -> None:
        """``prepare_directory`` finishes a function's new working directory off the reactor
        (the node's function user is made its owner)."""
        self.clock = clock
        self.forwarder = forwarder
        self.config = config
        self.secret = secret
        self.executor = executor
        self.workdir = workdir
        self.store = store
        self.name = name
        self.identity = identity or Identity.of(name)
        self.vcpus = vcpus
        self.slots: VcpuSlots[Installed] = VcpuSlots(vcpus)
        self._here_depth = 0  # this node's own requests under way inside one another (_request_here)
        self.placer = placer
        self._connect_peer = connect_peer
        self.signer = cluster_signer(secret)
        #: freshness of signed requests (sflow.sfc.freshness), and the run keys this node signs its
        #: own requests with: by run (from installs) and by function (from the last request for it)
        self.guard = RequestGuard(secret, max_validity=config.icn.request_validity, skew=config.icn.clock_skew)
        self._run_keys: OrderedDict[str, RunKey] = OrderedDict()
        self._request_keys: OrderedDict[str, RunKey] = OrderedDict()
        self.producer = Producer(name=name)
        self.installed: dict[str, dict[str, Installed]] = {}
        #: changes whenever a function new to this node is installed (the placer caches on it)
        self.generation = 0
        #: called when this node's work changes (autonomous mode: a hello goes out soon)
        self.on_change: Callable[[], None] | None = None
        #: told of a digest whose function is now under way here or whose result is here
        self.on_arrival: Callable[[str], None] | None = None
        #: autonomous mode: whether a neighbour's last advert says it holds a result (node, digest)
        self.held_at: Callable[[str, str], bool] | None = None
        self._held: dict[str, list[_Held]] = {}
        #: this node's own requests for functions placed on it, waiting for them to end, by digest
        self._here: dict[str, list[Deferred[Status]]] = {}
        #: events by run, for the runs installed most recently (at most MAX_RUNS)
        self._runs: dict[str, list[dict[str, Any]]] = {}
        self._peers: PeerPool[_Peer] = PeerPool(self._open_peer, lambda peer: not peer.face.closed)
        #: the input results being obtained, by digest, and where each was placed ("" = here)
        self._obtains: dict[str, _SharedObtain] = {}
        self._obtaining: dict[str, str] = {}
        #: cancellers of the attempts waiting on each node, fired when it goes away
        self._watching: dict[str, set[Callable[[], None]]] = {}
        #: the canceller of the attempt under way for each input result, by digest
        self._attempts: dict[str, Callable[[], None]] = {}
        #: results produced or obtained here lately (short digests), most recent last
        self._recent: OrderedDict[str, None] = OrderedDict()
        #: static mode over a multi-hop topology: forwarder faces toward next hops, and the routes of
        #: results that cross this node (prefix wire → face id)
        self._hops: PeerPool[Face] = PeerPool(
            self._open_hop, lambda face: not face.closed and self.forwarder.faces.get(face.face_id) is face
        )
        self._transit: dict[bytes, int] = {}
        #: the functions' working directories, made ahead of need
        self.scratch = FreshDirectories(workdir / "sfc", READY_PER_VCPU * vcpus, store.run_detached, prepare_directory)
        self._inputs: dict[tuple[str, int], Obtained] = {}
        #: the functions installed here that take a result as an input, by that result's digest
        self._needers: dict[str, set[str]] = {}
        #: the Interest that asks this node's content store for a result, by digest (built once)
        self._cs_probes: LRUCache[str, Interest] = LRUCache(maxsize=CS_PROBES)
        self._spooler = _StoreSpooler(store)
        #: why a function is still waiting for an input (told to consumers that ask meanwhile)
        self._waiting: dict[str, str] = {}
        #: by run: the functions a start began whose inputs are yet to be asked for, in the job's
        #: order, and those whose inputs it asked for that still wait for them; whether they are
        #: being asked for now
        self._unasked: dict[str, deque[tuple[Installed, list[Obtain]]]] = {}
        self._start_asking: dict[str, set[str]] = {}
        self._releasing = False
        #: install batches arriving in parts
        self.reassembly = Reassembly()
        self.counters = {"executed": 0, "failed": 0, "store_hits": 0, "refused": 0, "input_cache_hits": 0,
                         "compute_requests": 0, "yielded": 0, "replaced": 0, "started": 0}

        fwd_side, app_side = linked_faces(clock, scope=FaceScope.LOCAL, names=("inproc://sfc-fwd", "inproc://sfc"),
                                          application=True)
        forwarder.add_face(fwd_side)
        self.producer_face = fwd_side
        self.endpoint = Endpoint(app_side, clock, data_signer=self.signer)
        forwarder.add_route(FN_PREFIX, fwd_side)
        forwarder.add_route(CTL_PREFIX, fwd_side)
        self.endpoint.route(FN_PREFIX, self._on_fn, register=False)
        self.endpoint.route(CTL_PREFIX, self._on_ctl, register=False)
        self.consumer_endpoint = Endpoint.attach(forwarder)
        # In autonomous mode a compute request names the node that asks, so that a mutual wait is
        # seen; in static mode requests from every node have the same name and aggregate in PITs.
        self.client = ResultClient(
            self.consumer_endpoint, clock, secret, lifetime_ms=config.icn.interest_lifetime_ms,
            requester=name if placer is not None else "", spooler=self._spooler,
        )
        for item in store.load_functions():
            self._register(item)
        log.info("event=sfc_ready node=%s functions=%d", name, len(self.installed))

    # Interests for results ---------------------------------------------------------------------

    def _on_fn(self, interest: Interest) -> HandlerResult | Deferred[HandlerResult]:
        name = interest.name
        parsed = parse_result_name(name)
        if parsed is None:
            return None
        program, digest = parsed
        if len(name) == 5 and name[4].type == PARAMETERS_SHA256_DIGEST:
            return self._on_compute(interest, program, digest)
        return self.store.get(digest, program).addCallback(self._serve_stored, interest, digest)

    def _serve_stored(self, served: SegmentedContent | FileSegments | None, interest: Interest,
                      digest: str) -> HandlerResult | Deferred[HandlerResult]:
        first = interest.can_be_prefix and len(interest.name) == 4  # the first Interest of a fetch (no cache had it)
        if served is not None:
            if first:
                self._store_hit(digest, self.installed.get(digest, {}))
            return served.answer(interest)
        if first:
            return absent_data(interest.name, self.signer)
        return None

    def _status(self, interest: Interest, status: Status) -> Data:
        return self._answer(interest.name, encode_status(status))

    def _answer(self, name: Name, content: bytes) -> Data:
        """A signed answer that is never fresh: no cache serves it to a later request."""
        return make_data(name, content, freshness_period=0, signer=self.signer)

    def _control_answer(self, name: Name, body: dict[str, Any]) -> Data:
        return self._answer(name, msgpack.packb(body, use_bin_type=True))

    def _on_compute(self, interest: Interest, program: str, digest: str) -> HandlerResult | Deferred[HandlerResult]:
        now = self.clock.seconds()
        self.counters["compute_requests"] += 1
        verdict = self.guard.check_run_request(interest, now)
        if verdict.run_key is None:
            # Not signed with a current run key: the same refusal whether or not the result exists
            # (a status is an answer for the cluster only); nothing runs.
            self.counters["refused"] += 1
            log.info("event=compute_refused name=%s reason=%s", interest.name, verdict.reason.replace(" ", "_"))
            return absent_data(interest.name, self.signer)
        return self._request(digest, program, verdict.run_key, decode_request(interest.app_parameters),
                             functools.partial(self._status, interest), lambda: self._hold(interest, digest))

    def _request_here(self, digest: str, program: str, signer: RunSigner) -> Deferred[Status]:
        """This node's own request for a function placed on it: what a compute Interest through
        its forwarder would get (the same key check, decision and answers), without making,
        signing, forwarding and checking one, and without the status and result travelling back
        as Data.

        The request begins the function's own obtains, and one of its inputs placed here asks
        again, inside this call: a chain placed here would ask for all its predecessors one
        inside the other, and a long one ran out of stack (the error was lost in a Deferred and
        the run hung). Past :data:`HERE_NESTING` requests inside one another, the next one is
        asked at the reactor's next turn."""
        if self._here_depth >= HERE_NESTING:
            return Deferred.fromCoroutine(self._request_here_later(digest, program, signer))
        self.counters["compute_requests"] += 1
        verdict = self.guard.check_key(signer.run_key, self.clock.seconds())
        if verdict.run_key is None:
            self.counters["refused"] += 1
            return succeed(Status(UNKNOWN, node=self.name, reason=f"its own request was refused: {verdict.reason}"))
        self._here_depth += 1
        try:
            answer = self._request(digest, program, verdict.run_key, self.client.requester, _same,
                                   lambda: self._wait_here(digest))
        finally:
            self._here_depth -= 1
        if isinstance(answer, Deferred):
            return answer
        return succeed(answer or Status(UNKNOWN, node=self.name, reason="its producer did not answer"))

    async def _request_here_later(self, digest: str, program: str, signer: RunSigner) -> Status:
        await task.deferLater(self.clock, 0)  # type: ignore[arg-type]
        return await self._request_here(digest, program, signer)

    def _request(self, digest: str, program: str, run_key: RunKey, requester: str,
                 answer: Callable[[Status], _A], hold: Callable[[], Deferred[_A]]) -> _A | Deferred[_A] | None:
        """A request for the result ``digest``, signed with ``run_key``, from ``requester`` (an
        address; "" unnamed, as in static mode): the producer's decision and the work it starts;
        the answer is ``answer(status)``, now or once the stored result is read, or ``hold()``
        until the function ends."""
        now = self.clock.seconds()
        _remember_key(self._request_keys, digest, run_key)
        runs = self.installed.get(digest, {})
        item = self.function(digest)
        # This node is itself obtaining the function from the node that asks: a mutual wait.
        placed = self._obtaining.get(digest, "")
        mutual = requester if requester and placed and placed == requester else ""
        new = digest not in self.producer.runs
        actions = self.producer.on_request(
            digest, now, known=item is not None, stored=digest in self.store,
            n_inputs=len(item.spec.inputs) if item is not None else 0, mutual=mutual,
        )
        if mutual:
            yielded = any(isinstance(a, Reply) and a.state == YIELDED for a in actions)
            self.counters["yielded"] += int(yielded)
            log.info("event=mutual_wait node=%s function=%s/%s other=%s runs_on=%s", self.name, program, digest,
                     requester, requester if yielded else "here")
        if new and digest in self.producer.runs:
            self._arrived(digest)
            self._changed()
        result: _A | Deferred[_A] | None = None
        obtains: list[Obtain] = []
        for action in actions:
            if isinstance(action, Obtain):
                obtains.append(action)
            elif isinstance(action, Reply):
                if action.state == READY:
                    self._store_hit(digest, runs)
                    result = self._ready(digest, program, stored=True).addCallback(answer)
                else:
                    result = answer(Status(action.state, node=self.name, reason=action.reason, failure=action.failure))
            elif isinstance(action, Hold):
                result = hold()  # (before the work starts: it may end at once)
            elif item is not None:
                self._perform(item, action)
        if obtains and item is not None:
            self._ask_inputs(item, obtains)
        return result

    def _ask_inputs(self, item: Installed, obtains: list[Obtain]) -> None:
        """Start obtaining a function's inputs: :data:`INPUTS_PER_TURN` of them now, the rest in the
        reactor's next turns. A join of a thousand inputs placed and asked for them all in one turn
        (about 0.15 s in autonomous mode), while its requests waited in the connections' buffers
        until the turn ended and the other nodes sat idle; a few at a time, they go out as they
        are made. The rest are not asked for once the function has failed meanwhile."""
        for action in obtains[:INPUTS_PER_TURN]:
            self._perform(item, action)
        if len(obtains) > INPUTS_PER_TURN:
            run = self.producer.runs.get(item.spec.digest)
            self.clock.callLater(0, self._ask_more_inputs, item, run, obtains[INPUTS_PER_TURN:])

    def _ask_more_inputs(self, item: Installed, run: FunctionRun | None, obtains: list[Obtain]) -> None:
        if run is not None and self.producer.runs.get(item.spec.digest) is run and run.phase == INPUTS:
            self._ask_inputs(item, obtains)

    def _store_hit(self, digest: str, runs: dict[str, Installed]) -> None:
        self.counters["store_hits"] += 1
        for run, item in runs.items():
            self._event(run, {"task": int(item.spec.task), "kind": "stored", "node": self.name,
                              "time": self.clock.seconds()})

    def _hold(self, interest: Interest, digest: str) -> Deferred[HandlerResult]:
        d: Deferred[HandlerResult] = Deferred()
        wait = max(0.05, interest.lifetime_ms / 1000.0 * HOLD_FRACTION)
        held = _Held(interest, d, None)
        held.timer = self.clock.callLater(wait, self._hold_expired, digest, held)
        self._held.setdefault(digest, []).append(held)
        return d

    def _wait_here(self, digest: str) -> Deferred[Status]:
        """This node's own request, held until the function ends (or it is cancelled: the input
        was placed elsewhere, or the deadline came)."""
        waiters = self._here.setdefault(digest, [])

        def cancelled(waiter: Deferred[Status]) -> None:
            if waiter in waiters:
                waiters.remove(waiter)

        waiter: Deferred[Status] = Deferred(cancelled)
        waiters.append(waiter)
        return waiter

    def _hold_expired(self, digest: str, held: _Held) -> None:
        waiting = self._held.get(digest, [])
        if held in waiting:
            waiting.remove(held)
        elapsed = self.producer.elapsed(digest, self.clock.seconds())
        reason = self._waiting.get(digest, "")
        held.deferred.callback(self._status(held.interest, Status(RUNNING, node=self.name, elapsed=elapsed,
                                                                  reason=reason)))

    def _ready(self, digest: str, program: str, *, stored: bool = False) -> Deferred[Status]:
        """The ready status of a stored result: its version and segments, and the result itself
        when it is small (the consumer then has it without fetching it); ``stored``: it was held
        here before the request (it was not computed for it)."""

        def status(served: SegmentedContent | FileSegments | None) -> Status:
            if served is None:
                return Status(READY, node=self.name)
            inline = served.content if served.content is not None and len(served.content) <= INLINE_LIMIT else b""
            return Status(READY, node=self.name, version=served.base[-1].to_number(), segments=served.count,
                          content=inline, stored=stored)

        return self.store.get(digest, program).addCallback(status)

    def _reply_all(self, action: ReplyAll, digest: str) -> None:
        self._waiting.pop(digest, None)
        item = self.function(digest)
        held = self._held.pop(digest, [])
        here = self._here.pop(digest, [])
        for one in held:
            if one.timer is not None and one.timer.active():
                one.timer.cancel()
        if action.state == READY and item is not None:
            self._ready(digest, item.spec.program).addCallback(self._answer_held, held, here)
        else:
            self._answer_held(Status(action.state, node=self.name, reason=action.reason, failure=action.failure),
                              held, here)
        self._ask_unasked()

    def _answer_held(self, status: Status, held: list[_Held], here: list[Deferred[Status]]) -> None:
        for one in held:
            one.deferred.callback(self._status(one.interest, status))
        for waiter in here:
            waiter.callback(status)

    def _perform(self, item: Installed, action: Obtain | Execute | ReplyAll) -> None:
        digest = item.spec.digest
        if isinstance(action, Obtain):
            d = Deferred.fromCoroutine(self._obtain_input(item, action.index))
            d.addErrback(self._input_failed, digest, action.index)
        elif isinstance(action, Execute):
            slot = self.slots.acquire(item, item.priority)
            if slot is None:
                log.info("event=function_queued node=%s task=%d queue=%d vcpus=%d", self.name, item.spec.task,
                         self.slots.waiting, self.slots.count)
                self._waiting[digest] = f"waiting for one of the node's {self.slots.count} vCPUs"
                self._changed()
                return
            self._start(item, slot)
        elif isinstance(action, ReplyAll):
            self._reply_all(action, digest)

    def _apply(self, item: Installed, actions: list[Any]) -> None:
        for action in actions:
            self._perform(item, action)

    # Inputs ------------------------------------------------------------------------------------

    async def _obtain_input(self, item: Installed, index: int) -> None:
        ref = item.spec.inputs[index]
        got = await self._obtain_shared(item, index)
        self._waiting.pop(item.spec.digest, None)
        if got.how in ("cache", STORED):
            # found, not computed for us: in a content store, or in this node's result store
            self.counters["input_cache_hits"] += 1
            for run, inst in self.installed.get(item.spec.digest, {}).items():
                self._event(run, {"task": int(inst.spec.inputs[index].pred), "kind": "cache" if got.how == "cache"
                                  else "stored", "node": self.name, "time": self.clock.seconds()})
        self._remember(ref.digest)
        self._inputs[(item.spec.digest, index)] = got
        self._apply(item, self.producer.on_input(item.spec.digest, index))
        self._ask_unasked()

    def _obtain_shared(self, item: Installed, index: int) -> Deferred[Obtained]:
        """The input's result, from the one obtain of it under way here (started if there is none),
        so that every function here that needs a result shares one placement and one request."""
        ref = item.spec.inputs[index]
        if ref.digest not in self.store:
            return self._obtain_once(item, index)

        def stored(served: SegmentedContent | FileSegments | None) -> Obtained | Deferred[Obtained]:
            if isinstance(served, FileSegments):
                return Obtained(b"", STORED, served.spooled)
            if served is not None:
                return Obtained(served.content, STORED)
            return self._obtain_once(item, index)  # damaged: removed from the store, obtained again

        return self.store.get(ref.digest, ref.program).addCallback(stored)

    def _obtain_once(self, item: Installed, index: int) -> Deferred[Obtained]:
        """The input's result from the one obtain of it under way here (started if there is none)."""
        ref = item.spec.inputs[index]
        waiter: Deferred[Obtained] = Deferred()
        shared = self._obtains.get(ref.digest)
        if shared is not None:
            shared.waiters.append(waiter)
            return waiter
        shared = self._obtains[ref.digest] = _SharedObtain()
        shared.waiters.append(waiter)  # (before the obtain starts: it may end at once)

        def done(result: Obtained | Failure) -> None:
            del self._obtains[ref.digest]
            for one in shared.waiters:
                if isinstance(result, Failure):
                    one.errback(result)
                else:
                    one.callback(result)

        Deferred.fromCoroutine(self._obtain_routed(item, index, ref)).addBoth(done)
        return waiter

    async def _obtain_routed(self, item: Installed, index: int, ref: InputRef) -> Obtained:
        """Obtain the input from where the placement says, again and again until the function's
        timeout: each attempt is bounded, so that a node that went away and came back is asked
        afresh. In autonomous mode an input whose node goes away, stops answering or fails to
        deliver is placed again without that node, and a node that yields it (a mutual wait)
        makes this node run it."""
        deadline = self.clock.seconds() + (self.config.node.function_timeout or math.inf)
        avoid: set[str] = set()
        here = False
        target: str | None = None  # None: to be placed (again)
        backoff = self.client.min_backoff
        try:
            while True:
                if target is None:
                    target = "" if here else self._placement(item, index, frozenset(avoid))
                    self._obtaining[ref.digest] = target
                try:
                    got = await self._attempt(ref, target, deadline, self._signer_for(item))
                    if target and got.spooled is None:  # (a large one was spooled into the store)
                        self.store.keep(ref.digest, ref.program, got.content)  # this node holds it now
                    return got
                except (FunctionFailed, CancelledError):
                    raise
                except Yielded as exc:
                    log.info("event=input_yielded node=%s task=%d by=%s runs_on=here", self.name, ref.pred, exc.node)
                    here, target = True, None
                    continue
                except StillRunning:
                    if self.clock.seconds() >= deadline:
                        raise
                except SflowError as exc:
                    if self.clock.seconds() >= deadline:
                        raise
                    if self.placer is not None and target:
                        log.warning("event=neighbour_unresponsive node=%s neighbour=%s task=%d input=%s error=%s",
                                    self.name, target, ref.pred, ref.prefix, exc)
                        self.counters["replaced"] += 1
                        avoid.add(target)
                        target = None
                        continue
                    log.info("event=input_retry node=%s input=%s error=%s", self.name, ref.prefix, exc)
                    self._waiting[item.spec.digest] = f"waiting for input from task {ref.pred}: {exc}"
                    if self.placer is None and self._placement(item, index, frozenset()) != target:
                        # static mode: installed again with the input on another node; ask there now
                        target = None
                        backoff = self.client.min_backoff
                        continue
                    await task.deferLater(self.clock, backoff)
                    backoff = min(self.client.max_backoff, backoff * 2)
                    if self.placer is None:
                        target = None
        finally:
            self._obtaining.pop(ref.digest, None)

    async def _attempt(self, ref: InputRef, target: str, deadline: float, signer: RunSigner) -> Obtained:
        """One obtain of the input ``ref`` from ``target`` ("" = this node). It ends at once when
        ``target`` goes away (:meth:`neighbour_lost`: its face closed, or in autonomous mode its
        hellos stopped), when the input is placed elsewhere (:meth:`_move_input`), and in
        autonomous mode after :meth:`_give_up`."""
        prefix, digest = ref.prefix, ref.digest
        if not target and self.holds(digest):
            # In this node's content store (its result store was looked in): fetched from it.
            attempt = Deferred.fromCoroutine(self.client.obtain(prefix, deadline, signer))
        elif not target:
            # Placed here: this node's own producer is asked directly.
            attempt = Deferred.fromCoroutine(self._obtain_here(ref, deadline, signer))
        else:
            client = (await self._peer(target)).client
            bound = min(deadline, self._give_up()) if self.placer is not None else deadline
            # The node is asked directly (over its own face): its producer answers a compute request
            # from its store as a fetch would (a "stored" ready status: a cache hit here all the
            # same), so the fetch first, which is refused whenever the result is still to be made,
            # is sent only to a neighbour whose adverts say it holds the result (autonomous mode):
            # its content store may hold it too.
            fetch_first = self.held_at is not None and self.held_at(target, digest)
            attempt = Deferred.fromCoroutine(client.obtain(prefix, bound, signer, fetch_first=fetch_first))
        watchers = self._watching.setdefault(target, set())
        cancel = attempt.cancel
        watchers.add(cancel)
        self._attempts[digest] = cancel
        try:
            return await attempt
        except CancelledError:
            raise NeighbourLost(f"node {target or self.name} went away, or the input was placed elsewhere") from None
        finally:
            watchers.discard(cancel)
            if self._attempts.get(digest) is cancel:
                del self._attempts[digest]

    async def _obtain_here(self, ref: InputRef, deadline: float, signer: RunSigner) -> Obtained:
        """The input ``ref`` from this node's own producer (:meth:`_request_here`), computed here if
        need be; errors as :meth:`ResultClient.obtain` raises them."""
        asked = self._request_here(ref.digest, ref.program, signer)
        if deadline < math.inf:
            asked.addTimeout(max(0.0, deadline - self.clock.seconds()), self.clock)
        try:
            status = await asked
        except DeferredTimeout:
            raise StillRunning(f"{ref.prefix} was still running here at the deadline") from None
        raise_for(status, ref.prefix)  # (a request of its own is never answered "running")
        how = STORED if status.stored else "computed"
        if status.content:
            return Obtained(status.content, how)
        served = await self.store.get(ref.digest, ref.program)
        if isinstance(served, FileSegments):
            return Obtained(b"", how, served.spooled)
        if served is None:
            raise IcnError(f"{self.name}: {ref.prefix} is ready, but no longer in its result store")
        return Obtained(served.content, how)

    def _move_input(self, digest: str) -> None:
        """The input result ``digest`` is placed elsewhere now: the attempt under way is ended, so
        that the next one asks its new node."""
        cancel = self._attempts.get(digest)
        if cancel is not None:
            cancel()

    def neighbour_lost(self, address: str) -> None:
        """``address`` went away: the inputs being obtained from it are placed again at once."""
        for cancel in list(self._watching.pop(address, ())):
            cancel()

    def _peer_closed(self, peer: _Peer) -> None:
        log.info("event=peer_face_closed node=%s peer=%s", self.name, peer.address)
        self._peers.forget(peer)
        self.neighbour_lost(peer.address)

    def _give_up(self) -> float:
        """In auto mode, how long to wait for a neighbour before routing around it."""
        return self.clock.seconds() + max(2.0, 3 * self.config.icn.interest_lifetime_ms / 1000.0)

    def _placement(self, item: Installed, index: int, avoid: frozenset[str]) -> str:
        if self.placer is not None:
            target = self.placer(item, index, avoid)
        else:  # static mode: where the delegator placed it last (it may have placed it again)
            target = (self.function(item.spec.digest) or item).input_nodes[index]
        return "" if not target or self.identity.is_me(target) else target

    def _input_failed(self, failure: Failure, digest: str, index: int) -> None:
        reason = failure.getErrorMessage()
        if not failure.check(SflowError):
            log.error("event=input_crashed digest=%s", digest, exc_info=failure.value)
        self._inputs.pop((digest, index), None)
        item = self.function(digest)
        # Where the failure began: the function upstream that failed (as its node said), or, when
        # the input could not be had at all, this function, which cannot run without it.
        origin = failure.value.failure if isinstance(failure.value, FunctionFailed) else None
        if origin is None and item is not None:
            ref = item.spec.inputs[index]
            origin = FunctionFailure(int(item.spec.task), self.name,
                                     f"its input from function {ref.pred} could not be had: {reason}")
        actions = self.producer.on_input_failed(digest, index, reason, self.clock.seconds(), origin)
        if item is not None:
            self._apply(item, actions)

    def _peer(self, address: str) -> Deferred[_Peer]:
        """The face toward ``address``, connecting (again) when there is none or it closed."""
        return self._peers.get(address)

    def _open_peer(self, address: str) -> Deferred[_Peer]:
        def added(face: Face) -> _Peer:
            endpoint = Endpoint(face, self.clock)
            client = ResultClient(endpoint, self.clock, self.secret, lifetime_ms=self.client.lifetime_ms,
                                  requester=self.client.requester, spooler=self._spooler)
            peer = _Peer(address, face, client)
            endpoint.closed.addCallback(lambda _: self._peer_closed(peer))
            log.info("event=peer_face node=%s peer=%s", self.name, address)
            return peer

        def failed(failure: Failure) -> Failure:
            return Failure(IcnError(f"cannot reach node {address}: {failure.getErrorMessage()}"))

        return self._connect_peer(address).addCallbacks(added, failed)

    # Execution ---------------------------------------------------------------------------------

    def _start(self, item: Installed, slot: int) -> None:
        """Run ``item`` on vCPU ``slot``; when it ends, the slot goes to the next function waiting."""
        self._waiting.pop(item.spec.digest, None)
        d = Deferred.fromCoroutine(self._execute(item, slot))
        d.addErrback(self._execute_crashed, item)
        d.addBoth(lambda _: self._slot_free(slot))

    def _slot_free(self, slot: int) -> None:
        nxt = self.slots.release(slot)
        if nxt is not None:
            self._start(*nxt)
        self._changed()

    async def _execute(self, item: Installed, slot: int) -> None:
        spec = item.spec
        digest = spec.digest
        root: Path | None = None
        result: ExecResult | None = None
        reason = ""
        try:
            # A new directory, named by this process (nodes that share a work directory, NFS
            # homes, keep out of each other's way) and made ahead of need.
            root = self.scratch.take()
            inputs = [(ref, self._inputs.pop((digest, index))) for index, ref in enumerate(spec.inputs)]
            if all(got.spooled is None for _, got in inputs) and \
                    sum(len(got.content) for _, got in inputs) <= STAGE_HERE_BYTES:
                _stage_inputs(root, inputs)  # a few small files into the page cache: less than a thread hop
            else:
                await self.store.run(_stage_inputs, root, inputs)
            request = ExecRequest(
                job_id=item.job_id,
                run=f"icn:{digest}",
                task_id=int(spec.task),
                cmd=spec.cmd,
                workdir=root,
                files={int(k): v for k, v in spec.file_args().items()},
                values={int(k): v for k, v in spec.values},
                outputs=spec.outputs,
                docker_image=spec.image,
                docker_tar=item.docker_tar,
                cpus=None,
                timeout=self.config.node.function_timeout,
            )
            # Logged once the function is on its way (the executor starts it before it returns):
            # a log line costs up to 0.1 ms on a busy CPU, and every function of a chain waits on it.
            started = self.executor.run(request)
            log.info("event=function_start node=%s task=%d vcpu=%d digest=%s", self.name, spec.task, slot, digest[:16])
            result = await started
            if result.ok:
                reason = _check_remote(root, spec.remote)
            else:
                reason = result.reason
            if not reason:
                size = sum(job_file(root, path).stat().st_size for path in spec.outputs)
                if size > STREAM_THRESHOLD:
                    # a large result goes into the store from its files, off the reactor (each file
                    # opened beneath the job directory, as small ones are)
                    spool = self.store.spool(digest)
                    made = [(path, job_file(root, path)) for path in spec.outputs]
                    self.store.added(digest, await self.store.run(_spool_outputs, spool, made, root))
                elif size > STAGE_HERE_BYTES:
                    self.store.put(digest, spec.program, await self.store.run(_bundle_outputs, root, spec.outputs))
                else:
                    self.store.put(digest, spec.program, _bundle_outputs(root, spec.outputs))
                self._remember(digest)
        except (OSError, UnsafePath, SflowError) as exc:
            reason = f"cannot run the function: {exc}"
        finally:
            if root is not None:
                self.scratch.give_back(root)
        ok = not reason
        failure = None if ok else FunctionFailure(
            int(spec.task), self.name, reason,
            result.exit_status if result is not None else None,
            result.stderr_tail if result is not None else "",
        )
        self.counters["executed" if ok else "failed"] += 1
        now = self.clock.seconds()
        for run, inst in self.installed.get(digest, {}).items():
            self._event(run, {
                "task": int(inst.spec.task), "kind": "executed" if ok else "failed", "node": self.name,
                "vcpu": slot, "where": result.where if result is not None else "", "reason": reason,
                "start": result.started if result is not None else now,
                "finish": result.finished if result is not None else now,
            })
        # The end, with how long it ran (a user reading the log needs no arithmetic over two lines):
        # its record is made now, so that it bears the time of the end, and written once those
        # waiting for the result are answered (see function_start).
        seconds = result.finished - result.started if result is not None else 0.0
        if ok:
            end = deferred_log.record(log, logging.INFO, "event=function_end node=%s task=%d ok=True seconds=%.3f",
                                      self.name, spec.task, seconds)
        else:
            end = deferred_log.record(log, logging.WARNING,
                                      "event=function_end node=%s task=%d ok=False seconds=%.3f reason=%s",
                                      self.name, spec.task, seconds, reason)
        try:
            self._apply(item, self.producer.on_executed(digest, ok, reason, now, failure))
        finally:
            deferred_log.write(log, end)

    def _execute_crashed(self, failure: Failure, item: Installed) -> None:
        log.error("event=execute_crashed digest=%s", item.spec.digest, exc_info=failure.value)
        reason = f"internal error: {failure.getErrorMessage()}"
        self._apply(item, self.producer.on_executed(item.spec.digest, False, reason, self.clock.seconds(),
                                                    FunctionFailure(int(item.spec.task), self.name, reason)))

    # Control -----------------------------------------------------------------------------------

    def _on_ctl(self, interest: Interest) -> Data | None:
        name = interest.name
        if len(name) < 3:
            return None
        verb = name[2].value.decode("ascii", "replace")
        now = self.clock.seconds()
        if verb == "status":
            verdict = self.guard.check_cluster_request(interest, now)
        else:
            verdict = self.guard.check_run_request(interest, now)
        if not verdict.ok:
            self.counters["refused"] += 1
            log.info("event=control_refused verb=%s reason=%s", verb, verdict.reason.replace(" ", "_"))
            return None
        if verb == "status":
            return self._control_answer(name, self.status())
        run_key = verdict.run_key
        if run_key is None:  # a run request's verdict names its key
            return None
        if verb == "install":
            return self._install(interest, run_key)
        if verb == "route":
            return self._transit_routes(interest)
        if verb == "end" and len(name) >= 4:
            return self._end(name, run_key)
        if verb == "start" and len(name) >= 4:
            return self._start_run(interest, run_key)
        if verb == "events" and len(name) >= 5:
            run = name[3].value.decode("ascii", "replace")
            if run != run_key.run:
                return self._control_answer(name, {"events": [], "more": False, "error": "key of another run"})
            page = name[4].value.decode("ascii", "replace")
            events = self._runs.get(run, [])
            start = int(page) * EVENTS_PER_PAGE if page.isdigit() else 0
            body = {"events": events[start:start + EVENTS_PER_PAGE], "more": start + EVENTS_PER_PAGE < len(events)}
            return self._control_answer(name, body)
        return None

    def _install(self, interest: Interest, run_key: RunKey) -> Data:
        """A batch of functions, whole or (too large for one Interest) in parts: :mod:`sflow.sfc.install`."""
        try:
            raw = msgpack.unpackb(interest.app_parameters or b"", raw=False)
            if isinstance(raw, dict):
                added = self.reassembly.add(decode_part(raw), self.clock.seconds())
                if added.batch is None:
                    return self._control_answer(interest.name, {"ok": True, "received": added.received,
                                                                "of": added.count})
                raw = msgpack.unpackb(added.batch, raw=False)
            if not isinstance(raw, list):
                raise ProtocolError("install: expected a list of functions")
            items = [installed_from_wire(entry) for entry in raw]
            for item in items:
                if item.run != run_key.run:
                    raise ProtocolError(f"install: function {item.spec.task} is of run {item.run!r}, "
                                        f"the request of run {run_key.run!r}")
        except (ValueError, msgpack.UnpackException, ProtocolError) as exc:
            log.warning("event=install_rejected error=%s", exc)
            return self._control_answer(interest.name, {"ok": False, "error": str(exc)})
        _remember_key(self._run_keys, run_key.run, run_key)
        new = [(item, entry) for item, entry in zip(items, raw) if self._register(item)]
        if new:  # (kept as received: encoding them again cost more than reading them)
            self.store.save_functions([item for item, _ in new], [entry for _, entry in new]).addCallback(_not_saved)
        log.info("event=installed node=%s functions=%d", self.name, len(items))
        answer: dict[str, Any] = {"ok": True, "count": len(items)}
        if self.placer is None:  # static mode: what is held here, for the delegator's start
            answer["held"] = [Held.of(self.holds(item.spec.digest),
                                      [ref.digest in self.store for ref in item.spec.inputs]).to_wire()
                              for item in items]
        return self._control_answer(interest.name, answer)

    def _start_run(self, interest: Interest, run_key: RunKey) -> Data:
        """The delegator starts functions of its run (static mode, once it knows an END result
        must be made; :mod:`sflow.delegator.needed`): each one named (by result digest) that is
        installed here for the run and neither stored nor under way begins now, as a compute
        request would begin it — its inputs are asked for now rather than when the request from
        END reaches this node — but no request is held for it: its consumers ask for it as ever,
        and find it under way or stored.

        Their inputs are asked for in the job's order, :data:`START_WINDOW` functions at a time:
        another one's as each of those has its inputs, or fails (:meth:`_ask_unasked`). Every
        node asking for all its functions' inputs at once made a storm of requests at the start
        of a run, which every node took while the first function ran (a chain's head took tens
        of milliseconds a hop). The window (one per run) never stalls a run: the earliest of its
        functions in the job's order that has not ended has its inputs made, and every one
        before it on its node has ended (each node's are in that order), so it is among those
        asked for, or the next."""
        name = interest.name
        run = name[3].value.decode("ascii", "replace")
        if run != run_key.run:
            return self._control_answer(name, {"ok": False, "error": "key of another run"})
        try:
            digests = msgpack.unpackb(interest.app_parameters or b"", raw=False)
            if not isinstance(digests, list) or not all(isinstance(d, bytes) and len(d) == 32 for d in digests):
                raise ValueError("expected a list of 32-octet result digests")
        except (ValueError, msgpack.UnpackException) as exc:
            log.warning("event=start_rejected run=%s error=%s", run, exc)
            return self._control_answer(name, {"ok": False, "error": f"start: {exc}"})
        now = self.clock.seconds()
        started = 0
        for raw in digests:
            digest = raw.hex()
            item = self.installed.get(digest, {}).get(run)
            if item is None or digest in self.store or digest in self.producer.runs:
                continue
            actions = self.producer.on_request(digest, now, known=True, stored=False, n_inputs=len(item.spec.inputs))
            self._arrived(digest)
            self._apply(item, [action for action in actions if isinstance(action, Execute)])
            obtains = [action for action in actions if isinstance(action, Obtain)]
            if obtains:
                self._unasked.setdefault(run, deque()).append((item, obtains))
                self._waiting[digest] = _UNASKED
            started += 1
        self._ask_unasked()
        if started:
            self.counters["started"] += started
            self._changed()
        log.info("event=run_started node=%s run=%s functions=%d", self.name, run, started)
        return self._control_answer(name, {"ok": True, "started": started})

    def _ask_unasked(self) -> None:
        """Ask for the inputs of the next functions each run's start began, while fewer than
        :data:`START_WINDOW` of those asked for wait for theirs (a window per run: one run's
        functions never wait behind another's)."""
        if self._releasing or not self._unasked:
            return  # (a call from within the loop below, which goes on; or nothing to ask for)
        self._releasing = True
        try:
            awaiting = self.producer.awaiting
            for run, unasked in list(self._unasked.items()):
                asking = self._start_asking.setdefault(run, set())
                while unasked:
                    asking.intersection_update(awaiting)
                    if len(asking) >= START_WINDOW:
                        break
                    item, obtains = unasked.popleft()
                    digest = item.spec.digest
                    if digest not in awaiting:
                        continue  # it failed meanwhile, or was forgotten
                    asking.add(digest)
                    self._waiting.pop(digest, None)
                    self._ask_inputs(item, obtains)
                if not unasked:
                    del self._unasked[run]
                    del self._start_asking[run]
        finally:
            self._releasing = False

    def _end(self, name: Name, run_key: RunKey) -> Data:
        """The delegator ends its run: the run's key is refused from now on (a request captured
        during the run cannot be replayed), and so are the requests it signed."""
        run = name[3].value.decode("ascii", "replace")
        if run != run_key.run:
            return self._control_answer(name, {"ok": False, "error": "key of another run"})
        self.guard.end(run, run_key.not_after_ms)
        self.guard.forget_expired(self.clock.seconds())
        self._run_keys.pop(run, None)
        for digest, key in list(self._request_keys.items()):
            if key.run == run:
                del self._request_keys[digest]
        log.info("event=run_ended node=%s run=%s", self.name, run)
        return self._control_answer(name, {"ok": True})

    def _signer_for(self, item: Installed) -> RunSigner:
        """The run signer of this node's requests for ``item``'s inputs: the key of the last
        request for it (after a restart the only one known), else the key it was installed with."""
        key = self._request_keys.get(item.spec.digest) or self._run_keys.get(item.run)
        if key is None:
            raise IcnError(f"no current key for run {item.run}: its delegator must install it again")
        return RunSigner.of(key, self.secret)

    def _transit_routes(self, interest: Interest) -> Data:
        """Static mode over a multi-hop topology: the delegator routes results that cross this node
        toward the next node on their path (``[[prefix URI, next node's ICN address], …]``), so
        that Interests and Data go hop by hop and this node's content store sees them."""
        try:
            raw = msgpack.unpackb(interest.app_parameters or b"", raw=False)
            if not isinstance(raw, list) or not all(isinstance(r, list) and len(r) == 2 for r in raw):
                raise ProtocolError("route: expected a list of [prefix, next hop] pairs")
            routes = [(Name.from_uri(str(prefix)), str(target)) for prefix, target in raw]
        except (ValueError, msgpack.UnpackException, ProtocolError) as exc:
            log.warning("event=route_rejected error=%s", exc)
            return self._control_answer(interest.name, {"ok": False, "error": str(exc)})
        for prefix, target in routes:
            Deferred.fromCoroutine(self._route(prefix, target)).addErrback(self._transit_failed, prefix, target)
        log.info("event=transit_routes node=%s routes=%d", self.name, len(routes))
        return self._control_answer(interest.name, {"ok": True, "count": len(routes)})

    async def _route(self, prefix: Name, target: str) -> None:
        """Make this node's FIB send ``prefix`` toward the next hop ``target``, on a forwarder face
        (so that Interests and Data cross this node's forwarder and content store)."""
        face = await self._hops.get(target)
        key = prefix.wire
        old = self._transit.get(key)
        if old == face.face_id:
            return
        if old is not None and (old_face := self.forwarder.faces.get(old)) is not None:
            self.forwarder.remove_route(prefix, old_face)
        self.forwarder.add_route(prefix, face)
        self._transit[key] = face.face_id

    def _open_hop(self, address: str) -> Deferred[Face]:
        def added(face: Face) -> Face:
            if self.forwarder.faces.get(face.face_id) is not face:
                self.forwarder.add_face(face)
            log.info("event=hop_face node=%s next=%s face=%d", self.name, address, face.face_id)
            return face

        def failed(failure: Failure) -> Failure:
            return Failure(IcnError(f"cannot reach node {address}: {failure.getErrorMessage()}"))

        return self._connect_peer(address).addCallbacks(added, failed)

    def _transit_failed(self, failure: Failure, prefix: Name, target: str) -> None:
        log.warning("event=transit_route_failed prefix=%s next=%s error=%s", prefix, target, failure.getErrorMessage())

    def _register(self, item: Installed) -> bool:
        """Know ``item`` (and keep events for its run); True when it is new to this node, or
        installed again with other input nodes (the delegator placed an input's function again,
        its node being lost): inputs being obtained from a node no longer named are asked of the
        new one at once."""
        runs = self.installed.setdefault(item.spec.digest, {})
        if not runs:
            self.generation += 1
            for digest in item.spec.input_digests:
                self._needers.setdefault(digest, set()).add(item.spec.digest)
        old = runs.get(item.run)
        new = old != item
        if new:
            runs[item.run] = item
        if old is not None and new:
            for ref, before, after in zip(item.spec.inputs, old.input_nodes, item.input_nodes):
                if before != after:
                    log.info("event=input_moved node=%s task=%d input=%d from=%s to=%s", self.name, item.spec.task,
                             ref.pred, before, after)
                    self._move_input(ref.digest)
        self._runs.setdefault(item.run, [])
        while len(self._runs) > MAX_RUNS:
            del self._runs[next(iter(self._runs))]
        return new

    def function(self, digest: str) -> Installed | None:
        """The function whose result has this digest, as the latest run installed it: runs share
        the spec, but an older run's input placements may name nodes that are gone (a local
        cluster's ports change from run to run)."""
        return next(reversed(self.installed.get(digest, {}).values()), None)

    def functions(self) -> dict[str, Installed]:
        """Every installed function, by result digest."""
        return {digest: item for digest in self.installed if (item := self.function(digest)) is not None}

    def _event(self, run: str, event: dict[str, Any]) -> None:
        events = self._runs.get(run)
        if events is not None:
            events.append(event)

    # This node's state, for its hellos and its placer ------------------------------------------

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _arrived(self, digest: str) -> None:
        if self.on_arrival is not None:
            self.on_arrival(digest)

    def _remember(self, digest: str) -> None:
        """A result this node now holds (it made it, or obtained it as an input)."""
        self._arrived(digest)
        key = short(digest)
        self._recent.pop(key, None)
        self._recent[key] = None
        while len(self._recent) > HELD_MEMORY:
            self._recent.popitem(last=False)

    def holds(self, digest: str) -> bool:
        """Whether the result is here: in the result store or the content store."""
        if digest in self.store:
            return True
        asking = self._cs_probes.get(digest)
        if asking is None:
            item = self.function(digest)
            if item is None:
                return False
            asking = self._cs_probes[digest] = make_interest(item.spec.prefix, can_be_prefix=True)
        return self.forwarder.cs.find(asking, self.clock.seconds()) is not None

    def working_on(self, digest: str) -> bool:
        """Whether the function is under way here (obtaining its inputs, queued or running)."""
        run = self.producer.runs.get(digest)
        return run is not None and run.phase != FAILED

    def local_advert(self, waiting_on: str = "") -> Advert:
        """This node's state; the functions waiting for the result ``waiting_on``, directly or
        through others waiting here, are left out of ``pending`` (they cannot run before it)."""
        awaiting = self.producer.awaiting
        pending = len(awaiting)
        if waiting_on and awaiting:
            pending -= self._waiting_behind(waiting_on, awaiting)
        icn = self.config.icn
        return Advert(self.name, self.slots.count, self.slots.free, self.slots.waiting, icn.speed, icn.bandwidth,
                      pending)

    def _waiting_behind(self, digest: str, awaiting: set[str]) -> int:
        """How many of the functions here that wait for inputs wait for the result ``digest``,
        directly or through others that wait here (the rest of a chain placed here), counting at
        most :data:`WAITING_BEHIND_MAX` of them: a placement costs the same however long the
        chain. Left in ``pending``, the rest of a chain made each placement of its next
        predecessor look like work competing with it, and a chain crossed nodes at every step."""
        behind: set[str] = set()
        stack = [digest]
        while stack and len(behind) < WAITING_BEHIND_MAX:
            for needer in self._needers.get(stack.pop(), ()):
                if needer in awaiting and needer not in behind:
                    behind.add(needer)
                    stack.append(needer)
        return min(len(behind), WAITING_BEHIND_MAX)

    def advert(self) -> Advert:
        """What this node's hellos say: its state, the functions under way and the results it
        made or obtained lately."""
        base = self.local_advert()
        working = frozenset(short(d) for d in self.producer.working())
        return Advert(base.node, base.vcpus, base.free, base.queue, base.speed, base.bandwidth, base.pending,
                      working, frozenset(self._recent))

    def status(self) -> dict[str, Any]:
        return {
            "node": self.name,
            "vcpus": self.vcpus,
            "running": self.slots.busy,
            "queued": self.slots.waiting,
            "pending": self.producer.queued(),
            # started by a start, their inputs not yet asked for (see _start_run)
            "start_unasked": sum(len(unasked) for unasked in self._unasked.values()),
            "functions": len(self.installed),
            "results": len(self.store),
            "result_bytes": self.store.total,
            "counters": dict(self.counters),
            "forwarder": {**self.forwarder.counters.as_dict(), **self.forwarder.limit_counters.as_dict()},
            "install_parts": dict(self.reassembly.counters, pending=len(self.reassembly)),
        }


class _StoreSpooler:
    """Large inputs go into this node's result store as they arrive (it holds them from then on)."""

    def __init__(self, store: ResultStore) -> None:
        self.store = store

    def open(self, prefix: Name) -> Spool | Spooled:
        parsed = parse_result_name(prefix)
        if parsed is None:
            raise ProtocolError(f"{prefix} is not the name of a result")
        spooled = self.store.spooled(parsed[1])
        return spooled if spooled is not None else self.store.spool(parsed[1])

    def finish(self, prefix: Name, spool: Spool) -> Deferred[Spooled]:
        parsed = parse_result_name(prefix)
        assert parsed is not None

        def added(spooled: Spooled) -> Spooled:
            self.store.added(parsed[1], spooled)
            return spooled

        d: Deferred[Spooled] = self.store.run(spool.finish)
        return d.addCallback(added)


def _spool_outputs(spool: Spool, made: list[tuple[str, Path]], root: Path) -> Spooled:
    """The bundle of a function's outputs written into the store (blocking)."""
    try:
        write_bundle(made, spool.write, opener=functools.partial(open_beneath, root))
        return spool.finish()
    except BaseException:
        spool.abort()
        raise


def _stage_inputs(root: Path, inputs: list[tuple[InputRef, Obtained]]) -> None:
    """The function's inputs written into its new, empty working directory ``root`` (blocking)."""
    for ref, got in inputs:
        if got.spooled is not None:  # a large one: copied from its file
            _extract_input(got.spooled, root, ref.paths, ref.pred)
            continue
        files = decode_bundle(got.content)
        for path in ref.paths:
            if path not in files:
                raise ProtocolError(f"input from task {ref.pred} lacks {path}")
            target = job_file(root, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[path])


def _bundle_outputs(root: Path, outputs: tuple[str, ...]) -> bytes:
    """The bundle of a function's (small) outputs (blocking)."""
    return encode_bundle({path: _read_output(root, path) for path in outputs})


def _extract_input(spooled: Spooled, root: Path, paths: tuple[str, ...], pred: int) -> None:
    """A large input's files written into the working directory ``root`` (blocking)."""
    wanted = set(paths)
    with spooled.path.open("rb") as f:
        f.seek(spooled.offset)
        found = extract_bundle(f, spooled.length, lambda p: plain_file(job_file(root, p)) if p in wanted else None)
    missing = wanted - set(found)
    if missing:
        raise ProtocolError(f"input from task {pred} lacks {', '.join(sorted(missing))}")


def _read_output(root: Path, path: str) -> bytes:
    """A declared output's bytes, from a regular file that is inside ``root`` when opened (the
    function, another user, may have swapped a link in after the checks)."""
    with open_beneath(root, job_file(root, path)) as f:
        return f.read()


def _check_remote(root: Path, remote: tuple[tuple[str, str], ...]) -> str:
    for path, digest in remote:
        try:
            with job_file(root, path).open("rb") as f:
                actual = hashlib.file_digest(f, "sha256").hexdigest()
        except (OSError, UnsafePath) as exc:
            return f"$R^{path}: {exc}"
        if actual != digest:
            return f"$R^{path} on the file server differs from the file the job was named with"
    return ""


def _same(status: Status) -> Status:
    return status


def _not_saved(failed: list[tuple[Installed, str]]) -> None:
    """Installed functions that could not be kept for a restart: they still run now."""
    for item, why in failed:
        log.warning("event=function_save_failed task=%d digest=%s error=%s", item.spec.task, item.spec.digest[:16],
                    why)


def _remember_key(keys: OrderedDict[str, RunKey], what: str, key: RunKey) -> None:
    """Keep ``key`` for ``what`` (most recent last), at most :data:`MAX_KEYS`."""
    keys[what] = key
    keys.move_to_end(what)
    while len(keys) > MAX_KEYS:
        keys.popitem(last=False)
