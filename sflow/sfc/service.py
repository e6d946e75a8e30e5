"""The node side of ICN chaining: an embedded forwarder, the producer of function results, and the
consumer of their inputs.

:class:`SfcService` owns a :class:`~sflow.icn.forwarder.Forwarder` (given, so that tests can use
in-process forwarders on ``task.Clock``) and two in-process faces to it: the *producer* face
serves ``/sflow/fn`` (results, compute requests) and ``/sflow/ctl`` (install, events, status); the
*consumer* face expresses the Interests for inputs (a separate face, so that an input produced on
this very node is forwarded to the producer face rather than back where it came from).

A compute request for a function is checked (HMAC with the cluster secret), then handled by the
pure :class:`~sflow.sfc.producer.Producer`: inputs are obtained through the consumer (each routed
toward the node the placement says — the delegator's schedule in ``icn`` mode, the node's own
decision in ``auto`` mode), written into a fresh working directory, the function runs on one of
the node's vCPU slots (:mod:`sflow.sfc.slots`; it waits while all are taken) through the node's
:class:`~sflow.node.execution.Executor` (natively or in Docker), and its declared
outputs become a result bundle in the :class:`~sflow.sfc.store.ResultStore`, served as signed
segments. Requests held while the function runs are answered when it ends, or with ``running``
shortly before their Interest would expire, so that the consumer asks again.

Events (executed here on vCPU slot k, found in the store, input found in a cache) are kept per run
for the delegator's report (``/sflow/ctl/events/<run>/<page>``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgpack
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from sflow.config import Config
from sflow.errors import IcnError, ProtocolError, SflowError
from sflow.icn.app import Endpoint, HandlerResult
from sflow.icn.face.base import Face, FaceScope
from sflow.icn.face.inprocess import linked_faces
from sflow.icn.forwarder import Forwarder
from sflow.icn.name import PARAMETERS_SHA256_DIGEST, Name
from sflow.icn.packet import Data, Interest, make_data
from sflow.model.paths import UnsafePath
from sflow.node.execution import ExecRequest, ExecResult, job_file
from sflow.node.peers import PeerPool
from sflow.sfc.bundle import READY, RUNNING, FunctionFailure, Status, decode_bundle, encode_bundle, encode_status
from sflow.sfc.consumer import FunctionFailed, Obtained, ResultClient, StillRunning, absent_data, authenticated_interest, cluster_signer
from sflow.sfc.names import CTL_PREFIX, FN_PREFIX, InputRef, Installed, installed_from_wire, parse_result_name
from sflow.sfc.producer import Execute, Hold, Obtain, Producer, Reply, ReplyAll
from sflow.sfc.slots import VcpuSlots
from sflow.sfc.store import ResultStore

log = logging.getLogger(__name__)

#: a held compute request is answered "running" when this fraction of its lifetime has passed
HOLD_FRACTION = 0.75
#: events per page of /sflow/ctl/events/<run>/<page>
EVENTS_PER_PAGE = 40
#: runs whose events are kept
MAX_RUNS = 64
MAX_INSTALL_PARAMS = 7000


class FunctionExecutor(Protocol):
    def run(self, request: ExecRequest) -> Deferred[ExecResult]: ...


#: open (or reuse) a face toward another node's forwarder, by its ICN address (``host:port``)
PeerConnector = Callable[[str], Deferred[Face]]

#: autonomous mode: where input ``index`` of ``item`` should run ("" = here); ``avoid`` are
#: addresses that did not answer
Placer = Callable[[Installed, int, frozenset[str]], str]


@dataclass(slots=True)
class _Held:
    interest: Interest
    deferred: Deferred[HandlerResult]
    timer: Any


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
    ) -> None:
        self.clock = clock
        self.forwarder = forwarder
        self.config = config
        self.secret = secret
        self.executor = executor
        self.workdir = workdir
        self.store = store
        self.name = name
        self.vcpus = vcpus
        self.slots: VcpuSlots[Installed] = VcpuSlots(vcpus)
        self.placer = placer
        self._connect_peer = connect_peer
        self.signer = cluster_signer(secret)
        self.producer = Producer()
        self.installed: dict[str, dict[str, Installed]] = {}
        self._held: dict[str, list[_Held]] = {}
        #: events by run, for the runs installed most recently (at most MAX_RUNS)
        self._runs: dict[str, list[dict[str, Any]]] = {}
        self._peers: PeerPool[Face] = PeerPool(
            self._open_peer,
            lambda face: not face.closed and self.forwarder.faces.get(face.face_id) is face,
        )
        self._routes: dict[bytes, int] = {}
        #: routes the delegator installed for results that cross this node (static mode, multi-hop)
        self._transit: set[bytes] = set()
        #: inputs being obtained through each route; a route is removed when none is left
        self._route_users: dict[bytes, int] = {}
        self._exec_count = 0
        self._inputs: dict[tuple[str, int], bytes] = {}
        #: why a function is still waiting for an input (told to consumers that ask meanwhile)
        self._waiting: dict[str, str] = {}
        self.counters = {"executed": 0, "failed": 0, "store_hits": 0, "refused": 0, "input_cache_hits": 0,
                         "compute_requests": 0}

        fwd_side, app_side = linked_faces(clock, scope=FaceScope.LOCAL, names=("inproc://sfc-fwd", "inproc://sfc"))
        forwarder.add_face(fwd_side)
        self.producer_face = fwd_side
        self.endpoint = Endpoint(app_side, clock, data_signer=self.signer)
        forwarder.add_route(FN_PREFIX, fwd_side)
        forwarder.add_route(CTL_PREFIX, fwd_side)
        self.endpoint.route(FN_PREFIX, self._on_fn, register=False)
        self.endpoint.route(CTL_PREFIX, self._on_ctl, register=False)
        self.consumer_endpoint = Endpoint.attach(forwarder)
        self.client = ResultClient(
            self.consumer_endpoint, clock, secret, lifetime_ms=config.icn.interest_lifetime_ms
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
        served = self.store.get(digest, program)
        if served is not None:
            if interest.can_be_prefix and len(name) == 4:  # the first Interest of a fetch (no cache had it)
                self._store_hit(digest, self.installed.get(digest, {}))
            return served.answer(interest)
        if interest.can_be_prefix and len(name) == 4:
            return absent_data(name, self.signer)
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
        if not authenticated_interest(interest, self.secret):
            # Unauthenticated: it may only learn whether the result exists; nothing runs.
            self.counters["refused"] += 1
            log.info("event=compute_refused name=%s reason=not_authenticated", interest.name)
            if digest in self.store:
                return self._status(interest, Status(READY, node=self.name))
            return absent_data(interest.name, self.signer)
        runs = self.installed.get(digest, {})
        item = self.function(digest)
        actions = self.producer.on_request(
            digest, now, known=item is not None, stored=digest in self.store,
            n_inputs=len(item.spec.inputs) if item is not None else 0,
        )
        answer: HandlerResult | Deferred[HandlerResult] = None
        for action in actions:
            if isinstance(action, Reply):
                if action.state == READY:
                    self._store_hit(digest, runs)
                    served = self.store.get(digest, program)
                    answer = self._status(interest, Status(
                        READY, node=self.name, version=served.base[-1].to_number() if served else 0,
                        segments=served.count if served else 0))
                else:
                    answer = self._status(interest, Status(action.state, node=self.name, reason=action.reason,
                                                           failure=action.failure))
            elif isinstance(action, Hold):
                answer = self._hold(interest, digest)
            elif item is not None:
                self._perform(item, action)
        return answer

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

    def _hold_expired(self, digest: str, held: _Held) -> None:
        waiting = self._held.get(digest, [])
        if held in waiting:
            waiting.remove(held)
        elapsed = self.producer.elapsed(digest, self.clock.seconds())
        reason = self._waiting.get(digest, "")
        held.deferred.callback(self._status(held.interest, Status(RUNNING, node=self.name, elapsed=elapsed,
                                                                  reason=reason)))

    def _reply_all(self, action: ReplyAll, digest: str) -> None:
        self._waiting.pop(digest, None)
        status = Status(action.state, node=self.name, reason=action.reason, failure=action.failure)
        for held in self._held.pop(digest, []):
            if held.timer is not None and held.timer.active():
                held.timer.cancel()
            held.deferred.callback(self._status(held.interest, status))

    def _perform(self, item: Installed, action: Obtain | Execute | ReplyAll) -> None:
        digest = item.spec.digest
        if isinstance(action, Obtain):
            d = Deferred.fromCoroutine(self._obtain_input(item, action.index))
            d.addErrback(self._input_failed, digest, action.index)
        elif isinstance(action, Execute):
            slot = self.slots.acquire(item)
            if slot is None:
                log.info("event=function_waits_for_vcpu node=%s task=%d", self.name, item.spec.task)
                self._waiting[digest] = f"waiting for one of the node's {self.slots.count} vCPUs"
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
        key = ref.prefix.wire
        self._route_users[key] = self._route_users.get(key, 0) + 1
        try:
            got = await self._obtain_routed(item, index, ref)
        finally:
            self._route_users[key] -= 1
            if not self._route_users[key]:
                del self._route_users[key]
                self._unroute(ref.prefix)
        self._waiting.pop(item.spec.digest, None)
        if got.how == "cache":
            self.counters["input_cache_hits"] += 1
            for run, inst in self.installed.get(item.spec.digest, {}).items():
                self._event(run, {"task": int(inst.spec.inputs[index].pred), "kind": "cache", "node": self.name,
                                  "time": self.clock.seconds()})
        self._inputs[(item.spec.digest, index)] = got.content
        self._apply(item, self.producer.on_input(item.spec.digest, index))

    async def _obtain_routed(self, item: Installed, index: int, ref: InputRef) -> Obtained:
        """Route the input's name to where it should come from and obtain it, again and again
        until the function's timeout: each attempt is bounded, so that a node that went away and
        came back is routed to afresh, and in autonomous mode a neighbour that stopped answering
        is routed around."""
        deadline = self.clock.seconds() + (self.config.node.function_timeout or math.inf)
        avoid: set[str] = set()
        backoff = self.client.min_backoff
        while True:
            target = self._placement(item, index, frozenset(avoid))
            try:
                await self._route(ref.prefix, target)
                return await self.client.obtain(ref.prefix, min(deadline, self._give_up()))
            except FunctionFailed:
                raise
            except StillRunning:
                if self.clock.seconds() >= deadline:
                    raise
            except SflowError as exc:
                if self.clock.seconds() >= deadline:
                    raise
                if self.placer is not None and target:
                    log.warning("event=neighbour_unresponsive node=%s neighbour=%s input=%s error=%s",
                                self.name, target, ref.prefix, exc)
                    avoid.add(target)
                    continue
                log.info("event=input_retry node=%s input=%s error=%s", self.name, ref.prefix, exc)
                self._waiting[item.spec.digest] = f"waiting for input from task {ref.pred}: {exc}"
                await task.deferLater(self.clock, backoff)
                backoff = min(self.client.max_backoff, backoff * 2)

    def _give_up(self) -> float:
        """In auto mode, how long to wait for a neighbour before routing around it."""
        return self.clock.seconds() + max(2.0, 3 * self.config.icn.interest_lifetime_ms / 1000.0)

    def _placement(self, item: Installed, index: int, avoid: frozenset[str]) -> str:
        if self.placer is not None:
            return self.placer(item, index, avoid)
        target = item.input_nodes[index]
        return "" if target == self.name else target

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

    async def _route(self, prefix: Name, target: str) -> None:
        """Make the FIB send ``prefix`` toward ``target`` ("" = this node's producer)."""
        if target:
            face = await self._peer(target)
        else:
            face = self.producer_face
        key = prefix.wire
        old = self._routes.get(key)
        if old == face.face_id:
            return
        if old is not None:
            old_face = self.forwarder.faces.get(old)
            if old_face is not None:
                self.forwarder.remove_route(prefix, old_face)
        self.forwarder.add_route(prefix, face)
        self._routes[key] = face.face_id

    def _unroute(self, prefix: Name) -> None:
        if prefix.wire in self._transit:
            return  # results of other nodes still cross this one
        face_id = self._routes.pop(prefix.wire, None)
        face = self.forwarder.faces.get(face_id) if face_id is not None else None
        if face is not None:
            self.forwarder.remove_route(prefix, face)

    def _peer(self, address: str) -> Deferred[Face]:
        """The face toward ``address``, connecting (again) when there is none or it closed."""
        return self._peers.get(address)

    def _open_peer(self, address: str) -> Deferred[Face]:
        def added(face: Face) -> Face:
            if self.forwarder.faces.get(face.face_id) is not face:
                self.forwarder.add_face(face)
            log.info("event=peer_face node=%s peer=%s face=%d", self.name, address, face.face_id)
            return face

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

    async def _execute(self, item: Installed, slot: int) -> None:
        spec = item.spec
        digest = spec.digest
        self._exec_count += 1
        root = self.workdir / "sfc" / f"{digest[:16]}-{self._exec_count}"
        result: ExecResult | None = None
        reason = ""
        try:
            # A directory left by a node that was killed mid-function must not lend its files.
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            for index, ref in enumerate(spec.inputs):
                files = decode_bundle(self._inputs.pop((digest, index)))
                for path in ref.paths:
                    if path not in files:
                        raise ProtocolError(f"input from task {ref.pred} lacks {path}")
                    target = job_file(root, path)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(files[path])
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
            log.info("event=function_start node=%s task=%d vcpu=%d digest=%s", self.name, spec.task, slot, digest[:16])
            result = await self.executor.run(request)
            if result.ok:
                reason = _check_remote(root, spec.remote)
            else:
                reason = result.reason
            if not reason:
                outputs = {path: job_file(root, path).read_bytes() for path in spec.outputs}
                self.store.put(digest, spec.program, encode_bundle(outputs))
        except (OSError, UnsafePath, SflowError) as exc:
            reason = f"cannot run the function: {exc}"
        finally:
            shutil.rmtree(root, ignore_errors=True)
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
        log.info("event=function_end node=%s task=%d ok=%s reason=%s", self.name, spec.task, ok, reason or "-")
        self._apply(item, self.producer.on_executed(digest, ok, reason, now, failure))

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
        if verb == "status":
            return self._control_answer(name, self.status())
        if not authenticated_interest(interest, self.secret):
            self.counters["refused"] += 1
            log.info("event=control_refused verb=%s reason=not_authenticated", verb)
            return None
        if verb == "install":
            return self._install(interest)
        if verb == "route":
            return self._transit_routes(interest)
        if verb == "events" and len(name) >= 5:
            run = name[3].value.decode("ascii", "replace")
            page = name[4].value.decode("ascii", "replace")
            events = self._runs.get(run, [])
            start = int(page) * EVENTS_PER_PAGE if page.isdigit() else 0
            body = {"events": events[start:start + EVENTS_PER_PAGE], "more": start + EVENTS_PER_PAGE < len(events)}
            return self._control_answer(name, body)
        return None

    def _install(self, interest: Interest) -> Data:
        try:
            raw = msgpack.unpackb(interest.app_parameters or b"", raw=False)
            if not isinstance(raw, list):
                raise ProtocolError("install: expected a list of functions")
            items = [installed_from_wire(entry) for entry in raw]
        except (ValueError, msgpack.UnpackException, ProtocolError) as exc:
            log.warning("event=install_rejected error=%s", exc)
            return self._control_answer(interest.name, {"ok": False, "error": str(exc)})
        for item in items:
            if self._register(item):
                self.store.save_function(item)
        log.info("event=installed node=%s functions=%d", self.name, len(items))
        return self._control_answer(interest.name, {"ok": True, "count": len(items)})

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
            self._transit.add(prefix.wire)
            Deferred.fromCoroutine(self._route(prefix, target)).addErrback(self._transit_failed, prefix, target)
        log.info("event=transit_routes node=%s routes=%d", self.name, len(routes))
        return self._control_answer(interest.name, {"ok": True, "count": len(routes)})

    def _transit_failed(self, failure: Failure, prefix: Name, target: str) -> None:
        log.warning("event=transit_route_failed prefix=%s next=%s error=%s", prefix, target, failure.getErrorMessage())

    def _register(self, item: Installed) -> bool:
        """Know ``item`` (and keep events for its run); True when it is new to this node."""
        runs = self.installed.setdefault(item.spec.digest, {})
        new = item.run not in runs
        if new:
            runs[item.run] = item
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

    def status(self) -> dict[str, Any]:
        return {
            "node": self.name,
            "vcpus": self.vcpus,
            "running": self.producer.running() - self.slots.waiting,
            "queued": self.producer.queued() + self.slots.waiting,
            "functions": len(self.installed),
            "results": len(self.store),
            "result_bytes": self.store.total,
            "counters": dict(self.counters),
            "forwarder": self.forwarder.counters.as_dict(),
        }


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

