"""In-process ICN clusters for the sfc unit tests: forwarders on one ``task.Clock``, an
:class:`SfcService` per node with a fake executor, and a delegator endpoint per node."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from sflow.config import Config, IcnSettings, NodeSettings
from sflow.delegator.icn import IcnDispatch, IcnOptions
from sflow.delegator.plan import ResultFile
from sflow.delegator.recovery import Placer as RecoveryPlacer
from sflow.delegator.trace import Trace
from sflow.icn.app import Endpoint
from sflow.icn.face.base import Face, FaceScope
from sflow.icn.face.inprocess import linked_faces
from sflow.icn.forwarder import Forwarder
from sflow.jsonio import job_from_dict
from sflow.model.schedule import Schedule
from sflow.model.workflow import Job, TaskId
from sflow.node.execution import ExecRequest, ExecResult
from sflow.node.liveness import Heartbeat
from sflow.sfc.auto import NeighbourTable
from sflow.sfc.names import build_specs
from sflow.sfc.placer import AutoPlacer
from sflow.sfc.service import Placer, SfcService
from sflow.sfc.store import ResultStore

SECRET = b"s" * 32


class FakeExecutor:
    """Writes each declared output as the command plus its input files; ``delays`` makes a task
    take that long (clock seconds); ``fail`` makes a task fail."""

    def __init__(self, clock: Clock, delays: dict[int, float] | None = None, fail: set[int] | None = None) -> None:
        self.clock = clock
        self.delays = delays or {}
        self.fail = fail or set()
        self.requests: list[ExecRequest] = []

    def run(self, request: ExecRequest) -> Deferred[ExecResult]:
        self.requests.append(request)
        started = self.clock.seconds()
        inputs = b"".join((request.workdir / p).read_bytes() for _, p in sorted(request.files.items()))
        values = "".join(f"[{k}={v}]" for k, v in sorted(request.values.items()))
        ok = request.task_id not in self.fail

        def finish() -> ExecResult:
            if ok:
                for out in request.outputs:
                    path = request.workdir / out
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(f"{request.cmd}{values}|{out}\n".encode() + inputs)
            stderr = "" if ok else f"task {request.task_id} says: no such thing\n"
            return ExecResult(ok, 0 if ok else 3, "" if ok else "exit status 3", stderr, "", "native", started,
                              self.clock.seconds())

        delay = self.delays.get(request.task_id, 0.0)
        if delay <= 0:
            return succeed(finish())
        d: Deferred[ExecResult] = Deferred()
        self.clock.callLater(delay, lambda: d.callback(finish()))
        return d

    def tasks(self) -> list[int]:
        return [r.task_id for r in self.requests]


@dataclass
class Node:
    name: str
    forwarder: Forwarder
    service: SfcService
    executor: FakeExecutor
    #: autonomous mode (``make_cluster(auto=True)``): the node's placer and neighbour table
    placer: AutoPlacer | None = None
    table: NeighbourTable | None = None


@dataclass
class Cluster:
    clock: Clock
    nodes: dict[str, Node]
    tmp: Path
    config: Config
    #: (from node, to node, face on the first, face on the second) of every connection made
    links: list[tuple[str, str, Face, Face]] = field(default_factory=list)
    down: set[str] = field(default_factory=set)
    #: nodes killed (:meth:`kill`): the delegator cannot connect to them again either
    gone: set[str] = field(default_factory=set)
    #: packets on links between nodes are lost until this clock time
    lose_until: float = -1.0
    lost: int = 0

    def executed(self) -> list[int]:
        return sorted(t for n in self.nodes.values() for t in n.executor.tasks())

    def kill(self, name: str) -> None:
        """``name`` goes away: every face of its forwarder closes (those of other nodes' and the
        delegator's connections to it too) and no new connection can be made."""
        self.down.add(name)
        self.gone.add(name)
        for a, b, ours, theirs in self.links:
            if name in (a, b):
                ours.close()
                theirs.close()
        for face in list(self.nodes[name].forwarder.faces):
            face.close()

    def mute(self, name: str) -> None:
        """``name`` goes silent (a stopped process, a partition): its connections stay open, but
        nothing it would send leaves it."""
        for face in list(self.nodes[name].forwarder.faces):
            face._deliver = lambda kind, packet, lp: None  # type: ignore[method-assign,attr-defined]

    def hellos(self) -> None:
        """Every node hears every other node's advert now (autonomous mode), as its hellos would
        tell it; nodes that are down say nothing."""
        now = self.clock.seconds()
        for node in self.nodes.values():
            if node.table is None or node.placer is None:
                continue
            node.table.expire(now)  # as a node's hello loop does
            for other in self.nodes.values():
                if other is not node and other.name not in self.down:
                    advert = other.service.advert()
                    node.table.update(advert, now)
                    node.placer.heard(advert)

    def connect_endpoint(self, node: str) -> Deferred[Endpoint]:
        if node in self.gone:
            return fail(ConnectionRefusedError(f"{node} is gone"))
        return succeed(Endpoint.attach(self.nodes[node].forwarder))

    def dispatch(self, job: Job, placements: dict[TaskId, str], *, mode: str = "icn", timeout: float = 0.0,
                 outdir: Path | None = None, nodes: list[str] | None = None, schedule: Schedule | None = None,
                 vcpu_names: dict[str, tuple[str, ...]] | None = None, placer: RecoveryPlacer | None = None,
                 heartbeat: Heartbeat | None = None, notice: Callable[[str], None] | None = None) -> IcnDispatch:
        specs = build_specs(job, {})
        results = [ResultFile(t, f.path.lstrip("./"), f.path.lstrip("./")) for t in job.end_tasks
                   for f in job.task(t).out_files]
        options = IcnOptions(outdir or self.tmp / "out", "test", schedule, mode=mode, job_timeout=timeout,
                             lifetime_ms=self.config.icn.interest_lifetime_ms, heartbeat=heartbeat)
        return IcnDispatch(self.clock, SECRET, job, specs, placements, nodes or list(placements.values()),
                           self.connect_endpoint, options, results, vcpu_names=vcpu_names, placer=placer, notice=notice)

    def run(self, dispatch: IcnDispatch, limit: float = 600.0, step: float = 0.01) -> Trace:
        d = dispatch.run()
        return self.wait(d, limit, step)

    def wait(self, d: Deferred[Any], limit: float = 600.0, step: float = 0.01) -> Any:
        out: list[Any] = []
        d.addBoth(out.append)
        spent = 0.0
        while not out and spent < limit:
            self.clock.advance(step)
            spent += step
        assert out, f"not done after {limit} clock seconds"
        result = out[0]
        if hasattr(result, "raiseException"):
            result.raiseException()
        return result


def make_cluster(tmp: Path, n: int = 3, *, lifetime_ms: int = 4000, delays: dict[int, float] | None = None,
                 fail: set[int] | None = None, placer: Callable[[str], Placer] | None = None,
                 cs_capacity: int = 65536, vcpus: int = 1, auto: bool = False, hello_ttl: float = 3.0) -> Cluster:
    """``auto``: each node places predecessors with an :class:`AutoPlacer` over a neighbour table
    that :meth:`Cluster.hellos` fills."""
    clock = Clock()
    config = Config(node=NodeSettings(function_timeout=3600.0),
                    icn=IcnSettings(interest_lifetime_ms=lifetime_ms, cs_capacity_packets=cs_capacity))
    cluster = Cluster(clock, {}, tmp, config)
    from sflow.icn.forwarder import ForwarderConfig

    for i in range(n):
        name = f"n{i}"
        forwarder = Forwarder(clock, ForwarderConfig(cs_capacity=cs_capacity))
        executor = FakeExecutor(clock, delays, fail)

        def connector(address: str, _me: str = name) -> Deferred[Face]:
            if address in cluster.down:
                return Deferred.fromCoroutine(_unreachable(address))
            ours, theirs = linked_faces(clock, scope=FaceScope.NON_LOCAL, names=(f"inproc://{_me}", f"inproc://{address}"))
            cluster.nodes[address].forwarder.add_face(theirs)
            cluster.links.append((_me, address, ours, theirs))
            for face in (ours, theirs):
                deliver = face._deliver

                def lossy(kind: str, packet: Any, lp: Any, _deliver: Any = deliver) -> None:
                    if clock.seconds() < cluster.lose_until:
                        cluster.lost += 1
                        return
                    _deliver(kind, packet, lp)

                face._deliver = lossy  # type: ignore[method-assign]
            return succeed(ours)

        store = ResultStore(tmp / name / "store", 1 << 30, _signer(), 3_600_000, blocking=inline)
        table = NeighbourTable(ttl=hello_ttl, max_neighbours=10) if auto else None
        auto_placer = AutoPlacer(clock, table) if table is not None else None
        chosen = auto_placer if auto_placer is not None else placer(name) if placer else None
        service = SfcService(clock, forwarder, config, SECRET, executor, tmp / name / "work", store, name=name,
                             connect_peer=connector, placer=chosen, vcpus=vcpus)
        if auto_placer is not None:
            auto_placer.attach(service)
        cluster.nodes[name] = Node(name, forwarder, service, executor, auto_placer, table)
    return cluster


async def _unreachable(address: str) -> Face:
    raise ConnectionRefusedError(f"{address} is down")


def inline(call: Callable[..., Any], *args: Any) -> Deferred[Any]:
    """A store's blocking runner for tests on a Clock: the call, right away (its outcome in a fired
    Deferred)."""
    return maybeDeferred(call, *args)


class HeldRunner:
    """A store's blocking runner that holds every call until the test releases it: what the store
    does on the calling (reactor) thread is whatever happens before a release."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, tuple[Any, ...], Deferred[Any]]] = []

    def __call__(self, call: Any, *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((call, args, d))
        return d

    def release(self, hold: tuple[str, ...] = ()) -> list[str]:
        """Run the held calls (and those they lead to) in order, but for those named in ``hold``,
        which stay held; the names of those run."""
        done, kept = [], []
        while self.calls:
            call, args, d = self.calls.pop(0)
            if call.__name__ in hold:
                kept.append((call, args, d))
                continue
            done.append(call.__name__)
            maybeDeferred(call, *args).chainDeferred(d)
        self.calls = kept
        return done


def fired(d: Deferred[Any]) -> Any:
    """The result of a Deferred that has fired (raises its failure)."""
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def stored_records(results: Path) -> list[Any]:
    """The live records of every pack in a store's ``results`` directory, pack by pack in the order
    they were made (:func:`sflow.sfc.packs.scan`)."""
    from sflow.sfc.packs import PACK_SUFFIX, scan

    return [record for pack in sorted(results.glob(f"*{PACK_SUFFIX}")) for record in scan(pack)[0]]


def _signer() -> Any:
    from sflow.sfc.consumer import cluster_signer

    return cluster_signer(SECRET)


def job(tasks: list[dict[str, Any]], job_id: int = 7) -> Job:
    return job_from_dict(json.loads(json.dumps({"job_id": job_id, "task_list": tasks})))


def chain_tasks(n: int, prefix: str = "step") -> list[dict[str, Any]]:
    tasks = []
    for i in range(1, n + 1):
        src = f" $F^{i - 1}" if i > 1 else ""
        tasks.append({
            "task_id": i, "workload": 1000, "cmd": f"{prefix}{i}{src} > ./out/{i}.txt",
            "out_file_list": [{"path": f"./out/{i}.txt", "size": 0.1, "dest_task_id": [i + 1] if i < n else []}],
        })
    return tasks


def fork_join_tasks(head: str = "seq 10") -> list[dict[str, Any]]:
    return [
        {"task_id": 1, "workload": 1000, "cmd": f"{head} > ./out/a.txt",
         "out_file_list": [{"path": "./out/a.txt", "size": 0.1, "dest_task_id": [2, 3]}],
         "out_value": {"val": "4", "size": 0, "dest_task_id": [2]}},
        {"task_id": 2, "workload": 1000, "cmd": "left $V^1 $F^1 > ./out/b.txt",
         "out_file_list": [{"path": "./out/b.txt", "size": 0.1, "dest_task_id": [4]}]},
        {"task_id": 3, "workload": 1000, "cmd": "right $F^1 > ./out/c.txt",
         "out_file_list": [{"path": "./out/c.txt", "size": 0.1, "dest_task_id": [4]}]},
        {"task_id": 4, "workload": 1000, "cmd": "join $F^2 $F^3 > ./out/d.txt",
         "out_file_list": [{"path": "./out/d.txt", "size": 0.1, "dest_task_id": []}]},
    ]


def fan_tasks(width: int = 6, workload: float = 1000.0) -> list[dict[str, Any]]:
    """A source (task 1), ``width`` functions that each take its output (2 … width+1), and a sink
    that takes all of theirs (width+2): the fork–join of issue 16."""
    sink = width + 2
    middle = list(range(2, sink))
    tasks: list[dict[str, Any]] = [
        {"task_id": 1, "workload": 10, "cmd": "seq 6 > ./out/src.txt",
         "out_file_list": [{"path": "./out/src.txt", "size": 0.001, "dest_task_id": middle}]},
    ]
    for t in middle:
        tasks.append({"task_id": t, "workload": workload, "cmd": f"sleep{t} $F^1 > ./out/m{t}.txt",
                      "out_file_list": [{"path": f"./out/m{t}.txt", "size": 0.001, "dest_task_id": [sink]}]})
    files = " ".join(f"$F^{t}" for t in middle)
    tasks.append({"task_id": sink, "workload": 10, "cmd": f"cat {files} > ./out/sink.txt",
                  "out_file_list": [{"path": "./out/sink.txt", "size": 0.001, "dest_task_id": []}]})
    return tasks
