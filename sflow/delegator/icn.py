"""ICN dispatch (``--mode icn`` and ``--mode auto``): install the job's functions on the nodes, ask
for each END function's result by name, write the results, and report per function whether it
was executed (and where) or answered from a cache.

* **icn** (static ICN-SFC): every node is told about the functions the schedule gives it, with the
  nodes their inputs are routed to; the delegator asks each END function's node for its result.
* **auto** (autonomous ICN-SFC): every node is told about every function, without placements; the
  delegator picks the END function's node (the fastest estimate from the nodes' advertised state)
  and each node decides where each predecessor runs.

The deadline (``delegator.job_timeout``; 0 = none) bounds the whole job; a failed function fails
the job with its reason.

**Lost nodes.** The delegator watches every node it uses: its forwarder's connection (closed, and
no new one accepted) and, every ``node.heartbeat_interval``, a status Interest (no answer for
``heartbeat_misses`` intervals). A lost node's functions are placed again on the live nodes
(:class:`~sflow.delegator.icn_recovery.IcnRecovery`: static mode with the job's algorithm, and
installed there; auto mode its END functions on the least loaded live node, the nodes placing
the rest themselves) and their results asked for there. The loss and the new placements are
shown as a notice and kept in ``trace.json`` (``events``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import secrets
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
from twisted.internet.defer import CancelledError, Deferred, DeferredList, gatherResults, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.python.failure import Failure

from sflow.config import Config
from sflow.delegator.icn_recovery import Ask, IcnAction, IcnRecovery, Install
from sflow.delegator.needed import must_run
from sflow.delegator.plan import JobPlan, ResultFile, TaskPlacement
from sflow.delegator.recovery import Fail, Placer, Replanned
from sflow.delegator.trace import FAILED, OK, TaskRun, Trace, TraceEvent, attach_trace, failure_of
from sflow.durable import DurableFile, write_durably
from sflow.errors import ExecutionError, FunctionFailure, IcnError, InputError, JobFailed, ProtocolError, SflowError
from sflow.icn.app import Endpoint
from sflow.icn.name import Name
from sflow.icn.packet import make_interest
from sflow.model.paths import job_relative
from sflow.model.infra import VcpuId
from sflow.model.schedule import Schedule
from sflow.model.workflow import Job, TaskId
from sflow.node.fetch import FetchError, fetch_input
from sflow.node.liveness import Heartbeat, Liveness, Lost
from sflow.node.peers import PeerPool
from sflow.sfc.bundle import decode_bundle
from sflow.sfc.bundlefile import Spool, Spooled, extract_bundle
from sflow.sfc.consumer import FunctionFailed, Obtained, ResultClient
from sflow.sfc.hello import reachable_address
from sflow.sfc.freshness import RunKey, RunSigner, TimedClusterSigner
from sflow.sfc.install import Held, batches, entries, held_from_wire, split
from sflow.sfc.names import CTL_PREFIX, FunctionSpec, Installed, build_specs, installed_to_wire, remote_inputs
from sflow.sfc.service import MAX_INSTALL_PARAMS

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int], None]
#: hears of lost nodes and what was placed again (a line for the user)
NoticeCallback = Callable[[str], None]
#: static mode over a multi-hop topology: the next node (ICN address) from one node toward another
NextHop = Callable[[str, str], str]
#: open an endpoint on the forwarder of the node at this ICN address
EndpointConnector = Callable[[str], Deferred[Endpoint]]

EXECUTED = "executed"
CACHE_HIT = "cache hit"
NOT_NEEDED = "not needed"
#: parts of one install transfer in flight at once
PART_WINDOW = 16


@dataclass(frozen=True, slots=True)
class IcnOptions:
    outdir: Path
    algorithm: str
    schedule: Schedule | None
    mode: str = "icn"
    job_timeout: float = 0.0
    lifetime_ms: int = 4000
    #: how often the delegator asks each node for a sign of life, and how many silent intervals
    #: lose it (None: only a closed connection that cannot be opened again loses a node)
    heartbeat: Heartbeat | None = None
    #: the run key's window when there is no job timeout, and the clock skew allowed (seconds)
    request_validity: float = 86400.0
    clock_skew: float = 30.0


class IcnDispatch:
    """One run of one job over ICN. ``run()`` fires with the :class:`Trace` or fails with an
    :class:`~sflow.errors.SflowError`.

    ``placements`` maps each task to the ICN address of its node (static mode), or only the END
    tasks (auto mode); ``nodes`` are all the nodes to install on; ``node_labels`` maps an ICN
    address to the name shown in the trace (the node daemon's address); ``vcpu_names`` maps that
    name to its vCPU ids, in order: a function a node ran on its vCPU slot k is shown on the k-th
    (``vCPU k`` when the node has more slots than the environment names).

    ``placer`` places functions again when a node is lost (on ICN addresses; static mode: the
    job's scheduler, auto mode: END functions on a live node); without one a lost node fails the
    job.
    """

    def __init__(
        self,
        clock: Any,
        secret: bytes,
        job: Job,
        specs: Mapping[TaskId, FunctionSpec],
        placements: Mapping[TaskId, str],
        nodes: Sequence[str],
        connect: EndpointConnector,
        options: IcnOptions,
        results: Sequence[ResultFile],
        *,
        progress: ProgressCallback | None = None,
        run_id: str | None = None,
        node_labels: Mapping[str, str] | None = None,
        vcpu_names: Mapping[str, Sequence[str]] | None = None,
        next_hop: NextHop | None = None,
        placer: Placer | None = None,
        notice: NoticeCallback | None = None,
    ) -> None:
        self.clock = clock
        self.secret = secret
        self.job = job
        self.specs = specs
        self.placements: dict[TaskId, str] = dict(placements)
        self.nodes = tuple(dict.fromkeys(nodes))
        self.connect = connect
        self.options = options
        self.results = tuple(results)
        self.node_labels = node_labels or {}
        self.vcpu_names = vcpu_names or {}
        self.next_hop = next_hop
        self.progress = progress or (lambda event, task: None)
        self.notice = notice or (lambda line: None)
        self.placer = placer
        self.run_id = run_id or secrets.token_hex(4)
        self.endpoints: dict[str, Endpoint] = {}
        #: when each END result arrived (clock time)
        self._obtained_at: dict[TaskId, float] = {}
        # Every request of this run is signed with its run key (sflow.sfc.freshness): valid for the
        # job's timeout at most, and ended on every node when the run is over.
        timeout = options.job_timeout
        validity = min(timeout + options.clock_skew, options.request_validity) if timeout > 0 else options.request_validity
        self.run_key = RunKey.for_run(self.run_id, clock.seconds(), validity, options.clock_skew)
        self._signer = RunSigner.of(self.run_key, secret)
        static = options.mode == "icn"
        self.recovery = IcnRecovery(job, self.placements if static else {t: self.placements[t] for t in job.end_tasks},
                                    self.nodes, placer or _cannot_place, static)
        self._t0 = 0.0
        self._finished = False
        #: the attempt under way to obtain each END result (cancelled when its node is lost)
        self._asking: dict[TaskId, Deferred[Obtained]] = {}
        self._pool: PeerPool[Endpoint] = PeerPool(self._open_again, lambda endpoint: not endpoint.face.closed)
        self._liveness: dict[str, Liveness] = {}
        self._probe: Any = None
        self._events_seen: list[TraceEvent] = []
        self._error: SflowError | None = None
        #: what each function's node holds of it and its inputs (static mode; from the installs)
        self._held: dict[TaskId, Held | None] = {}
        #: whether the nodes were told to start the run's functions (static mode)
        self._started = False

    def run(self) -> Deferred[Trace]:
        return Deferred.fromCoroutine(self._run())

    async def _run(self) -> Trace:
        try:
            return await self._run_job()
        finally:
            await self._end_run()
            self._stop_watching()

    def close(self) -> None:
        """Close the connections to the nodes (once the run is over: none is opened again)."""
        self._stop_watching()
        for endpoint in list(self.endpoints.values()):
            endpoint.close()

    async def _end_run(self) -> None:
        """Tell every node the run is over: its key (and any request captured during the run) is
        refused from now on. Best effort: a node that does not hear it refuses the key when its
        window ends."""
        async def end(node: str, endpoint: Endpoint) -> None:
            try:
                await self._control(endpoint, CTL_PREFIX.append("end", self.run_id), retries=1)
            except SflowError as exc:
                log.warning("event=run_end_unheard node=%s run=%s error=%s", node, self.run_id, exc)

        await gatherResults([Deferred.fromCoroutine(end(n, e)) for n, e in list(self.endpoints.items())],
                            consumeErrors=True)

    async def _run_job(self) -> Trace:
        t0 = self._t0 = self.clock.seconds()
        timeout = self.options.job_timeout
        deadline = t0 + timeout if timeout > 0 else math.inf
        await self._connect_all()
        await self._install_all()
        self._start_probes()
        self._start_run()
        ends = self.job.end_tasks
        try:
            obtained: list[Obtained] = await gatherResults(
                [Deferred.fromCoroutine(self._obtain(tid, deadline)) for tid in ends], consumeErrors=True
            ).addErrback(_first_error)
        except SflowError as exc:
            # A failed run's trace too: what ran where, what failed and why.
            self._stop_watching()
            runs = self._task_runs(t0, {}, await self._events())
            raise attach_trace(exc, self._trace(t0, self.clock.seconds(), runs, (), FAILED, str(exc),
                                                failure_of(exc))) from None
        finally:
            self._stop_watching()
        finished = self.clock.seconds()
        written = await self._write_results(dict(zip(ends, obtained)))
        runs = self._task_runs(t0, dict(zip(ends, obtained)), await self._events())
        for run in runs:
            self.progress("done", run.task)
        return self._trace(t0, finished, runs, written)

    def _stop_watching(self) -> None:
        self._finished = True
        if self._probe is not None and self._probe.active():
            self._probe.cancel()

    def _trace(self, t0: float, finished: float, runs: Sequence[TaskRun], written: Sequence[str], status: str = OK,
               error: str = "", failure: FunctionFailure | None = None) -> Trace:
        schedule = self.options.schedule
        return Trace(
            job_id=self.job.id,
            run_id=self.run_id,
            mode=self.options.mode,
            algorithm=self.options.algorithm,
            predicted_makespan=schedule.makespan if schedule is not None else None,
            makespan=finished - t0,
            tasks=tuple(runs),
            transfers=(),
            results=tuple(written),
            status=status,
            error=error,
            failure=failure,
            events=tuple(self._events_seen),
        )

    async def _connect_all(self) -> None:
        """Connect to every node at once (over a wide-area network, one round trip for all rather
        than one each); each connection made is kept (and closed with the run) even when another
        fails, and the first node in order that cannot be reached is the error."""
        async def one(node: str) -> None:
            endpoint = await self._connect(node)
            self.endpoints[node] = endpoint
            self._watch(node, endpoint)

        outcomes = await DeferredList([Deferred.fromCoroutine(one(node)) for node in self.nodes], consumeErrors=True)
        for _, outcome in outcomes:
            if isinstance(outcome, Failure):
                outcome.raiseException()

    async def _connect(self, node: str) -> Endpoint:
        try:
            return await self.connect(node)
        except SflowError:
            raise
        except Exception as exc:  # connection errors of every kind end up here
            raise ExecutionError(f"cannot reach the forwarder of node {node}: {exc}") from None

    # Installing ---------------------------------------------------------------------------------

    def _installs(self, tasks: Sequence[TaskId] | None = None) -> dict[str, list[Installed]]:
        """What each node is told of ``tasks``: in static mode each function on its node, with the
        nodes of its inputs; in auto mode every function on every node. (Default: every function.)"""
        out: dict[str, list[Installed]] = {n: [] for n in self.nodes}
        static = self.options.mode == "icn"
        schedule = self.options.schedule
        chosen = set(self.job.order if tasks is None else tasks)
        for position, tid in enumerate(self.job.order):
            if tid not in chosen:
                continue
            spec = self.specs[tid]
            task = self.job.task(tid)
            # "" = this node (or, in auto mode, the node decides)
            input_nodes = tuple(
                self._toward(self.placements[tid], self.placements[r.pred])
                if static and self.placements[r.pred] != self.placements[tid] else ""
                for r in spec.inputs
            )
            # A node's queue gives its vCPUs in schedule order, else in the job's order.
            slot = schedule.slots.get(tid) if schedule is not None else None
            priority = slot.start if slot is not None else float(position)
            item = Installed(spec, task.docker_tar, self.job.id, task.workload, input_nodes, self.run_id, priority)
            targets = [self.placements[tid]] if static else list(self.nodes)
            for node in targets:
                out[node].append(item)
        return out

    def _toward(self, here: str, there: str) -> str:
        """Where a node routes what it needs from ``there``: straight there, or along the
        topology's path (its next node)."""
        return self.next_hop(here, there) if self.next_hop is not None else there

    def _transit(self) -> dict[str, list[list[str]]]:
        """Static mode over a multi-hop topology: at every node a result crosses between its
        producer and a consumer, the route of its name toward the next node."""
        out: dict[str, list[list[str]]] = {}
        if self.next_hop is None or self.options.mode != "icn":
            return out
        for tid in self.job.order:
            consumer = self.placements[tid]
            for ref in self.specs[tid].inputs:
                producer = self.placements[ref.pred]
                hop = self._toward(consumer, producer)
                seen = {consumer}
                while hop != producer and hop not in seen:
                    seen.add(hop)
                    after = self._toward(hop, producer)
                    route = [ref.prefix.to_uri(), after]
                    if route not in out.setdefault(hop, []):
                        out[hop].append(route)
                    hop = after
        return out

    async def _install_all(self) -> None:
        pending: list[Deferred[Any]] = []
        for node, items in self._installs().items():
            large = []
            done = 0
            for batch in batches([installed_to_wire(i) for i in items], MAX_INSTALL_PARAMS):
                tids = [item.spec.task for item in items[done:done + entries(batch)]]
                done += len(tids)
                if len(batch) <= MAX_INSTALL_PARAMS:
                    pending.append(Deferred.fromCoroutine(self._install_batch(node, batch, tids)))
                else:
                    large.append((batch, tids))
            if large:
                pending.append(Deferred.fromCoroutine(self._install_in_parts(node, large)))
        for node, routes in self._transit().items():
            for batch in batches(routes, MAX_INSTALL_PARAMS):
                if len(batch) > MAX_INSTALL_PARAMS:
                    raise ProtocolError(f"a route for node {node} ({len(batch)} bytes) is too large for one Interest")
                pending.append(Deferred.fromCoroutine(self._install(node, batch, verb="route")))
        await gatherResults(pending, consumeErrors=True).addErrback(_first_error)

    async def _install_batch(self, node: str, batch: bytes, tids: list[TaskId]) -> None:
        self._learn_held(tids, await self._install(node, batch))

    async def _install_in_parts(self, node: str, large: list[tuple[bytes, list[TaskId]]]) -> None:
        """Batches too large for one Interest (a function with thousands of inputs), in parts:
        one batch at a time (a node holds a bounded number of octets for transfers under way),
        :data:`PART_WINDOW` parts of it in flight."""
        for batch, tids in large:
            parts = split(batch, secrets.token_bytes(12), MAX_INSTALL_PARAMS)
            what = f"a description of {len(batch)} octets in {len(parts)} parts"
            for start in range(0, len(parts), PART_WINDOW):
                window = parts[start:start + PART_WINDOW]
                replies = await gatherResults([Deferred.fromCoroutine(self._install(node, part, what))
                                               for part in window], consumeErrors=True).addErrback(_first_error)
                for reply in replies:
                    if "held" in reply:  # the answer to the part that completed the batch
                        self._learn_held(tids, reply)

    def _learn_held(self, tids: list[TaskId], reply: dict[str, Any]) -> None:
        """What the node holds of the functions just installed on it (static mode: each function
        is on one node), for :meth:`_start_run`."""
        if self.options.mode == "icn":
            self._held.update(zip(tids, held_from_wire(reply.get("held"), len(tids))))

    async def _control(self, endpoint: Endpoint, name: Name, params: bytes = b"", retries: int = 2) -> Any:
        """Ask a node's /sflow/ctl with a signed Interest; its decoded answer."""
        interest = make_interest(
            name, app_parameters=params, signer=self._signer, must_be_fresh=True, lifetime=self.options.lifetime_ms
        )
        data = await endpoint.express(interest, retries=retries)
        return msgpack.unpackb(data.content, raw=False)

    async def _install(self, node: str, batch: bytes, what: str = "", *, verb: str = "install") -> dict[str, Any]:
        refused = "the job's functions" if verb == "install" else "the routes of results crossing it"
        about = f" ({what})" if what else ""
        endpoint = await self._reopen(node)  # (connected again if its connection closed meanwhile)
        try:
            reply = await self._control(endpoint, CTL_PREFIX.append(verb), batch)
        except ProtocolError:
            raise
        except SflowError as exc:  # no answer (a node that hangs), or the connection closed
            raise IcnError(f"node {node} did not answer the installation of {refused}{about}: {exc}") from exc
        if not (isinstance(reply, dict) and reply.get("ok")):
            error = reply.get("error") if isinstance(reply, dict) else None
            raise ProtocolError(f"node {node} refused {refused}{about}: {error or repr(reply)}")
        return reply

    # Results ------------------------------------------------------------------------------------

    async def _obtain(self, tid: TaskId, deadline: float) -> Obtained:
        """The END function's result, from the node it is placed on — again from its new node when
        that one is lost and it is placed again."""
        spec = self.specs[tid]
        self.progress("started", tid)
        while True:
            node = self.placements[tid]
            client = ResultClient(
                self.endpoints.get(node) or await self._reopen(node), self.clock, self.secret,
                lifetime_ms=self.options.lifetime_ms, reconnect=functools.partial(self._reopen, node),
                spooler=_OutdirSpooler(self.options.outdir), signer=self._signer,
            )
            attempt = Deferred.fromCoroutine(client.obtain(spec.prefix, deadline))
            self._asking[tid] = attempt
            try:
                got = await attempt
                self._obtained_at[tid] = self.clock.seconds()
                return got
            except CancelledError:
                if self._error is not None:
                    raise self._error from None
                if self.placements[tid] == node:
                    raise ExecutionError(f"job {self.job.id}: END function {tid}: asking node {node} was "
                                         f"cancelled") from None
                log.info("event=end_moved task=%d from=%s to=%s", tid, node, self.placements[tid])
            except FunctionFailed as exc:
                raise self._job_failed(tid, node, exc) from None
            except ExecutionError as exc:
                raise ExecutionError(f"job {self.job.id}: END function {tid} on node {node}: {exc}") from None
            finally:
                if self._asking.get(tid) is attempt:
                    del self._asking[tid]

    def _start_run(self) -> None:
        """Once the functions are installed, in static mode: those that must be computed
        (:func:`~sflow.delegator.needed.must_run`, from what the nodes said they hold: none when
        every END result is held) start now on their nodes, which ask for their inputs then (a
        few at a time, in the job's order: ``SfcService._start_run``) rather than when the
        requests travelling back from END reach them — those requests find them under way. The
        start goes before END's result is asked for, on the same face: what END's node said it
        holds at installation is what asking it first would have told (its result store and its
        content store), a round trip later. Once per run, best effort: a node that does not
        hear it starts its functions when asked, as ever."""
        if self._started or self.options.mode != "icn":
            return
        self._started = True
        by_node: dict[str, list[bytes]] = {}
        for tid in must_run(self.job, self.specs, self._held):
            by_node.setdefault(self.placements[tid], []).append(bytes.fromhex(self.specs[tid].digest))
        for node, digests in by_node.items():
            endpoint = self.endpoints.get(node)
            if endpoint is None:
                continue
            for batch in batches(digests, MAX_INSTALL_PARAMS):
                Deferred.fromCoroutine(self._control(endpoint, CTL_PREFIX.append("start", self.run_id), batch,
                                                     retries=1)).addErrback(_start_unheard, node, self.run_id)

    # Lost nodes ---------------------------------------------------------------------------------

    def _watch(self, node: str, endpoint: Endpoint) -> None:
        endpoint.closed.addCallback(lambda _: self._face_closed(node, endpoint))

    def _face_closed(self, node: str, endpoint: Endpoint) -> None:
        """A node's forwarder closed the connection: open another (it may have restarted); when it
        accepts none, the node is lost."""
        if self._finished or node not in self.recovery.alive or self.endpoints.get(node) is not endpoint:
            return
        log.info("event=icn_face_closed node=%s", node)
        self.endpoints.pop(node, None)

        def failed(failure: Any) -> None:
            self._lose(node, f"its forwarder closed the connection: {failure.getErrorMessage()}")

        self._reopen(node).addErrback(failed)

    def _reopen(self, node: str) -> Deferred[Endpoint]:
        """The open endpoint toward ``node``, connecting again when it closed (one connection at a
        time); fails with an IcnError (which a ResultClient retries) when it cannot."""
        endpoint = self.endpoints.get(node)
        if endpoint is not None and not endpoint.face.closed:
            return succeed(endpoint)
        return self._pool.get(node)

    def _open_again(self, node: str) -> Deferred[Endpoint]:
        return Deferred.fromCoroutine(self._connect_again(node))

    async def _connect_again(self, node: str) -> Endpoint:
        if node not in self.recovery.alive:
            raise IcnError(f"node {node} was lost")
        try:
            endpoint = await self.connect(node)
        except Exception as exc:  # connection errors of every kind
            raise IcnError(f"cannot reach the forwarder of node {node}: {exc}") from None
        if node not in self.recovery.alive:
            endpoint.close()
            raise IcnError(f"node {node} was lost")
        self.endpoints[node] = endpoint
        self._watch(node, endpoint)
        log.info("event=icn_reconnected node=%s", node)
        return endpoint

    def _start_probes(self) -> None:
        beat = self.options.heartbeat
        if beat is None or not beat.enabled:
            return
        now = self.clock.seconds()
        self._liveness = {n: Liveness(beat, now, beat.interval) for n in self.nodes}
        self._probe = self.clock.callLater(beat.interval, self._tick)

    def _tick(self) -> None:
        """Every heartbeat interval: a node silent past the limit is lost; the others are asked.
        Any packet from a node counts, not only its status answers: a busy node whose status
        answer waits behind its other answers is alive."""
        if self._finished or self.options.heartbeat is None:
            return
        now = self.clock.seconds()
        for node, liveness in list(self._liveness.items()):
            if node not in self.recovery.alive:
                continue
            endpoint = self.endpoints.get(node)
            if endpoint is not None and endpoint.last_heard > liveness.last_heard:
                liveness.heard(endpoint.last_heard)
            for action in liveness.tick(now):
                if isinstance(action, Lost):
                    self._lose(node, f"no answer for {action.silence:.1f} s (limit {action.limit:g} s)")
                else:
                    self._ask_status(node, liveness)
        self._probe = self.clock.callLater(self.options.heartbeat.interval, self._tick)

    def _ask_status(self, node: str, liveness: Liveness) -> None:
        endpoint = self.endpoints.get(node)
        if endpoint is None or endpoint.face.closed:
            return
        beat = self.options.heartbeat
        lifetime = int(1000 * beat.interval * beat.misses) if beat is not None else self.options.lifetime_ms
        # status answers only requests signed with the cluster key at the current time
        signer = TimedClusterSigner(self.secret, int(self.clock.seconds() * 1000))
        interest = make_interest(CTL_PREFIX.append("status"), signer=signer, must_be_fresh=True,
                                 lifetime=max(100, lifetime))
        d = endpoint.express(interest)
        d.addCallbacks(lambda _: liveness.heard(self.clock.seconds()), lambda _: None)

    def _lose(self, node: str, reason: str) -> None:
        if self._finished or node not in self.recovery.alive:
            return
        log.warning("event=icn_node_lost job=%s node=%s reason=%s", self.job.id, node, reason)
        actions = self.recovery.node_lost(node, reason, self.clock.seconds())
        endpoint = self.endpoints.pop(node, None)
        if endpoint is not None:
            endpoint.close()
        self._perform(actions)

    def _perform(self, actions: list[IcnAction]) -> None:
        for action in actions:
            if isinstance(action, Fail):
                self._error = action.error
                for attempt in list(self._asking.values()):
                    attempt.cancel()
                return
            if isinstance(action, Replanned):
                self._replanned(action)
            elif isinstance(action, Install):
                self.placements.update(self.recovery.placements)
                items = self._installs(action.tasks).get(action.node, [])
                for batch in batches([installed_to_wire(i) for i in items], MAX_INSTALL_PARAMS):
                    Deferred.fromCoroutine(self._install_on(action.node, batch)).addErrback(
                        self._reinstall_failed, action.node)
            elif isinstance(action, Ask):
                self.placements[action.task] = action.node
                asking = self._asking.get(action.task)
                if asking is not None:
                    asking.cancel()
        if self.next_hop is not None:
            for node, routes in self._transit().items():
                if node in self.recovery.alive:
                    for batch in batches(routes, MAX_INSTALL_PARAMS):
                        Deferred.fromCoroutine(self._install_on(node, batch, "route")).addErrback(
                            self._reinstall_failed, node)

    async def _install_on(self, node: str, batch: bytes, verb: str = "install") -> None:
        if verb == "install" and len(batch) > MAX_INSTALL_PARAMS:
            await self._install_in_parts(node, [(batch, [])])
        else:
            await self._install(node, batch, verb=verb)

    def _reinstall_failed(self, failure: Any, node: str) -> None:
        # The node itself may be going: the probes or its closed connection tell.
        log.warning("event=reinstall_failed node=%s error=%s", node, failure.getErrorMessage())

    def _replanned(self, action: Replanned) -> None:
        label = self.node_labels.get(action.node, action.node)
        where = {str(t): [self.node_labels.get(p.node, p.node), str(p.vcpu)] for t, p in action.placements.items()}
        self._events_seen.append(TraceEvent(action.time - self._t0, "node_lost", label, action.reason,
                                            tuple(int(t) for t in action.placements), where))
        for task in action.placements:
            self.progress("again", int(task))
        moves = ", ".join(f"{t} → {where[str(t)][0]}" for t in action.placements)
        how = self.options.algorithm if self.options.mode == "icn" else "the least loaded node"
        self.notice(f"node {label} lost ({action.reason}); placed again with {how}: {moves}")

    def _job_failed(self, tid: TaskId, node: str, exc: FunctionFailed) -> JobFailed:
        """The function where the failure began (which the nodes pass down to the END function's
        node), on the node daemon's address when known."""
        origin = exc.failure
        if origin is None:
            return JobFailed(int(tid), self.node_labels.get(node, node), str(exc))
        return JobFailed(origin.task, self.node_labels.get(origin.node, origin.node), origin.reason,
                         origin.exit_status, origin.stderr_tail)

    async def _write_results(self, obtained: Mapping[TaskId, Obtained]) -> list[str]:
        """Each result file written durably: from the bundle in memory, or (a large result) copied
        from the file it was spooled to, off the reactor."""
        written = []
        for tid, got in obtained.items():
            results = [r for r in self.results if r.task == tid]
            if got.spooled is not None:
                spooled = got.spooled
                try:
                    wanted = {job_relative(r.path): self.options.outdir / job_relative(r.name) for r in results}
                    found = await _off_reactor(_extract_results, spooled, wanted)
                finally:
                    spooled.path.unlink(missing_ok=True)
            else:
                files = decode_bundle(got.content)
                found = set(files)
                for r in results:
                    if job_relative(r.path) in files:
                        write_durably(self.options.outdir / job_relative(r.name), files[job_relative(r.path)])
            for r in results:
                if job_relative(r.path) not in found:
                    raise ExecutionError(f"the result of function {r.task} lacks {r.path}")
                written.append(r.name)
        return written

    async def _events(self) -> dict[str, list[dict[str, Any]]]:
        """Every node's events of the run, by node: the nodes asked all at once (a node that does
        not answer delays the report by its timeout once, not once per node), each one's pages in
        turn."""

        async def of(node: str, endpoint: Endpoint) -> list[dict[str, Any]]:
            events: list[dict[str, Any]] = []
            page = 0
            while True:
                try:
                    body = await self._control(endpoint, CTL_PREFIX.append("events", self.run_id, str(page)))
                except SflowError as exc:
                    log.warning("event=no_events node=%s error=%s", node, exc)
                    return events
                events.extend(body.get("events", []))
                if not body.get("more"):
                    return events
                page += 1

        nodes = list(self.endpoints.items())
        pages = await gatherResults([Deferred.fromCoroutine(of(node, endpoint)) for node, endpoint in nodes],
                                    consumeErrors=True).addErrback(_first_error)
        return {node: events for (node, _), events in zip(nodes, pages)}

    def _task_runs(
        self, t0: float, ends: Mapping[TaskId, Obtained], events: Mapping[str, list[dict[str, Any]]]
    ) -> list[TaskRun]:
        """Per function: executed (where, on which vCPU, when), a cache hit (where and when it was
        found), or not needed; with the schedule's prediction when there is one (icn mode)."""
        executed: dict[int, tuple[str, dict[str, Any]]] = {}
        failed: dict[int, tuple[str, dict[str, Any]]] = {}
        cached: dict[int, tuple[str, str, float]] = {}
        for node, items in events.items():
            for event in items:
                task = int(event.get("task", -1))
                kind = event.get("kind")
                at = float(event.get("time", t0))
                if kind == "executed":
                    executed[task] = (node, event)
                elif kind == "failed":
                    failed[task] = (node, event)
                elif kind == "stored":
                    cached[task] = (node, f"{CACHE_HIT} (result store)", at)
                elif kind == "cache" and task not in cached:
                    cached[task] = (node, f"{CACHE_HIT} (content store)", at)
        for tid, got in ends.items():
            if got.how == "cache" and int(tid) not in executed:
                at = self._obtained_at.get(tid, t0)
                cached.setdefault(int(tid), (self.placements[tid], f"{CACHE_HIT} (content store)", at))
        schedule = self.options.schedule
        runs = []
        for tid in self.job.order:
            slot = schedule.slots.get(tid) if schedule is not None else None
            predicted = (slot.start, slot.finish) if slot is not None else (None, None)
            if int(tid) in executed:
                node, event = executed[int(tid)]
                name = self.node_labels.get(node, node)
                where = event.get("where") or "?"
                runs.append(TaskRun(int(tid), name, self._vcpu_name(name, event.get("vcpu")),
                                    float(event["start"]) - t0, float(event["finish"]) - t0,
                                    f"{EXECUTED} ({where})", *predicted))
            elif int(tid) in cached:
                node, how, at = cached[int(tid)]
                runs.append(TaskRun(int(tid), self.node_labels.get(node, node), "-", at - t0, at - t0, how, *predicted))
            elif int(tid) in failed:
                node, event = failed[int(tid)]
                name = self.node_labels.get(node, node)
                runs.append(TaskRun(int(tid), name, self._vcpu_name(name, event.get("vcpu")),
                                    float(event["start"]) - t0, float(event["finish"]) - t0,
                                    f"failed: {event.get('reason') or '?'}", *predicted))
            else:
                runs.append(TaskRun(int(tid), "-", "-", 0.0, 0.0, NOT_NEEDED, *predicted))
        return runs

    def _vcpu_name(self, node: str, slot: Any) -> str:
        if not isinstance(slot, int):
            return "-"  # a node that does not report its vCPUs
        names = self.vcpu_names.get(node, ())
        return str(names[slot]) if 0 <= slot < len(names) else f"vCPU {slot}"


class _OutdirSpooler:
    """Large END results are spooled to a hidden file in the output directory, then their files
    are copied out of it (and it is removed)."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir

    def open(self, prefix: Name) -> Spool | Spooled:
        self.outdir.mkdir(parents=True, exist_ok=True)
        return Spool(self.outdir / f".sflow-result-{secrets.token_hex(6)}.bundle")

    def finish(self, prefix: Name, spool: Spool) -> Deferred[Spooled]:
        return _off_reactor(spool.finish)


def _off_reactor(call: Callable[..., Any], *args: Any) -> Deferred[Any]:
    from twisted.internet.threads import deferToThread

    return deferToThread(call, *args)


def _extract_results(spooled: Spooled, wanted: Mapping[str, Path]) -> set[str]:
    """The wanted files of a spooled bundle, each written durably (blocking); the paths found."""

    def target(path: str) -> DurableFile | None:
        dest = wanted.get(path)
        if dest is None:
            return None
        dest.parent.mkdir(parents=True, exist_ok=True)
        return DurableFile(dest)

    with spooled.path.open("rb") as f:
        f.seek(spooled.offset)
        return set(extract_bundle(f, spooled.length, target)) & set(wanted)


def _start_unheard(failure: Any, node: str, run: str) -> None:
    log.info("event=run_start_unheard node=%s run=%s error=%s", node, run, failure.getErrorMessage())


def _cannot_place(job: Job, alive: frozenset[str]) -> Mapping[TaskId, TaskPlacement]:
    raise ExecutionError("no scheduler was given to place its functions again")


def _first_error(failure: Any) -> Any:
    from twisted.internet.defer import FirstError

    if failure.check(FirstError):
        return failure.value.subFailure
    return failure


# ---------------------------------------------------------------------------------------------
# From a prepared plan to a running ICN dispatch (sflow delegate / sflow run --mode icn|auto)


def remote_digests(job: Job, config: Config) -> dict[str, str]:
    """SHA-256 of every ``$R^`` file of the job, read from the file server as nodes will."""
    paths = sorted({p for ps in remote_inputs(job).values() for p in ps})
    out: dict[str, str] = {}
    if not paths:
        return out
    with tempfile.TemporaryDirectory(prefix="sflow-rdigest-") as tmp:
        for path in paths:
            dest = Path(tmp) / "f"
            try:
                fetch_input(config.file_server, job.id, path, dest)
            except FetchError as exc:
                raise InputError("<job>", f"$R^{path}", f"cannot read it from the file server to name the results: {exc}") from None
            with dest.open("rb") as f:
                out[path] = hashlib.file_digest(f, "sha256").hexdigest()
            dest.unlink()
    return out


def reachable_icn(node: str, icn: str) -> str:
    """A node's forwarder address as others can reach it: a wildcard listen host (``0.0.0.0``,
    ``::``) is replaced by the host the node daemon is known by."""
    return reachable_address(icn, node.rpartition(":")[0])


def choose_end_node(statuses: Mapping[str, Mapping[str, Any]], preferred: str) -> str:
    """Auto mode: the least loaded node for an END function (the scheduler's choice on ties)."""

    def load(node: str) -> tuple[float, int]:
        icn = statuses[node].get("icn_status") or {}
        vcpus = max(1, int(icn.get("vcpus", 1)))
        busy = int(icn.get("running", 0)) + int(icn.get("queued", 0)) + int(icn.get("pending", 0))
        return busy / vcpus, 0 if node == preferred else 1

    return min(sorted(statuses), key=load)


async def _icn_dispatch(
    reactor: Any, secret: bytes, job: Job, plan: JobPlan, schedule: Schedule | None, algorithm: str,
    config: Config, outdir: Path, mode: str, nodes: Sequence[str], progress: ProgressCallback | None,
    vcpu_names: Mapping[str, Sequence[str]], next_host: NextHop | None, placer: Placer | None,
    notice: NoticeCallback | None,
) -> Trace:
    from sflow.icn.app import connect as connect_endpoint
    from sflow.node.status import query_status

    statuses: dict[str, Mapping[str, Any]] = {}
    if mode == "icn":
        nodes = sorted(plan.nodes)
    async def ask(node: str) -> Mapping[str, Any] | Exception:
        """The node's status, or the error that says why there is none."""
        try:
            return await query_status(reactor, node, secret, sealed=config.security.channel_encryption)
        except (SflowError, TimeoutError, DeferredTimeout) as exc:
            return exc

    # every node asked at once (each over a connection of its own), the answers taken in order
    asked = {node: Deferred.fromCoroutine(ask(node)) for node in dict.fromkeys(nodes)}
    for node, answer in asked.items():
        status = await answer
        if isinstance(status, Exception):
            if mode == "icn":
                raise status
            # Autonomous mode needs no particular node: work goes to the nodes that answer.
            log.warning("event=node_unreachable node=%s error=%s", node, status)
            continue
        if not status.get("icn"):
            raise ExecutionError(f"node {node} runs without ICN; start it with `sflow node --mode {mode}`")
        statuses[node] = status
    if not statuses:
        raise ExecutionError(f"none of the nodes {', '.join(nodes)} answered")
    icn_of = {node: reachable_icn(node, str(status["icn"])) for node, status in statuses.items()}
    labels = {v: k for k, v in icn_of.items()}
    labels.update({str(status["icn"]): node for node, status in statuses.items()})
    if mode == "icn":
        placements = {tid: icn_of[p.node] for tid, p in plan.placements.items()}
    else:
        placements = {}
        for tid in job.end_tasks:
            preferred = plan.placements[tid].node
            node = choose_end_node(statuses, preferred if preferred in statuses else next(iter(statuses)))
            placements[tid] = icn_of[node]
    specs = build_specs(job, remote_digests(job, config))
    timeout = config.icn.connect_timeout_ms / 1000.0

    def connect(address: str) -> Deferred[Endpoint]:
        d: Deferred[Endpoint] = connect_endpoint(reactor, f"tcp://{address}")
        return d.addTimeout(timeout, reactor)

    options = IcnOptions(outdir, algorithm if mode == "icn" else "autonomous", schedule if mode == "icn" else None,
                         mode=mode, job_timeout=config.delegator.job_timeout,
                         lifetime_ms=config.icn.interest_lifetime_ms, heartbeat=Heartbeat.from_settings(config.node),
                         request_validity=config.icn.request_validity, clock_skew=config.icn.clock_skew)
    next_hop = None
    if next_host is not None:
        by_host = {icn.rpartition(":")[0]: icn for icn in icn_of.values()}

        def next_hop(here: str, there: str) -> str:
            return by_host[next_host(here.rpartition(":")[0], there.rpartition(":")[0])]

    dispatch = IcnDispatch(
        reactor, secret, job, specs, placements, list(icn_of.values()), connect, options, plan.results,
        progress=progress, run_id=plan.run_id, node_labels=labels, vcpu_names=vcpu_names, next_hop=next_hop,
        placer=_icn_placer(placer, icn_of) if mode == "icn" else _end_placer(statuses, icn_of), notice=notice,
    )
    try:
        return await dispatch.run()
    finally:
        dispatch.close()


def _icn_placer(placer: Placer | None, icn_of: Mapping[str, str]) -> Placer | None:
    """Static mode: the job's scheduler (on node daemon addresses) on ICN addresses."""
    if placer is None:
        return None
    node_of = {icn: node for node, icn in icn_of.items()}

    def place(job: Job, alive: frozenset[str]) -> Mapping[TaskId, TaskPlacement]:
        placed = placer(job, frozenset(node_of[a] for a in alive if a in node_of))
        return {t: dataclasses.replace(p, node=icn_of.get(p.node, p.node)) for t, p in placed.items()}

    return place


def _end_placer(statuses: Mapping[str, Mapping[str, Any]], icn_of: Mapping[str, str]) -> Placer:
    """Auto mode: END functions on the least loaded live node (as at the start of the job)."""
    node_of = {icn: node for node, icn in icn_of.items()}

    def place(job: Job, alive: frozenset[str]) -> Mapping[TaskId, TaskPlacement]:
        live = {node_of[a]: statuses[node_of[a]] for a in sorted(alive) if node_of.get(a) in statuses}
        if not live:
            raise ExecutionError("no node is left")
        node = icn_of[choose_end_node(live, next(iter(live)))]
        return {t: TaskPlacement(node, VcpuId("-"), 0) for t in job.end_tasks}

    return place


def icn_dispatch(
    reactor: Any, secret: bytes, job: Job, plan: JobPlan, schedule: Schedule | None, algorithm: str,
    config: Config, outdir: Path, mode: str, nodes: Sequence[str], progress: ProgressCallback | None = None,
    vcpu_names: Mapping[str, Sequence[str]] | None = None, next_host: NextHop | None = None,
    placer: Placer | None = None, notice: NoticeCallback | None = None,
) -> Deferred[Trace]:
    """Run ``job`` in ``mode`` (icn or auto) on ``nodes`` (node daemon addresses; their forwarders
    are learnt from their status). In icn mode the plan's placements are used; in auto mode only
    its result names and the scheduler's END placements (as tie-breakers). ``vcpu_names`` are each
    node daemon's vCPU ids (from the environment), to name the vCPU slots the nodes report.
    ``next_host`` (icn mode on a multi-hop topology, nodes told apart by host): the next host
    from one host toward another; results then travel hop by hop through the forwarders between.
    ``placer`` (icn mode): the job's scheduler, to place a lost node's functions again (on node
    daemon addresses); ``notice`` hears of lost nodes."""
    return Deferred.fromCoroutine(
        _icn_dispatch(reactor, secret, job, plan, schedule, algorithm, config, outdir, mode, nodes, progress,
                      vcpu_names or {}, next_host, placer, notice)
    )
