"""The node daemon's logic: jobs, their state machines, peers, and the executor.

:class:`NodeService` is the handler of every channel the node has (connections it accepted from the
delegator and other nodes, and connections it opened to other nodes). It turns messages into
events for each job's :class:`~sflow.node.state.JobState` and performs the actions that come back:
running a function through the executor, streaming a file to another node or back to the
delegator, reporting progress to the job's delegator.

A function that fails, a malformed frame, an unauthenticated peer or a peer that disappears affects
at most the job concerned; the node itself keeps serving. A job whose delegator goes away (its
connection closes, or falls silent past the heartbeat bound) is cancelled and its directory
removed. After the delegator lost another node it re-plans: this node may get a revised plan
(``replan``: new functions, new routes, and files to ask peers for with ``want``), and a failed
function may be run again (``retry``) in a fresh working directory.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from sflow import __version__
from sflow.config import Config
from sflow.node.plan import NodePlan, plan_from_wire
from sflow.errors import ProtocolError, SflowError
from sflow.model.workflow import TaskId
from sflow.node.channel import Channel, Delivered, connect
from sflow.node.execution import ExecRequest, ExecResult
from sflow.node.liveness import Heartbeat
from sflow.node.owner import mark_job, unmark_job
from sflow.node.peers import PeerPool
from sflow.node.plan import PlannedTask, Pull, pulls_from_wire
from sflow.node.protocol import Message
from sflow.node.state import Action, AllDone, JobState, ReturnFile, ReturnValue, Run, SendFile, SendValue
from sflow.node.transfer import AlreadyHave, FileSink, TransferError, safe_target

#: where a retried function runs, inside its job directory: ``.sflow-retry/<task>-<attempt>``
RETRY_DIR = ".sflow-retry"

log = logging.getLogger(__name__)


class Executor(Protocol):
    """What the node needs from :class:`sflow.node.execution.Executor` (fakes in unit tests)."""

    def run(self, request: ExecRequest) -> defer.Deferred[ExecResult]: ...

    def cancel_run(self, run_key: str) -> None: ...

    def shutdown(self) -> defer.Deferred[Any]: ...

    def prepare_directory(self, directory: Path) -> None: ...


@dataclass(slots=True)
class NodeJob:
    plan: NodePlan
    state: JobState
    root: Path
    delegator: Channel

    @property
    def key(self) -> str:
        return self.plan.key


class NodeService:
    """One per node process. ``name`` is the node's ``host:port`` (set once it listens)."""

    def __init__(
        self,
        reactor: Any,
        config: Config,
        secret: bytes,
        executor: Executor,
        workdir: Path,
        vcpus: int,
        cpu_count: int,
    ) -> None:
        self.reactor = reactor
        self.config = config
        self._secret = secret
        self.executor = executor
        self.workdir = workdir
        self.vcpus = vcpus
        self._cpu_count = max(1, cpu_count)
        self.name = ""
        self.heartbeat = Heartbeat.from_settings(config.node)
        self.jobs: dict[str, NodeJob] = {}
        self.counters: Counter[str] = Counter()
        self.started = reactor.seconds()
        self.stopping = False
        self._channels: set[Channel] = set()
        self._peers: PeerPool[Channel] = PeerPool(self._connect_peer, lambda ch: not ch.closed)
        #: the ICN side (sflow.sfc.node.IcnNode) when the node runs with --mode icn|auto
        self.icn: Any = None
        #: further sections of the status reply, each made when asked (emulated links' counters…)
        self.reports: dict[str, Callable[[], Any]] = {}
        #: one function per vCPU at a time across jobs: who holds each vCPU, and who waits for it
        self._vcpu_holder: dict[str, tuple[str, TaskId]] = {}
        self._vcpu_waiting: dict[str, deque[tuple[NodeJob, Run]]] = {}

    # -- wiring ----------------------------------------------------------------------------------

    def factory(self) -> Factory:
        return Factory.forProtocol(self._accept)

    def _accept(self) -> Channel:
        self.counters["connections"] += 1
        return Channel("server", self._secret, self, self.reactor, self.name, self.config.node.chunk_size,
                       self.heartbeat, self.config.security.channel_encryption)

    # -- ChannelHandler --------------------------------------------------------------------------

    def channel_ready(self, channel: Channel) -> None:
        self._channels.add(channel)

    def channel_closed(self, channel: Channel, reason: str, authenticated: bool) -> None:
        self._channels.discard(channel)
        if not authenticated:
            self.counters["rejected"] += 1
            log.info("event=rejected reason=%s", reason)
            return
        self._peers.forget(channel)
        for job in [j for j in self.jobs.values() if j.delegator is channel]:
            log.warning("event=delegator_lost job=%s reason=%s", job.key, reason)
            self._drop(job, keep=False)

    def message_received(self, channel: Channel, msg: Message) -> None:
        kind = msg["t"]
        if kind == "status":
            channel.send("status_reply", **self.status())
        elif kind == "job":
            self._new_job(channel, msg)
        elif kind == "start":
            job = self._owned(channel, msg)
            log.info("event=job_start job=%s tasks=%d", job.key, len(job.plan.tasks))
            self._perform(job, job.state.start())
        elif kind == "cancel":
            job = self._owned(channel, msg)
            log.info("event=job_cancel job=%s reason=%s", job.key, msg["reason"])
            self._cancel(job)
        elif kind == "end_job":
            self._drop(self._owned(channel, msg), keep=msg["keep"])
        elif kind == "replan":
            self._replan(self._owned(channel, msg), msg)
        elif kind == "retry":
            job = self._owned(channel, msg)
            log.info("event=function_retry job=%s task=%d", job.key, msg["task"])
            self._perform(job, job.state.retry(TaskId(msg["task"])))
        elif kind == "value":
            target = self.jobs.get(msg["job"])
            if target is None:
                # A peer still finishing a job that ended here: not an error of the connection.
                log.info("event=stale_value job=%s task=%s", msg["job"], msg["task"])
                return
            self._perform(target, target.state.value_arrived(TaskId(msg["task"]), msg["val"]))
        elif kind == "want":
            target = self.jobs.get(msg["job"])
            if target is None:
                log.info("event=stale_want job=%s task=%s node=%s", msg["job"], msg["task"], msg["node"])
                return
            self._perform(target, target.state.want(TaskId(msg["task"]), msg["path"], msg["node"]))
        else:
            raise ProtocolError(f"a node does not accept {kind!r} messages")

    def open_sink(self, channel: Channel, begin: Message) -> FileSink:
        job = self._job(begin["job"])
        if not job.state.active:
            raise TransferError(f"job {job.key} is no longer running here")
        if job.state.has(TaskId(begin["task"]), begin["path"]):
            raise AlreadyHave(f"{begin['path']!r} from task {begin['task']} is here already")
        if not job.state.expects_file(TaskId(begin["task"]), begin["path"]):
            raise TransferError(f"{begin['path']!r} from task {begin['task']} is not an expected input here")
        return FileSink(job.root, begin["path"], begin["size"])

    def file_received(self, channel: Channel, begin: Message, path: Path) -> None:
        self.counters["files_received"] += 1
        self.counters["bytes_received"] += begin["size"]
        job = self.jobs.get(begin["job"])
        if job is None:
            # Its job was dropped while the file was written (its delegator went away): a file
            # renamed into place while the job's directory was being removed is removed too.
            self._discard(path)
            return
        if not job.state.active:
            return
        log.debug("event=file_in job=%s task=%s path=%s bytes=%d", job.key, begin["task"], begin["path"], begin["size"])
        # For the trace: a transfer ends when the receiver has the file, not when the sender hears so.
        job.delegator.send("received", job=job.key, task=int(begin["task"]), path=begin["path"], bytes=begin["size"],
                           time=self.reactor.seconds())
        self._perform(job, job.state.file_arrived(TaskId(begin["task"]), begin["path"]))

    def _discard(self, path: Path) -> None:
        """Remove a received file of a job no longer here, and the directories it leaves empty up
        to (not including) the work directory."""
        path.unlink(missing_ok=True)
        for parent in path.parents:
            if parent == self.workdir or self.workdir not in parent.parents:
                return
            try:
                parent.rmdir()
            except OSError:
                return  # not empty: something else is there

    def file_failed(self, channel: Channel, begin: Message, reason: str) -> None:
        job = self.jobs.get(begin["job"])
        log.warning("event=file_failed job=%s task=%s path=%s reason=%s", begin["job"], begin["task"], begin["path"], reason)
        if job is not None:
            job.delegator.send("job_error", job=job.key, reason=f"node {self.name}: input {begin['path']!r}: {reason}")

    # -- queries ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        running = [[key, int(t)] for key, job in self.jobs.items() for t in job.state.running()]
        return {
            "node": self.name,
            "version": __version__,
            "pid": os.getpid(),
            "vcpus": self.vcpus,
            "uptime": self.reactor.seconds() - self.started,
            "running": running,
            "jobs": sorted(self.jobs),
            "counters": dict(self.counters),
            **(
                {"mode": self.icn.mode, "icn": self.icn.address, "icn_status": self.icn.status()}
                if self.icn is not None
                else {}
            ),
            **({"reports": {name: report() for name, report in self.reports.items()}} if self.reports else {}),
        }

    # -- jobs ------------------------------------------------------------------------------------

    def _job(self, key: str) -> NodeJob:
        job = self.jobs.get(key)
        if job is None:
            raise ProtocolError(f"unknown job {key!r}")
        return job

    def _owned(self, channel: Channel, msg: Message) -> NodeJob:
        job = self._job(msg["job"])
        if job.delegator is not channel:
            raise ProtocolError(f"only the delegator of job {job.key} may {msg['t']} it")
        return job

    def _new_job(self, channel: Channel, msg: Message) -> None:
        key = msg["job"]
        try:
            if self.stopping:
                raise SflowError("the node is shutting down")
            plan = plan_from_wire(msg["plan"])
            if plan.key != key:
                raise ProtocolError(f"plan is for job {plan.key}, not {key}")
            if key in self.jobs:
                raise ProtocolError(f"job {key} is already running here")
            root = self.workdir / key
            root.mkdir(parents=True, exist_ok=False)
            mark_job(self.workdir, key)
        except (SflowError, OSError) as exc:
            log.warning("event=job_rejected job=%s reason=%s", key, exc)
            channel.send("rejected", job=key, reason=str(exc))
            return
        self.jobs[key] = NodeJob(plan, JobState(plan), root, channel)
        log.info("event=job_accepted job=%s tasks=%d dir=%s", key, len(plan.tasks), root)
        channel.send("accepted", job=key)

    def _cancel(self, job: NodeJob) -> None:
        running = job.state.cancel()
        if running:
            self.executor.cancel_run(job.key)

    def _drop(self, job: NodeJob, keep: bool) -> None:
        self._cancel(job)
        self.jobs.pop(job.key, None)
        if not keep:
            shutil.rmtree(job.root, ignore_errors=True)
        else:
            shutil.rmtree(job.root / RETRY_DIR, ignore_errors=True)
        unmark_job(self.workdir, job.key)
        log.info("event=job_end job=%s kept=%s", job.key, keep)

    def _replan(self, job: NodeJob, msg: Message) -> None:
        """A revised plan from the delegator (it lost a node): new functions and routes here, and
        files or values to ask peers for (each ``want`` names this node as where to send)."""
        plan = plan_from_wire(msg["plan"])
        if plan.key != job.key:
            raise ProtocolError(f"replan is for job {plan.key}, not {job.key}")
        pulls = pulls_from_wire(msg["pulls"])
        log.info("event=job_replanned job=%s tasks=%d pulls=%d", job.key, len(plan.tasks), len(pulls))
        self._perform(job, job.state.revise(plan))
        for pull in pulls:
            d = self._peer(pull.node)
            d.addCallback(self._want, job, pull)
            d.addErrback(self._transfer_failed, job, int(pull.pred), pull.path, pull.node, "ask for")
        job.delegator.send("replanned", job=job.key)

    def _want(self, channel: Channel, job: NodeJob, pull: Pull) -> None:
        channel.send("want", job=job.key, task=int(pull.pred), path=pull.path, node=self.name)

    # -- actions ---------------------------------------------------------------------------------

    def _perform(self, job: NodeJob, actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, Run):
                self._run(job, action)
            elif isinstance(action, SendFile):
                self._send_file(job, action)
            elif isinstance(action, SendValue):
                self._send_value(job, action)
            elif isinstance(action, ReturnFile):
                self._return_file(job, action)
            elif isinstance(action, ReturnValue):
                job.delegator.send("result_value", job=job.key, task=int(action.task), val=action.val)
            elif isinstance(action, AllDone):
                log.info("event=node_part_done job=%s", job.key)

    def _run(self, job: NodeJob, action: Run) -> None:
        """Start the function now if its vCPU is free; otherwise when another job's function on that
        vCPU ends (each job's state machine keeps one function per vCPU within the job)."""
        vcpu = action.task.vcpu
        if vcpu in self._vcpu_holder:
            log.info("event=function_waits_for_vcpu job=%s task=%d vcpu=%s", job.key, action.task.id, vcpu)
            self._vcpu_waiting.setdefault(vcpu, deque()).append((job, action))
            return
        self._vcpu_holder[vcpu] = (job.key, action.task.id)
        self._start(job, action)

    def _release_vcpu(self, job: NodeJob, tid: TaskId) -> None:
        vcpu = job.state.tasks[tid].vcpu
        if self._vcpu_holder.get(vcpu) != (job.key, tid):
            return
        del self._vcpu_holder[vcpu]
        waiting = self._vcpu_waiting.get(vcpu)
        while waiting:
            next_job, action = waiting.popleft()
            if self.jobs.get(next_job.key) is next_job and next_job.state.active:
                self._run(next_job, action)
                break
        if not waiting:
            self._vcpu_waiting.pop(vcpu, None)

    def _start(self, job: NodeJob, action: Run) -> None:
        task = action.task
        workdir = job.root
        try:
            if action.attempt > 1:
                workdir = _fresh_directory(job.root, task, action.attempt)
            # The job declares its outputs: their directories exist before the function runs.
            for out in task.outputs:
                safe_target(workdir, out.path).parent.mkdir(parents=True, exist_ok=True)
        except (TransferError, OSError) as exc:
            now = self.reactor.seconds()
            self._finished(ExecResult(False, None, f"cannot prepare outputs: {exc}", "", "", "", now, now), job, task.id,
                           workdir)
            return
        pin = (task.cpu_index % self._cpu_count,) if self.config.node.pinning else None
        request = ExecRequest(
            job_id=job.plan.job_id,
            run=job.key,
            task_id=int(task.id),
            cmd=task.cmd,
            workdir=workdir,
            files=dict(action.files),
            values=dict(action.values),
            outputs=tuple(o.path for o in task.outputs),
            docker_image=task.docker_image,
            docker_tar=task.docker_tar,
            cpus=pin,
            timeout=self.config.node.function_timeout,
        )
        self.counters["functions_started"] += 1
        now = self.reactor.seconds()
        # One INFO record per function, when it ends (what ran where, for `sflow cluster logs`);
        # its start is detail (two records per function were a measurable share of its cost).
        log.info("event=function_start job=%s task=%d vcpu=%s", job.key, task.id, task.vcpu)
        job.delegator.send("started", job=job.key, task=int(task.id), vcpu=task.vcpu, time=now)
        d = self.executor.run(request)
        d.addCallback(self._finished, job, task.id, workdir)
        d.addErrback(self._executor_error, job, task.id)

    def _finished(self, result: ExecResult, job: NodeJob, tid: TaskId, workdir: Path) -> None:
        self._release_vcpu(job, tid)
        if self.stopping or self.jobs.get(job.key) is not job:
            log.info("event=function_end_ignored job=%s task=%d ok=%s", job.key, tid, result.ok)
            return
        if workdir != job.root and job.state.active:
            result = _adopt_outputs(result, job.state.tasks[tid], workdir, job.root)
        was_active = job.state.active
        actions = job.state.task_finished(tid, result.ok)
        if not was_active:
            return
        if result.ok:
            self.counters["functions_ok"] += 1
            log.info("event=function_done job=%s task=%d where=%s", job.key, tid, result.where)
            job.delegator.send(
                "done",
                job=job.key,
                task=int(tid),
                started=result.started,
                finished=result.finished,
                where=result.where,
            )
        else:
            self.counters["functions_failed"] += 1
            log.warning(
                "event=function_failed job=%s task=%d exit_status=%s reason=%s",
                job.key,
                tid,
                result.exit_status,
                result.reason,
            )
            job.delegator.send(
                "failed",
                job=job.key,
                task=int(tid),
                reason=result.reason,
                exit_status=result.exit_status,
                stderr_tail=result.stderr_tail,
                started=result.started,
                finished=result.finished,
                where=result.where,
            )
        self._perform(job, actions)

    def _executor_error(self, failure: Failure, job: NodeJob, tid: TaskId) -> None:
        self._release_vcpu(job, tid)
        log.error("event=executor_error job=%s task=%d error=%s", job.key, tid, failure.getErrorMessage())
        job.delegator.send("job_error", job=job.key, reason=f"node {self.name}: task {tid}: {failure.getErrorMessage()}")


    def _output(self, job: NodeJob, path: str) -> Path | None:
        """The output's file, unless a function left a symlink there (it would send what the link
        points to, perhaps outside the job directory): then the job fails."""
        try:
            return safe_target(job.root, path)
        except TransferError as exc:
            self._job_error(job, f"node {self.name}: {exc}")
            return None

    def _send_file(self, job: NodeJob, action: SendFile) -> None:
        source = self._output(job, action.path)
        if source is None:
            return
        header = {"job": job.key, "task": int(action.task), "path": action.path}
        d = self._peer(action.node)
        d.addCallback(lambda ch: ch.send_file(header, source, beneath=job.root))

        def delivered(info: Delivered) -> None:
            self.counters["files_sent"] += 1
            self.counters["bytes_sent"] += info.size
            job.delegator.send(
                "transferred",
                job=job.key,
                task=int(action.task),
                path=action.path,
                to=action.node,
                bytes=info.size,
                started=info.started,
                finished=info.finished,
            )

        d.addCallbacks(delivered, self._transfer_failed,
                       errbackArgs=(job, int(action.task), action.path, action.node, "send"))

    def _send_value(self, job: NodeJob, action: SendValue) -> None:
        d = self._peer(action.node)
        d.addCallback(lambda ch: ch.send("value", job=job.key, task=int(action.task), val=action.val))
        d.addErrback(self._transfer_failed, job, int(action.task), "", action.node, "send")

    def _return_file(self, job: NodeJob, action: ReturnFile) -> None:
        source = self._output(job, action.path)
        if source is None:
            return
        header = {"job": job.key, "task": int(action.task), "path": action.path}
        d = job.delegator.send_file(header, source, beneath=job.root)

        def failed(failure: Failure) -> None:
            self._job_error(job, f"node {self.name} could not return {action.path} to the delegator: "
                                 f"{failure.getErrorMessage()}")

        d.addErrback(failed)

    def _transfer_failed(self, failure: Failure, job: NodeJob, task: int, path: str, to: str, verb: str) -> None:
        """A file or value (``path`` "") could not reach a peer: the delegator decides (the peer may
        be lost, and the work re-planned)."""
        what = f"{path!r} of task {task}" if path else f"the value of task {task}"
        reason = f"node {self.name} could not {verb} {what} to {to}: {failure.getErrorMessage()}"
        log.warning("event=send_failed job=%s task=%d to=%s reason=%s", job.key, task, to, reason)
        job.delegator.send("send_failed", job=job.key, task=task, path=path, to=to, reason=reason)

    def _job_error(self, job: NodeJob, reason: str) -> None:
        log.warning("event=job_error job=%s reason=%s", job.key, reason)
        job.delegator.send("job_error", job=job.key, reason=reason)

    def _peer(self, node: str) -> defer.Deferred[Channel]:
        return self._peers.get(node)

    def _connect_peer(self, node: str) -> defer.Deferred[Channel]:
        return connect(self.reactor, node, self._secret, self, self.name, self.config.node.chunk_size,
                       heartbeat=self.heartbeat, sealed=self.config.security.channel_encryption)

    # -- shutdown --------------------------------------------------------------------------------

    def shutdown(self) -> defer.Deferred[Any]:
        """Stop: no new work, running functions killed, nothing more reported; job dirs removed."""
        self.stopping = True
        log.info("event=node_stopping jobs=%d", len(self.jobs))
        for job in self.jobs.values():
            job.state.cancel()
        d = self.executor.shutdown()

        def cleanup(result: Any) -> Any:
            for job in list(self.jobs.values()):
                self.jobs.pop(job.key, None)
                shutil.rmtree(job.root, ignore_errors=True)
                unmark_job(self.workdir, job.key)
            for ch in list(self._channels) + list(self._peers.connections()):
                ch.close()
            return result

        d.addBoth(cleanup)
        return d


def _fresh_directory(root: Path, task: PlannedTask, attempt: int) -> Path:
    """The working directory of a retried function: new and empty but for links to its input
    files, so that nothing a failed attempt left behind is read (its outputs move to the job
    directory when it succeeds)."""
    fresh = root / RETRY_DIR / f"{task.id}-{attempt}"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    for item in task.inputs:
        source = safe_target(root, item.path)
        target = safe_target(fresh, item.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
    return fresh


def _adopt_outputs(result: ExecResult, task: PlannedTask, fresh: Path, root: Path) -> ExecResult:
    """A retried function ended: on success its declared outputs move into the job directory (a
    failure to do so fails it); its fresh directory goes either way."""
    try:
        if result.ok:
            for out in task.outputs:
                target = safe_target(root, out.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(safe_target(fresh, out.path), target)
    except (TransferError, OSError) as exc:
        result = dataclasses.replace(result, ok=False, reason=f"cannot move its output into the job directory: {exc}")
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return result
