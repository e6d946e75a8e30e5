"""Running an experiment's matrix: for each run, start its nodes (local processes, behind emulated
links when there is a topology), warm their caches when asked, run the job with the faults of the
spec, sample the nodes' CPU and memory meanwhile, read their counters before and after, stop
them, and record everything in the store in one transaction. A run that fails is recorded as
failed with its error, and the matrix goes on.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from twisted.internet import defer, task

from sflow.config import Config
from sflow.delegator.local import LocalCluster, free_ports, local_environment
from sflow.delegator.run import RunOptions, dispatch, prepare, with_local_cluster
from sflow.delegator.trace import CACHED, NOT_RUN, Trace, run_kind, write_trace
from sflow.errors import JobFailed, SflowError
from sflow.experiment import procstat
from sflow.experiment.jobs import job_document, job_text
from sflow.experiment.links import links_file_to_dict
from sflow.experiment.matrix import PlannedRun
from sflow.experiment.nodes import LocalNodes, NodeSet
from sflow.experiment.spec import Fault, Spec
from sflow.experiment.store import RunRecord, file_sha
from sflow.experiment.topology import Topology
from sflow.jsonio import environment_to_dict, job_from_dict, write_json
from sflow.model.infra import Environment
from sflow.model.workflow import Job
from sflow.node.status import query_status

log = logging.getLogger(__name__)

#: seconds between looks at the nodes' logs (for ``when = "function N starts"``)
WATCH_INTERVAL = 0.05
#: how long a run may take beyond its timeout_s (starting and stopping its nodes) before it is abandoned
RUN_MARGIN_S = 60.0
STATUS_TIMEOUT = 5.0
_FUNCTION_START = re.compile(r"event=function_start\b.*?\btask=(\d+)")


@dataclass(frozen=True, slots=True)
class RunContext:
    """What every run of one invocation shares."""

    spec: Spec
    outdir: Path
    config: Config
    secret: bytes
    secret_file: Path
    settings_file: Path | None
    session_id: int

    def host_cluster(self) -> Any:
        """The spec's hosts as a cluster reached over SSH with the settings' host-key policy."""
        from sflow.cluster.ops import Cluster
        from sflow.cluster.ssh import ParamikoConnector
        from sflow.ssh import SshOptions

        assert self.spec.hosts is not None
        security = self.config.security
        options = SshOptions(known_hosts=security.known_hosts, accept_new_host_keys=security.accept_new_host_keys)
        return Cluster(self.spec.hosts, ParamikoConnector(options), (self.secret,))


@dataclass(slots=True)
class _Nodes:
    """The nodes of one run: names, addresses, the node set that runs them."""

    names: tuple[str, ...]
    cluster: NodeSet
    base: Path
    topology: Topology | None
    links_files: list[Path] = field(default_factory=list)
    down: set[frozenset[str]] = field(default_factory=set)
    addresses: list[str] = field(default_factory=list)

    def index(self, name: str) -> int:
        return self.names.index(name)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunExecution:
    """One run, from starting its nodes to the :class:`RunRecord` (see the module docstring)."""

    def __init__(self, reactor: Any, ctx: RunContext, planned: PlannedRun) -> None:
        self.reactor = reactor
        self.ctx = ctx
        self.planned = planned
        self.spec = ctx.spec
        self.rundir = ctx.outdir / "runs" / planned.run_id.replace("/", "_")
        self.job_doc = job_document(next(j for j in self.spec.jobs if j.name == planned.job))
        self.job: Job = job_from_dict(self.job_doc, planned.job)
        self.fault_rows: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []
        self._t0 = 0.0
        self._t0_wall = 0.0
        self._timers: list[Any] = []
        self._pending_when: dict[int, list[tuple[int, Fault]]] = {}
        self._log_offsets: dict[int, int] = {}
        self._last_usage: dict[int, tuple[float, procstat.Usage]] = {}

    # -- the run ---------------------------------------------------------------------------------

    async def run(self) -> RunRecord:
        if self.rundir.exists():
            shutil.rmtree(self.rundir)  # an interrupted attempt of this run: it starts afresh
        self.rundir.mkdir(parents=True)
        nodes = self._nodes()
        began = time.monotonic()
        started_at = _now_iso()
        timing: dict[str, float] = {}
        outcome: dict[str, Any] = {}

        def body(addresses: list[str]) -> defer.Deferred[None]:
            timing["ready"] = time.monotonic()
            nodes.addresses = addresses
            d = defer.Deferred.fromCoroutine(self._body(nodes, outcome))

            def ended(result: Any) -> Any:
                timing["ended"] = time.monotonic()
                return result

            return d.addBoth(ended)

        d = with_local_cluster(self.reactor, nodes.cluster, body)
        d.addTimeout(self.spec.timeout_s + RUN_MARGIN_S, self.reactor)
        error = ""
        try:
            await d
        except defer.TimeoutError:
            error = f"the run did not end within {self.spec.timeout_s + RUN_MARGIN_S:g} s (timeout_s + {RUN_MARGIN_S:g})"
            await nodes.cluster.stop()
        except Exception as exc:  # noqa: BLE001 - the nodes did not start: recorded (see _error)
            error = _error(exc)
        finally:
            self._cancel_timers()
        finished = time.monotonic()
        error = outcome.get("error", error)
        trace: Trace | None = outcome.get("trace")
        setup_s = timing.get("ready", finished) - began
        teardown_s = finished - timing.get("ended", finished)
        record = self._record(nodes, trace, error, outcome, started_at, finished - began, setup_s, teardown_s)
        self._tidy()
        return record

    def _nodes(self) -> _Nodes:
        spec = self.spec
        topology = spec.links_topology()
        names = spec.node_names
        base = self.rundir / "nodes"
        if spec.hosts is not None:
            from sflow.experiment.hosts import HostNodes

            on_hosts = HostNodes(self.reactor, self.ctx.host_cluster(), self.planned.mode, base, self.ctx.secret,
                                 vcpus=spec.vcpus, hello_port=self.ctx.config.icn.hello_port,
                                 sealed=self.ctx.config.security.channel_encryption)
            return _Nodes(names, on_hosts, base, None)
        if topology is not None:
            hosts = [topology.address(n) for n in names]
        else:
            hosts = ["127.0.0.1"] * len(names)
        listens = [f"{h}:{free_ports(1, host=h)[0]}" for h in hosts]
        if spec.topology is not None:
            vcpus = [n.vcpus for n in spec.topology.nodes]
        else:
            per_node = spec.vcpus or max(1, (os.cpu_count() or 1) // max(1, len(names)))
            vcpus = [per_node] * len(names)
        env: list[dict[str, str]] = [{} for _ in names]
        neighbours = None
        links_files: list[Path] = []
        if topology is not None:
            base.mkdir(parents=True, exist_ok=True)
            links_files = [base / f"{n}.links.json" for n in names]
            self._write_links(topology, names, links_files, set())
            env = [{"SFLOW_NODE_LINKS": str(p)} for p in links_files]
            neighbours = [[names.index(x) for x in topology.neighbours(n)] for n in names]
        cluster = LocalCluster(self.reactor, listens, base, self.ctx.secret_file,
                               str(self.ctx.settings_file) if self.ctx.settings_file else None,
                               mode=self.planned.mode, vcpus=vcpus, node_env=env, neighbours=neighbours)
        return _Nodes(names, LocalNodes(cluster), base, topology, links_files)

    def _write_links(self, topology: Topology, names: tuple[str, ...], files: list[Path],
                     down: set[frozenset[str]]) -> None:
        for name, path in zip(names, files):
            doc = topology.links_file(name, self.spec.seed + self.planned.repetition, down)
            tmp = path.with_suffix(".tmp")
            write_json(tmp, links_file_to_dict(doc))
            tmp.replace(path)  # a node reloading it never reads half a file

    def _environment(self, nodes: _Nodes) -> Environment:
        if self.spec.topology is not None:
            ports = {n: int(a.rpartition(":")[2]) for n, a in zip(nodes.names, nodes.addresses)}
            return self.spec.topology.environment(ports)
        return local_environment(nodes.addresses, nodes.cluster.vcpus)

    def _costs(self) -> Any:
        """The spec's measured costs, or the settings' (``scheduler.costs``), or None."""
        if self.spec.costs is not None:
            return self.spec.costs
        if self.ctx.config.scheduler.costs:
            from sflow.jsonio import load_costs

            return load_costs(Path(self.ctx.config.scheduler.costs).expanduser())
        return None

    def _problem(self, env: Environment) -> Any:
        """The scheduling problem; on a topology, transfers cost what its paths say."""
        from sflow.sched.problem import Problem

        problem = Problem.from_env_job(env, self.job, name=self.planned.job, costs=self._costs())
        topology = self.spec.topology
        if topology is None:
            return problem
        import dataclasses

        import numpy as np

        names = list(problem.hosts)
        inv = np.array([[topology.transfer_cost(a, b)[1] for b in names] for a in names], dtype=np.float64)
        return dataclasses.replace(problem, inv_bw=inv)

    async def _body(self, nodes: _Nodes, outcome: dict[str, Any]) -> None:
        config = self.ctx.config
        env = self._environment(nodes)
        outcome["env"] = env
        mode = self.planned.mode
        if self.planned.cache == "warm":
            try:
                warm = prepare(env, self.job, config, self.planned.algorithm, "<env>", self._problem(env),
                               costs=self._costs())
                await dispatch(self.reactor, self.ctx.secret, warm, self.job, env, config,
                               RunOptions(mode, self.rundir / "warm-up"), None, nodes.addresses)
            except Exception as exc:  # noqa: BLE001 - recorded as the run's error (see _error)
                outcome["error"] = f"the warm-up run failed: {_error(exc)}"
                return
        outcome["before"] = await self._statuses(nodes)
        prepared = prepare(env, self.job, config, self.planned.algorithm, "<env>", self._problem(env),
                           costs=self._costs())
        outcome["predicted"] = prepared.schedule.makespan if prepared.schedule is not None and mode != "auto" else None
        self._t0 = self.reactor.seconds()
        self._t0_wall = time.time()
        sampler = task.LoopingCall(self._sample, nodes)
        sampler.clock = self.reactor
        sampler.start(nodes.cluster.sample_interval, now=True)
        self._arm_faults(nodes)
        self._watch_start(nodes)
        try:
            trace = await dispatch(self.reactor, self.ctx.secret, prepared, self.job, env, config,
                                   RunOptions(mode, self.rundir / "out", next_host=self._next_host(nodes)), None,
                                   nodes.addresses)
            outcome["trace"] = trace
            write_trace(self.rundir / "trace.json", trace)
        except Exception as exc:  # noqa: BLE001 - recorded as the run's error (see _error)
            outcome["error"] = _error(exc)
            outcome["exception"] = exc
        finally:
            sampler.stop()
            self._sample(nodes)  # the end of the run, so that even a short run has its samples
            self._pending_when.clear()  # a trigger that had not come by the end never will
            self._cancel_timers()
        outcome["after"] = await self._statuses(nodes)

    def _next_host(self, nodes: _Nodes) -> Callable[[str, str], str] | None:
        """Static ICN on a topology: the next node's address on the path from one node to another,
        so that the delegator routes results hop by hop through the forwarders between."""
        topology = self.spec.topology
        if topology is None or self.planned.mode != "icn":
            return None
        paths = topology.paths(nodes.down)
        name_of = {topology.address(n): n for n in topology.names}

        def next_host(here: str, there: str) -> str:
            path = paths.get((name_of[here], name_of[there]))
            return topology.address(path[1]) if path else there

        return next_host

    # -- node status, samples ----------------------------------------------------------------------

    async def _statuses(self, nodes: _Nodes) -> dict[str, dict[str, Any]]:
        async def one(name: str, address: str) -> tuple[str, dict[str, Any] | None]:
            if not nodes.cluster.running(nodes.index(name)):
                return name, None
            try:
                status: dict[str, Any] = dict(await query_status(
                    self.reactor, address, self.ctx.secret, STATUS_TIMEOUT, self.ctx.config.security.channel_encryption
                ))
                return name, status
            except (SflowError, defer.TimeoutError) as exc:
                log.info("event=no_status node=%s error=%s", name, exc)
                return name, None

        got = await defer.gatherResults([defer.Deferred.fromCoroutine(one(n, a))
                                         for n, a in zip(nodes.names, nodes.addresses)])
        return {name: status for name, status in got if status is not None}

    def _sample(self, nodes: _Nodes) -> None:
        now = self.reactor.seconds()
        for i, name in enumerate(nodes.names):
            if not nodes.cluster.running(i):
                continue
            pid = nodes.cluster.pid(i)
            use = nodes.cluster.usage(i)
            if use is None:
                continue
            last = self._last_usage.get(pid)
            self._last_usage[pid] = (now, use)
            if last is None or now <= last[0]:
                continue
            dt = now - last[0]
            self.samples.append({
                "run_id": self.planned.run_id, "node": name, "t_s": round(now - self._t0, 3),
                "cpu_percent": round(max(0.0, use.cpu_s - last[1].cpu_s) / dt * 100, 1), "rss_kb": use.rss_kb,
                "functions_cpu_percent": round(max(0.0, use.children_cpu_s - last[1].children_cpu_s) / dt * 100, 1),
                "functions_rss_kb": use.children_rss_kb,
            })

    # -- faults ----------------------------------------------------------------------------------

    def _arm_faults(self, nodes: _Nodes) -> None:
        for idx, fault in enumerate(self.spec.faults):
            self.fault_rows.append({"run_id": self.planned.run_id, "idx": idx, "kind": fault.kind,
                                    "target": "–".join(fault.target), "trigger": fault.trigger, "applied_s": None,
                                    "effect": "not applied: the run ended before its trigger"})
            if fault.at_s is not None:
                self._later(fault.at_s, self._apply, nodes, idx, fault)
            elif fault.when_task is not None:
                self._pending_when.setdefault(fault.when_task, []).append((idx, fault))

    def _later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        self._timers.append(self.reactor.callLater(delay, fn, *args))

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers.clear()

    def _effect(self, idx: int, text: str, applied: bool = True) -> None:
        row = self.fault_rows[idx]
        if applied:
            row["applied_s"] = round(self.reactor.seconds() - self._t0, 3)
        row["effect"] = text
        log.info("event=fault run=%s fault=%d effect=%s", self.planned.run_id, idx, text)

    def _apply(self, nodes: _Nodes, idx: int, fault: Fault) -> None:
        cluster = nodes.cluster
        if fault.kind == "link_down":
            a, b = fault.target
            key = frozenset(fault.target)
            self._set_link(nodes, key, down=True)
            paths = nodes.topology.paths(nodes.down) if nodes.topology is not None else {}
            cut = sorted({tuple(sorted(p)) for p, path in paths.items() if path is None})
            text = f"link {a}–{b} down; " + (f"{len(cut)} node pairs cut off" if cut else "every node still reaches every other")
            if fault.duration_s:
                self._later(fault.duration_s, self._set_link, nodes, key, False)
                text += f"; up again after {fault.duration_s:g} s"
            self._effect(idx, text)
            return
        node = fault.target[0]
        i = nodes.index(node)
        pid = cluster.pid(i)
        if fault.kind == "kill":
            sent = cluster.crash(i)
            self._effect(idx, f"SIGKILL to {node} (pid {pid})" if sent else f"{node} had exited already")
        elif fault.kind == "stop":
            sent = cluster.signal(i, "STOP")
            text = f"SIGSTOP to {node} (pid {pid})" if sent else f"{node} had exited already"
            if sent and fault.duration_s:
                self._later(fault.duration_s, cluster.signal, i, "CONT")
                text += f"; SIGCONT after {fault.duration_s:g} s"
            self._effect(idx, text)
        elif fault.kind == "restart":
            began = self.reactor.seconds()
            self._effect(idx, f"SIGKILL to {node} (pid {pid}), starting it again")

            def ready(address: str) -> None:
                self._effect(idx, f"SIGKILL to {node} (pid {pid}); started again at {address}, ready after "
                                  f"{self.reactor.seconds() - began:.2f} s", applied=False)

            def failed(failure: Any) -> None:
                self._effect(idx, f"SIGKILL to {node} (pid {pid}); it did not start again: "
                                  f"{failure.getErrorMessage()}", applied=False)

            cluster.restart(i).addCallbacks(ready, failed)

    def _set_link(self, nodes: _Nodes, key: frozenset[str], down: bool) -> None:
        if down:
            nodes.down.add(key)
        else:
            nodes.down.discard(key)
        assert nodes.topology is not None
        self._write_links(nodes.topology, nodes.names, nodes.links_files, nodes.down)
        for i in range(len(nodes.names)):
            nodes.cluster.signal(i, "HUP")

    # -- watching the logs for "function N starts" -------------------------------------------------

    def _watch_start(self, nodes: _Nodes) -> None:
        for i in range(len(nodes.names)):
            path = nodes.cluster.log_file(i)
            self._log_offsets[i] = path.stat().st_size if path.exists() else 0
        if self._pending_when:
            watcher = task.LoopingCall(self._watch_once, nodes)
            watcher.clock = self.reactor
            watcher.start(WATCH_INTERVAL, now=False)
            self._timers.append(_Stopper(watcher))

    def _watch_once(self, nodes: _Nodes) -> None:
        if not self._pending_when:
            return
        for i in range(len(nodes.names)):
            path = nodes.cluster.log_file(i)
            try:
                with path.open("rb") as f:
                    f.seek(self._log_offsets.get(i, 0))
                    data = f.read()
            except OSError:
                continue
            cut = data.rfind(b"\n") + 1
            self._log_offsets[i] = self._log_offsets.get(i, 0) + cut
            for m in _FUNCTION_START.finditer(data[:cut].decode("utf-8", "replace")):
                for idx, fault in self._pending_when.pop(int(m.group(1)), []):
                    self._apply(nodes, idx, fault)

    # -- the record ------------------------------------------------------------------------------

    def _record(self, nodes: _Nodes, trace: Trace | None, error: str, outcome: Mapping[str, Any], started_at: str,
                wall_s: float, setup_s: float, teardown_s: float) -> RunRecord:
        run_id = self.planned.run_id
        env: Environment | None = outcome.get("env")
        job_content = job_text(self.job_doc)
        env_content = json.dumps(environment_to_dict(env), indent=1) if env is not None else "{}"
        files = [("job", self.planned.job, job_content), ("env", f"{self.planned.job}-{run_id}", env_content)]
        if self.spec.topology_path is not None:
            files.append(("topology", str(self.spec.topology_path), self.spec.topology_path.read_text(encoding="utf-8")))
        if self.spec.costs_path is not None:
            files.append(("costs", str(self.spec.costs_path), self.spec.costs_path.read_text(encoding="utf-8")))
        status = "ok" if trace is not None and not error else "failed"
        run = {
            "run_id": run_id, "session_id": self.ctx.session_id, "job": self.planned.job, "mode": self.planned.mode,
            "algorithm": self.planned.algorithm, "cache": self.planned.cache, "repetition": self.planned.repetition,
            "status": status, "makespan_s": trace.makespan if trace is not None else None,
            "predicted_s": outcome.get("predicted"), "error": error,
            "faults": json.dumps([{k: r[k] for k in ("kind", "target", "trigger", "applied_s", "effect")}
                                  for r in self.fault_rows]),
            "started_at": started_at, "wall_s": round(wall_s, 3), "setup_s": round(setup_s, 3),
            "teardown_s": round(teardown_s, 3), "nodes": len(nodes.names),
            "topology": nodes.topology.name if nodes.topology is not None else "",
            "seed": self.spec.seed + self.planned.repetition, "job_sha256": file_sha(job_content),
            "env_sha256": file_sha(env_content),
        }
        label = self._labels(nodes)
        functions = self._functions(trace, outcome.get("exception"), label)
        self._add_usage(functions, outcome.get("after", {}))
        transfers = [{"run_id": run_id, "task": x.task, "path": x.path, "src_node": label(x.src_node),
                      "dst_node": label(x.dst_node), "bytes": x.bytes, "start_s": x.start, "finish_s": x.finish}
                     for x in (trace.transfers if trace is not None else ())]
        counters, link_bytes = _deltas(run_id, outcome.get("before", {}), outcome.get("after", {}))
        return RunRecord(run, functions, transfers, counters, link_bytes, self.samples, self.fault_rows, files)

    def _labels(self, nodes: _Nodes) -> Callable[[str], str]:
        """A node's name (node-0, or its topology name) for an address the trace uses."""
        names = dict(zip(nodes.addresses, nodes.names))
        return lambda address: names.get(address, address)

    def _functions(self, trace: Trace | None, exc: Any, label: Callable[[str], str]) -> list[dict[str, Any]]:
        run_id = self.planned.run_id
        rows = []
        for t in trace.tasks if trace is not None else ():
            kind = run_kind(t.where)
            outcome = "cache hit" if kind == CACHED else "not needed" if kind == NOT_RUN else "executed"
            rows.append({
                "run_id": run_id, "task": t.task, "node": label(t.node), "vcpu": t.vcpu,
                "start_s": t.start if kind != NOT_RUN else None, "finish_s": t.finish if kind != NOT_RUN else None,
                "outcome": outcome, "detail": t.where, "cache_node": label(t.node) if kind == CACHED else "",
                "predicted_start_s": t.predicted_start, "predicted_finish_s": t.predicted_finish,
                "exit_status": 0 if outcome == "executed" else None, "cpu_s": None, "max_rss_kb": None,
            })
        if isinstance(exc, JobFailed):
            rows.append({
                "run_id": run_id, "task": exc.task_id, "node": label(exc.node), "vcpu": "", "start_s": None,
                "finish_s": None, "outcome": "failed", "detail": exc.reason, "cache_node": "",
                "predicted_start_s": None, "predicted_finish_s": None, "exit_status": exc.exit_code, "cpu_s": None,
                "max_rss_kb": None,
            })
        return rows

    def _add_usage(self, functions: list[dict[str, Any]], after: Mapping[str, Mapping[str, Any]]) -> None:
        """Each executed function's CPU time and peak memory, as its node measured them (the last
        time it ran the function during this run)."""
        for row in functions:
            if row["outcome"] != "executed":
                continue
            usage = ((after.get(row["node"]) or {}).get("reports") or {}).get("usage") or []
            mine = [u for u in usage if u.get("task") == row["task"] and float(u.get("started", 0)) >= self._t0_wall]
            if mine:
                row["cpu_s"] = mine[-1].get("cpu_s")
                row["max_rss_kb"] = mine[-1].get("max_rss_kb")

    def _tidy(self) -> None:
        """Keep the nodes' logs, the links files and the trace; drop work directories and stores."""
        base = self.rundir / "nodes"
        if base.is_dir():
            for entry in base.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
        for sub in ("warm-up",):
            shutil.rmtree(self.rundir / sub, ignore_errors=True)


def _error(exc: BaseException) -> str:
    """A failed run's error as recorded. Whatever ended the run is its error, an SflowError or
    not (a connection refused by a killed node that the dispatch did not expect): recorded, the
    matrix goes on."""
    if isinstance(exc, SflowError):
        return str(exc)
    log.info("event=run_failed_unexpectedly error=%r", exc, exc_info=exc)
    return f"{type(exc).__name__}: {exc}"


class _Stopper:
    """A LoopingCall kept with the timers, so that cancelling the timers stops it."""

    def __init__(self, loop: task.LoopingCall) -> None:
        self.loop = loop

    def active(self) -> bool:
        return bool(self.loop.running)

    def cancel(self) -> None:
        self.loop.stop()


def _flat_counters(status: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (status.get("counters") or {}).items():
        out[f"node.{key}"] = float(value)
    icn = status.get("icn_status") or {}
    for key, value in (icn.get("counters") or {}).items():
        out[f"sfc.{key}"] = float(value)
    for key, value in (icn.get("forwarder") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"fwd.{key}"] = float(value)
    return out


def _links(status: Mapping[str, Any]) -> dict[str, int]:
    """Bytes a node sent over each emulated link (its status's ``reports.links.bytes``)."""
    return dict(((status.get("reports") or {}).get("links") or {}).get("bytes") or {})


def _deltas(run_id: str, before: Mapping[str, Mapping[str, Any]],
            after: Mapping[str, Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Counters and link bytes of the recorded run: after minus before (a node that was restarted
    counts from its restart)."""
    counters: list[dict[str, Any]] = []
    links: dict[tuple[str, str], int] = {}
    for node, status in sorted(after.items()):
        old = _flat_counters(before.get(node, {}))
        for key, value in sorted(_flat_counters(status).items()):
            base = old.get(key, 0.0)
            counters.append({"run_id": run_id, "node": node, "counter": key,
                             "value": value - base if value >= base else value})
        old_links = _links(before.get(node, {}))
        for link, value in _links(status).items():
            base = old_links.get(link, 0)
            delta = value - base if value >= base else value
            src, _, dst = link.partition(">")
            if delta:
                links[(src, dst)] = links.get((src, dst), 0) + int(delta)
    link_rows = [{"run_id": run_id, "src": s, "dst": d, "bytes": b} for (s, d), b in sorted(links.items())]
    return counters, link_rows

