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
"""

from __future__ import annotations

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
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.defer import TimeoutError as DeferredTimeout

from sflow.config import Config
from sflow.delegator.plan import JobPlan, ResultFile
from sflow.delegator.trace import TaskRun, Trace
from sflow.errors import ExecutionError, InputError, JobFailed, ProtocolError, SflowError
from sflow.icn.app import Endpoint
from sflow.icn.name import Name
from sflow.icn.packet import make_interest
from sflow.icn.signature import HmacSha256Signer
from sflow.model.paths import job_relative
from sflow.model.schedule import Schedule
from sflow.model.workflow import Job, TaskId
from sflow.node.fetch import FetchError, fetch_input
from sflow.sfc.bundle import decode_bundle
from sflow.sfc.consumer import FunctionFailed, Obtained, ResultClient
from sflow.sfc.hello import reachable_address
from sflow.sfc.install import batches, split
from sflow.sfc.names import CTL_PREFIX, KEY_NAME, FunctionSpec, Installed, build_specs, installed_to_wire, remote_inputs
from sflow.sfc.service import MAX_INSTALL_PARAMS

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int], None]
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


class IcnDispatch:
    """One run of one job over ICN. ``run()`` fires with the :class:`Trace` or fails with an
    :class:`~sflow.errors.SflowError`.

    ``placements`` maps each task to the ICN address of its node (static mode), or only the END
    tasks (auto mode); ``nodes`` are all the nodes to install on; ``node_labels`` maps an ICN
    address to the name shown in the trace (the node daemon's address); ``vcpu_names`` maps that
    name to its vCPU ids, in order: a function a node ran on its vCPU slot k is shown on the k-th
    (``vCPU k`` when the node has more slots than the environment names).
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
    ) -> None:
        self.clock = clock
        self.secret = secret
        self.job = job
        self.specs = specs
        self.placements = placements
        self.nodes = tuple(dict.fromkeys(nodes))
        self.connect = connect
        self.options = options
        self.results = tuple(results)
        self.node_labels = node_labels or {}
        self.vcpu_names = vcpu_names or {}
        self.next_hop = next_hop
        self.progress = progress or (lambda event, task: None)
        self.run_id = run_id or secrets.token_hex(4)
        self.endpoints: dict[str, Endpoint] = {}
        #: when each END result arrived (clock time)
        self._obtained_at: dict[TaskId, float] = {}
        self._signer = HmacSha256Signer(KEY_NAME, secret, interest_nonce_size=8)

    def run(self) -> Deferred[Trace]:
        return Deferred.fromCoroutine(self._run())

    async def _run(self) -> Trace:
        t0 = self.clock.seconds()
        timeout = self.options.job_timeout
        deadline = t0 + timeout if timeout > 0 else math.inf
        for node in self.nodes:
            self.endpoints[node] = await self._connect(node)
        await self._install_all()
        ends = self.job.end_tasks
        obtained: list[Obtained] = await gatherResults(
            [Deferred.fromCoroutine(self._obtain(tid, deadline)) for tid in ends], consumeErrors=True
        ).addErrback(_first_error)
        finished = self.clock.seconds()
        outputs: dict[TaskId, dict[str, bytes]] = {}
        for tid, got in zip(ends, obtained):
            outputs[tid] = decode_bundle(got.content)
        written = self._write_results(outputs)
        events = await self._events()
        runs = self._task_runs(t0, dict(zip(ends, obtained)), events)
        for run in runs:
            self.progress("done", run.task)
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
        )

    async def _connect(self, node: str) -> Endpoint:
        try:
            return await self.connect(node)
        except SflowError:
            raise
        except Exception as exc:  # connection errors of every kind end up here
            raise ExecutionError(f"cannot reach the forwarder of node {node}: {exc}") from None

    # Installing ---------------------------------------------------------------------------------

    def _installs(self) -> dict[str, list[Installed]]:
        out: dict[str, list[Installed]] = {n: [] for n in self.nodes}
        static = self.options.mode == "icn"
        schedule = self.options.schedule
        for position, tid in enumerate(self.job.order):
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
        pending = []
        for node, items in self._installs().items():
            large = []
            for batch in batches([installed_to_wire(i) for i in items], MAX_INSTALL_PARAMS):
                if len(batch) <= MAX_INSTALL_PARAMS:
                    pending.append(Deferred.fromCoroutine(self._install(node, batch)))
                else:
                    large.append(batch)
            if large:
                pending.append(Deferred.fromCoroutine(self._install_in_parts(node, large)))
        for node, routes in self._transit().items():
            for batch in batches(routes, MAX_INSTALL_PARAMS):
                if len(batch) > MAX_INSTALL_PARAMS:
                    raise ProtocolError(f"a route for node {node} ({len(batch)} bytes) is too large for one Interest")
                pending.append(Deferred.fromCoroutine(self._install(node, batch, verb="route")))
        await gatherResults(pending, consumeErrors=True).addErrback(_first_error)

    async def _install_in_parts(self, node: str, large: list[bytes]) -> None:
        """Batches too large for one Interest (a function with thousands of inputs), in parts:
        one batch at a time (a node holds a bounded number of octets for transfers under way),
        :data:`PART_WINDOW` parts of it in flight."""
        for batch in large:
            parts = split(batch, secrets.token_bytes(12), MAX_INSTALL_PARAMS)
            what = f"a description of {len(batch)} octets in {len(parts)} parts"
            for start in range(0, len(parts), PART_WINDOW):
                window = parts[start:start + PART_WINDOW]
                await gatherResults([Deferred.fromCoroutine(self._install(node, part, what)) for part in window],
                                    consumeErrors=True).addErrback(_first_error)

    async def _control(self, endpoint: Endpoint, name: Name, params: bytes = b"") -> Any:
        """Ask a node's /sflow/ctl with a signed Interest; its decoded answer."""
        interest = make_interest(
            name, app_parameters=params, signer=self._signer, must_be_fresh=True, lifetime=self.options.lifetime_ms
        )
        data = await endpoint.express(interest, retries=2)
        return msgpack.unpackb(data.content, raw=False)

    async def _install(self, node: str, batch: bytes, what: str = "", *, verb: str = "install") -> None:
        reply = await self._control(self.endpoints[node], CTL_PREFIX.append(verb), batch)
        if not (isinstance(reply, dict) and reply.get("ok")):
            error = reply.get("error") if isinstance(reply, dict) else None
            refused = "the job's functions" if verb == "install" else "the routes of results crossing it"
            about = f" ({what})" if what else ""
            raise ProtocolError(f"node {node} refused {refused}{about}: {error or repr(reply)}")

    # Results ------------------------------------------------------------------------------------

    async def _obtain(self, tid: TaskId, deadline: float) -> Obtained:
        node = self.placements[tid]
        spec = self.specs[tid]
        self.progress("started", tid)

        def reconnect() -> Deferred[Endpoint]:
            d = self.connect(node)

            def keep(endpoint: Endpoint) -> Endpoint:
                self.endpoints[node] = endpoint
                return endpoint

            return d.addCallback(keep)

        client = ResultClient(
            self.endpoints[node], self.clock, self.secret, lifetime_ms=self.options.lifetime_ms, reconnect=reconnect
        )
        try:
            got = await client.obtain(spec.prefix, deadline)
            self._obtained_at[tid] = self.clock.seconds()
            return got
        except FunctionFailed as exc:
            raise self._job_failed(tid, node, exc) from None
        except ExecutionError as exc:
            raise ExecutionError(f"job {self.job.id}: END function {tid} on node {node}: {exc}") from None

    def _job_failed(self, tid: TaskId, node: str, exc: FunctionFailed) -> JobFailed:
        """The function where the failure began (which the nodes pass down to the END function's
        node), on the node daemon's address when known."""
        origin = exc.failure
        if origin is None:
            return JobFailed(int(tid), self.node_labels.get(node, node), str(exc))
        return JobFailed(origin.task, self.node_labels.get(origin.node, origin.node), origin.reason,
                         origin.exit_status, origin.stderr_tail)

    def _write_results(self, outputs: Mapping[TaskId, Mapping[str, bytes]]) -> list[str]:
        written = []
        for result in self.results:
            files = outputs.get(result.task)
            if files is None:
                continue
            content = files.get(job_relative(result.path))
            if content is None:
                raise ExecutionError(f"the result of function {result.task} lacks {result.path}")
            target = self.options.outdir / job_relative(result.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            written.append(result.name)
        return written

    async def _events(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for node, endpoint in self.endpoints.items():
            events: list[dict[str, Any]] = []
            page = 0
            while True:
                try:
                    body = await self._control(endpoint, CTL_PREFIX.append("events", self.run_id, str(page)))
                except SflowError as exc:
                    log.warning("event=no_events node=%s error=%s", node, exc)
                    break
                events.extend(body.get("events", []))
                if not body.get("more"):
                    break
                page += 1
            out[node] = events
        return out

    def _task_runs(
        self, t0: float, ends: Mapping[TaskId, Obtained], events: Mapping[str, list[dict[str, Any]]]
    ) -> list[TaskRun]:
        """Per function: executed (where, on which vCPU, when), a cache hit (where and when it was
        found), or not needed; with the schedule's prediction when there is one (icn mode)."""
        executed: dict[int, tuple[str, dict[str, Any]]] = {}
        cached: dict[int, tuple[str, str, float]] = {}
        for node, items in events.items():
            for event in items:
                task = int(event.get("task", -1))
                kind = event.get("kind")
                at = float(event.get("time", t0))
                if kind == "executed":
                    executed[task] = (node, event)
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
            else:
                runs.append(TaskRun(int(tid), "-", "-", 0.0, 0.0, NOT_NEEDED, *predicted))
        return runs

    def _vcpu_name(self, node: str, slot: Any) -> str:
        if not isinstance(slot, int):
            return "-"  # a node that does not report its vCPUs
        names = self.vcpu_names.get(node, ())
        return str(names[slot]) if 0 <= slot < len(names) else f"vCPU {slot}"


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
    vcpu_names: Mapping[str, Sequence[str]], next_host: NextHop | None,
) -> Trace:
    from sflow.icn.app import connect as connect_endpoint
    from sflow.node.status import query_status

    statuses: dict[str, Mapping[str, Any]] = {}
    if mode == "icn":
        nodes = sorted(plan.nodes)
    for node in dict.fromkeys(nodes):
        try:
            status = await query_status(reactor, node, secret)
        except (SflowError, TimeoutError, DeferredTimeout) as exc:
            if mode == "icn":
                raise
            # Autonomous mode needs no particular node: work goes to the nodes that answer.
            log.warning("event=node_unreachable node=%s error=%s", node, exc)
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
                         lifetime_ms=config.icn.interest_lifetime_ms)
    next_hop = None
    if next_host is not None:
        by_host = {icn.rpartition(":")[0]: icn for icn in icn_of.values()}

        def next_hop(here: str, there: str) -> str:
            return by_host[next_host(here.rpartition(":")[0], there.rpartition(":")[0])]

    dispatch = IcnDispatch(
        reactor, secret, job, specs, placements, list(icn_of.values()), connect, options, plan.results,
        progress=progress, run_id=plan.run_id, node_labels=labels, vcpu_names=vcpu_names, next_hop=next_hop,
    )
    try:
        return await dispatch.run()
    finally:
        for endpoint in dispatch.endpoints.values():
            endpoint.close()


def icn_dispatch(
    reactor: Any, secret: bytes, job: Job, plan: JobPlan, schedule: Schedule | None, algorithm: str,
    config: Config, outdir: Path, mode: str, nodes: Sequence[str], progress: ProgressCallback | None = None,
    vcpu_names: Mapping[str, Sequence[str]] | None = None, next_host: NextHop | None = None,
) -> Deferred[Trace]:
    """Run ``job`` in ``mode`` (icn or auto) on ``nodes`` (node daemon addresses; their forwarders
    are learnt from their status). In icn mode the plan's placements are used; in auto mode only
    its result names and the scheduler's END placements (as tie-breakers). ``vcpu_names`` are each
    node daemon's vCPU ids (from the environment), to name the vCPU slots the nodes report.
    ``next_host`` (icn mode on a multi-hop topology, nodes told apart by host): the next host
    from one host toward another; results then travel hop by hop through the forwarders between."""
    return Deferred.fromCoroutine(
        _icn_dispatch(reactor, secret, job, plan, schedule, algorithm, config, outdir, mode, nodes, progress,
                      vcpu_names or {}, next_host)
    )
