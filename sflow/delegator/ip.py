"""IP-chaining dispatch: send each node its plan, start the job, collect progress and results, and
recover from lost nodes and failed functions.

The delegator connects to every node of the plan (authenticated, with heartbeats) and to any other
node it may use, sends each its :class:`~sflow.node.plan.NodePlan` (an empty one for a node with
nothing to run yet), waits until all have accepted, then starts the job everywhere (START
functions begin at once; the rest wait for their inputs). Nodes report each function's start and
end, and each file they stream (the sender when it began, the receiver when it had the file: the
end of the transfer in the trace); END outputs and END values come back over the same connection
into the output directory.

What follows an event is decided by the pure :class:`~sflow.delegator.recovery.JobProgress`: a
failed function runs again (``delegator.retries``) or fails the job; a lost node — its connection
closed, or silent past the heartbeat bound — has its unfinished part re-planned on the nodes still
alive. The job is complete when every function is done, every result and END value has arrived,
and every transfer a receiver reported is reported by its (live) sender too; it fails when a
function fails for good, no node can take the work, or the deadline passes. Either way the nodes
are told to end the job, and the run's :class:`~sflow.delegator.trace.Trace` — on failure
attached to the error — records what ran where, the losses and re-plans, and what failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from sflow.delegator.plan import JobPlan, ResultFile
from sflow.delegator.recovery import Fail, GiveValue, JobProgress, Placer, Replanned, Retry, Revise, Suspect
from sflow.delegator.recovery import Action as RecoveryAction
from sflow.delegator.trace import FAILED, OK, TaskRun, Trace, TraceEvent, TransferRun, attach_trace, failure_of
from sflow.errors import ExecutionError, JobFailed, ProtocolError, SflowError
from sflow.model.schedule import Schedule
from sflow.model.workflow import Job, TaskId
from sflow.node.channel import Channel, connect
from sflow.node.liveness import Heartbeat
from sflow.node.plan import NodePlan, plan_to_wire, pulls_to_wire
from sflow.node.protocol import Message
from sflow.node.transfer import FileSink, TransferError

log = logging.getLogger(__name__)

#: (event, task id) — "started", "done", and "again" (a function whose run was lost or failed
#: will start again) — for a progress display
ProgressCallback = Callable[[str, int], None]
#: a line for the user while the job runs (a node lost and what was re-planned, a retry)
NoticeCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DispatchOptions:
    outdir: Path
    algorithm: str
    schedule: Schedule | None
    job_timeout: float = 0.0
    keep_workdirs: bool = False
    chunk_size: int = 262144
    connect_timeout: float = 10.0
    retries: int = 0
    heartbeat: Heartbeat = Heartbeat(2.0, 3)


class IpDispatch:
    """One run of one job. ``run()`` fires with the :class:`Trace` or fails with an SflowError
    (which carries the run's trace: :func:`~sflow.delegator.trace.trace_of`).

    ``order`` is the schedule order of every function; ``spare`` are further nodes the job may be
    re-planned onto (an unreachable spare is left out); ``placer`` re-plans functions on live
    nodes (the job's algorithm)."""

    def __init__(
        self,
        reactor: Any,
        secret: bytes,
        plan: JobPlan,
        options: DispatchOptions,
        progress: ProgressCallback | None = None,
        *,
        job: Job,
        order: Sequence[TaskId],
        placer: Placer,
        spare: Sequence[str] = (),
        notice: NoticeCallback | None = None,
    ) -> None:
        self.reactor = reactor
        self._secret = secret
        self.plan = plan
        self.job = job
        self.options = options
        self._order = tuple(order)
        self._placer = placer
        self._progress = progress or (lambda event, task: None)
        self._notice = notice or (lambda line: None)
        self._spare = tuple(n for n in dict.fromkeys(spare) if n not in plan.nodes)
        self._channels: dict[str, Channel] = {}
        self._node_of_channel: dict[Channel, str] = {}
        self._accepted: dict[str, defer.Deferred[None]] = {}
        self._result: defer.Deferred[Trace] = defer.Deferred()
        self._t0 = 0.0
        self._progress_state: JobProgress | None = None
        self._runs: dict[TaskId, TaskRun] = {}
        self._failed_runs: list[TaskRun] = []
        self._attempts: dict[TaskId, int] = {}
        self._events: list[TraceEvent] = []
        self._transfers: list[TransferRun] = []
        #: (task, path, receiving node) → (sending node, bytes, when it began), and → when received
        self._sent: dict[tuple[int, str, str], tuple[str, int, float]] = {}
        self._received_at: dict[tuple[int, str, str], float] = {}
        self._results: dict[tuple[int, str], ResultFile] = {(r.task, r.path): r for r in plan.results}
        self._received: set[tuple[int, str]] = set()
        self._timer: Any = None
        self._linger: Any = None
        self._suspects: dict[str, Any] = {}
        self._finished = False

    @property
    def progress_state(self) -> JobProgress:
        if self._progress_state is None:
            raise ExecutionError(f"job {self.plan.key} has not started")
        return self._progress_state

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> defer.Deferred[Trace]:
        self.options.outdir.mkdir(parents=True, exist_ok=True)
        planned = [self._connect(n, required=True) for n in self.plan.nodes]
        spares = [self._connect(n, required=False) for n in self._spare]
        d = defer.gatherResults(planned + spares, consumeErrors=True)
        d.addCallback(lambda _: self._send_plans())
        d.addCallback(lambda _: self._start())
        d.addErrback(self._fail_from)
        return self._result

    def _connect(self, node: str, required: bool) -> defer.Deferred[None]:
        d = connect(self.reactor, node, self._secret, self, "delegator", self.options.chunk_size,
                    self.options.connect_timeout, heartbeat=self.options.heartbeat)

        def ok(channel: Channel) -> None:
            self._channels[node] = channel
            self._node_of_channel[channel] = node

        def bad(failure: Failure) -> None:
            if required:
                raise ExecutionError(f"cannot reach node {node}: {failure.getErrorMessage()}")
            log.warning("event=spare_unreachable node=%s error=%s", node, failure.getErrorMessage())

        return d.addCallbacks(ok, bad)

    def _send_plans(self) -> defer.Deferred[Any]:
        waits = []
        for node, channel in self._channels.items():
            node_plan = self.plan.nodes.get(node, NodePlan(self.plan.job_id, self.plan.run_id, node, ()))
            accepted: defer.Deferred[None] = defer.Deferred()
            self._accepted[node] = accepted
            channel.send("job", job=self.plan.key, plan=plan_to_wire(node_plan))
            if node not in self.plan.nodes:
                accepted.addErrback(self._spare_refused, node)
            waits.append(accepted)
        d = defer.gatherResults(waits, consumeErrors=True)
        return d.addTimeout(self.options.connect_timeout, self.reactor, self._no_answer)

    def _spare_refused(self, failure: Failure, node: str) -> None:
        log.warning("event=spare_refused node=%s error=%s", node, failure.getErrorMessage())
        channel = self._channels.pop(node, None)
        if channel is not None:
            self._node_of_channel.pop(channel, None)
            channel.close()

    def _no_answer(self, result: Any, timeout: float) -> None:
        waiting = sorted(n for n, d in self._accepted.items() if not d.called)
        raise ExecutionError(f"nodes {', '.join(waiting)} did not accept the job within {timeout:g} s")

    def _start(self) -> None:
        if self._finished:
            return
        self._t0 = self.reactor.seconds()
        nodes = [n for n in self._channels if n in self.plan.nodes] + [n for n in self._channels if n not in self.plan.nodes]
        self._progress_state = JobProgress(self.job, self.plan, self._order, nodes, self._placer,
                                           self.options.retries, self.options.heartbeat.bound)
        log.info("event=job_start job=%s nodes=%d tasks=%d", self.plan.key, len(nodes), len(self.plan.placements))
        for channel in self._channels.values():
            channel.send("start", job=self.plan.key)
        if self.options.job_timeout > 0:
            self._timer = self.reactor.callLater(self.options.job_timeout, self._timed_out)
        self._check_complete()

    def _timed_out(self) -> None:
        self._timer = None
        state = self.progress_state
        left = sorted(int(t) for t in self.job.by_id if t not in state.done)
        self._fail(ExecutionError(f"job {self.plan.job_id} did not finish within {self.options.job_timeout:g} s "
                                  f"(--timeout, delegator.job_timeout); unfinished functions: "
                                  f"{', '.join(map(str, left)) or 'none'}"))

    # -- ChannelHandler --------------------------------------------------------------------------

    def channel_ready(self, channel: Channel) -> None:
        log.debug("event=node_connected node=%s", channel.peer_name)

    def message_received(self, channel: Channel, msg: Message) -> None:
        node = self._node_of_channel.get(channel)
        kind = msg["t"]
        if msg.get("job") != self.plan.key:
            raise ProtocolError(f"message about job {msg.get('job')!r}, expected {self.plan.key}")
        if node is None or self._finished:
            return
        if kind == "accepted":
            if not self._accepted[node].called:
                self._accepted[node].callback(None)
            return
        if kind == "rejected":
            error = ExecutionError(f"node {node} rejected job {self.plan.job_id}: {msg['reason']}")
            if not self._accepted[node].called:
                self._accepted[node].errback(error)
            return
        state = self.progress_state
        if kind == "started":
            tid = TaskId(msg["task"])
            if state.started(tid, node):
                self._attempts[tid] = self._attempts.get(tid, 0) + 1
                self._progress("started", int(tid))
        elif kind == "done":
            self._done(node, msg)
        elif kind == "failed":
            self._function_failed(node, msg)
        elif kind == "job_error":
            self._fail(ExecutionError(f"job {self.plan.job_id} failed: {msg['reason']}"))
        elif kind == "send_failed":
            self._perform(state.send_failed(node, msg["to"], msg["reason"], self.reactor.seconds()))
        elif kind == "transferred":
            self._transferred(node, msg)
        elif kind == "received":
            state.received(TaskId(msg["task"]), msg["path"], node)
            self._received_at[(msg["task"], msg["path"], node)] = msg["time"]
            self._add_transfer((msg["task"], msg["path"], node))
        elif kind == "result_value":
            if state.current(TaskId(msg["task"]), node):
                state.value_arrived(TaskId(msg["task"]), msg["val"])
                self._check_complete()
        elif kind == "replanned":
            log.debug("event=node_replanned node=%s", node)
        else:
            raise ProtocolError(f"the delegator does not accept {kind!r} messages")

    def open_sink(self, channel: Channel, begin: Message) -> FileSink:
        key = (begin["task"], begin["path"])
        result = self._results.get(key)
        node = self._node_of_channel.get(channel, "")
        if (begin["job"] != self.plan.key or result is None or key in self._received
                or not self.progress_state.current(TaskId(begin["task"]), node)):
            raise TransferError(f"{begin['path']!r} from task {begin['task']} is not an expected result")
        return FileSink(self.options.outdir, result.name, begin["size"])

    def file_received(self, channel: Channel, begin: Message, path: Path) -> None:
        self._received.add((begin["task"], begin["path"]))
        self.progress_state.result_arrived(TaskId(begin["task"]), begin["path"])
        log.info("event=result job=%s task=%s path=%s bytes=%d", self.plan.key, begin["task"], path, begin["size"])
        self._check_complete()

    def file_failed(self, channel: Channel, begin: Message, reason: str) -> None:
        self._fail(ExecutionError(f"result {begin['path']!r} of task {begin['task']} did not arrive intact: {reason}"))

    def channel_closed(self, channel: Channel, reason: str, authenticated: bool) -> None:
        node = self._node_of_channel.pop(channel, None)
        if node is None or self._finished:
            return
        self._channels.pop(node, None)
        if self._progress_state is None:
            self._fail(ExecutionError(f"lost the connection to node {node}: {reason}"))
            return
        self._lose(node, reason)

    # -- events ----------------------------------------------------------------------------------

    def _lose(self, node: str, reason: str) -> None:
        log.info("event=node_lost job=%s node=%s reason=%s", self.plan.key, node, reason)
        state = self.progress_state
        running = sorted(int(t) for t, n in state.running.items() if n == node)
        channel = self._channels.pop(node, None)
        if channel is not None:
            self._node_of_channel.pop(channel, None)
            channel.send("cancel", job=self.plan.key, reason="the delegator lost this node")
            channel.close()
        self._drop_transfers_of(node)
        for task in running:
            self._progress("again", task)
        self._perform(state.node_lost(node, reason, self.reactor.seconds()))
        self._check_complete()

    def _done(self, node: str, msg: Message) -> None:
        tid = TaskId(msg["task"])
        if not self.progress_state.finished(tid, node):
            return
        place = self.progress_state.placements[tid]
        slot = self.options.schedule.slots.get(tid) if self.options.schedule is not None else None
        self._runs[tid] = TaskRun(
            task=int(tid),
            node=node,
            vcpu=place.vcpu,
            start=msg["started"] - self._t0,
            finish=msg["finished"] - self._t0,
            where=msg["where"],
            predicted_start=slot.start if slot is not None else None,
            predicted_finish=slot.finish if slot is not None else None,
            attempt=self._attempts.get(tid, 1),
        )
        self._progress("done", int(tid))
        self._check_complete()

    def _function_failed(self, node: str, msg: Message) -> None:
        tid = TaskId(msg["task"])
        failure = JobFailed(int(tid), node, msg["reason"] or "failed", msg["exit_status"], msg["stderr_tail"])
        if not self.progress_state.current(tid, node):
            return
        if "started" in msg:
            place = self.progress_state.placements[tid]
            self._failed_runs.append(TaskRun(int(tid), node, place.vcpu, msg["started"] - self._t0,
                                             msg["finished"] - self._t0, f"failed: {failure.reason}",
                                             attempt=self._attempts.get(tid, 1)))
        self._perform(self.progress_state.function_failed(tid, node, failure))

    def _perform(self, actions: list[RecoveryAction]) -> None:
        for action in actions:
            if isinstance(action, Fail):
                self._fail(action.error)
                return
            if isinstance(action, Replanned):
                self._replanned(action)
            elif isinstance(action, Revise):
                channel = self._channels.get(action.node)
                if channel is not None:
                    channel.send("replan", job=self.plan.key, plan=plan_to_wire(action.plan),
                                 pulls=pulls_to_wire(action.pulls))
            elif isinstance(action, GiveValue):
                channel = self._channels.get(action.node)
                if channel is not None:
                    channel.send("value", job=self.plan.key, task=int(action.task), val=action.val)
            elif isinstance(action, Retry):
                self._retry(action)
            elif isinstance(action, Suspect):
                self._suspect(action)

    def _replanned(self, action: Replanned) -> None:
        where = {str(t): [p.node, str(p.vcpu)] for t, p in action.placements.items()}
        tasks = tuple(int(t) for t in action.placements)
        self._events.append(TraceEvent(action.time - self._t0, "node_lost", action.node, action.reason, tasks, where,
                                       tuple(int(t) for t in action.rerun)))
        for task in action.rerun:
            self._runs.pop(task, None)
            self._progress("again", int(task))
        moves = ", ".join(f"{t} → {p.node}" for t, p in action.placements.items())
        again = f" (finished before, output lost with it: {', '.join(map(str, action.rerun))})" if action.rerun else ""
        self._notice(f"node {action.node} lost ({action.reason}); re-planned with {self.options.algorithm}: "
                     f"{moves}{again}")

    def _retry(self, action: Retry) -> None:
        f = action.failure
        detail = (f"function {f.task_id} failed on node {f.node} ({f.reason}); running it again "
                  f"(attempt {action.attempt} of {self.options.retries + 1})")
        self._events.append(TraceEvent(self.reactor.seconds() - self._t0, "retry", action.node, detail,
                                       (int(action.task),)))
        self._notice(detail)
        self._progress("again", int(action.task))
        channel = self._channels.get(action.node)
        if channel is not None:
            channel.send("retry", job=self.plan.key, task=int(action.task))

    def _suspect(self, action: Suspect) -> None:
        if action.node in self._suspects:
            return
        delay = max(0.0, action.deadline - self.reactor.seconds())

        def expired() -> None:
            self._suspects.pop(action.node, None)
            if self._finished or action.node not in self.progress_state.alive:
                return
            channel = self._channels.get(action.node)
            if channel is not None:
                self._node_of_channel.pop(channel, None)
                self._channels.pop(action.node, None)
                channel.send("cancel", job=self.plan.key, reason="its peers cannot reach it")
                channel.close()
            self._lose(action.node, action.reason)

        self._suspects[action.node] = self.reactor.callLater(delay, expired)

    def _transferred(self, node: str, msg: Message) -> None:
        key = (msg["task"], msg["path"], msg["to"])
        self._sent[key] = (node, msg["bytes"], msg["started"])
        self._add_transfer(key)

    def _add_transfer(self, key: tuple[int, str, str]) -> None:
        """A transfer is in the trace once the sender said when it began and the receiver when it
        had the file (the two reports come over different connections, in either order)."""
        if key not in self._sent or key not in self._received_at:
            return
        task, path, dst = key
        src, size, started = self._sent.pop(key)
        tid = TaskId(task)
        self._transfers.append(
            TransferRun(
                task=task,
                path=path,
                src_node=src,
                dst_node=dst,
                src_vcpu=self.progress_state.placements[tid].vcpu,
                dst_vcpu=self._reader_vcpu(dst, tid, path),
                bytes=size,
                start=started - self._t0,
                finish=self._received_at.pop(key) - self._t0,
            )
        )
        self._check_complete()

    def _reader_vcpu(self, node: str, pred: TaskId, path: str) -> str:
        """The vCPU of the first function on ``node`` that reads the file: the transfer's end in
        the trace."""
        plan = self.progress_state.plans.get(node)
        for t in plan.tasks if plan is not None else ():
            if any(i.pred == pred and i.path == path for i in t.inputs):
                return str(t.vcpu)
        return ""

    def _drop_transfers_of(self, node: str) -> None:
        """Halves of transfers whose other end was ``node`` (lost) will never be matched."""
        for key in [k for k, v in self._sent.items() if k[2] == node]:
            del self._sent[key]
        for key in [k for k in self._received_at if k[2] == node]:
            del self._received_at[key]

    def _check_complete(self) -> None:
        state = self._progress_state
        if self._finished or state is None or not state.complete:
            return
        if self._received_at and self._linger is None:
            # A receiver reported a file whose sender has not yet said when it began (its report
            # comes over another connection): wait for it, a heartbeat bound at most.
            self._linger = self.reactor.callLater(self.options.heartbeat.bound, self._complete)
            return
        if not self._received_at:
            self._complete()

    def _complete(self) -> None:
        if self._finished:
            return
        self._finished = True
        trace = self._trace(OK, "")
        log.info("event=job_done job=%s makespan=%.3f", self.plan.key, trace.makespan)
        self._close(cancel_reason=None)
        self._result.callback(trace)

    def _trace(self, status: str, error: str, failure: Any = None) -> Trace:
        runs = sorted([*self._runs.values(), *self._failed_runs], key=lambda r: (r.task, r.attempt))
        schedule = self.options.schedule
        state = self._progress_state
        return Trace(
            job_id=self.plan.job_id,
            run_id=self.plan.run_id,
            mode="ip",
            algorithm=self.options.algorithm,
            predicted_makespan=schedule.makespan if schedule is not None else None,
            # From the moment the delegator said "start" to the last function's end.
            makespan=max((r.finish for r in runs), default=0.0),
            tasks=tuple(runs),
            transfers=tuple(sorted(self._transfers, key=lambda x: x.start)),
            results=tuple(r.name for r in self.plan.results if (r.task, r.path) in self._received),
            status=status,
            error=error,
            failure=failure,
            events=tuple(self._events),
            values={str(t): v for t, v in sorted(state.values.items())} if state is not None else {},
        )

    # -- ending ----------------------------------------------------------------------------------

    def _fail_from(self, failure: Failure) -> None:
        exc = failure.value
        if isinstance(exc, defer.FirstError):
            exc = exc.subFailure.value
        if not isinstance(exc, SflowError):
            exc = ExecutionError(f"job {self.plan.job_id}: {exc}")
        self._fail(exc)

    def _fail(self, error: SflowError) -> None:
        if self._finished:
            return
        self._finished = True
        # INFO: the caller reports the error itself (the CLI prints it once, as `sflow: error:`).
        log.info("event=job_failed job=%s error=%s", self.plan.key, str(error).splitlines()[0])
        self._close(cancel_reason=str(error).splitlines()[0])
        attach_trace(error, self._trace(FAILED, str(error), failure_of(error)))
        self._result.errback(Failure(error))

    def _close(self, cancel_reason: str | None) -> None:
        for timer in (self._timer, self._linger):
            if timer is not None and timer.active():
                timer.cancel()
        for timer in self._suspects.values():
            if timer.active():
                timer.cancel()
        self._suspects.clear()
        for channel in list(self._channels.values()):
            if cancel_reason is not None:
                channel.send("cancel", job=self.plan.key, reason=cancel_reason)
            channel.send("end_job", job=self.plan.key, keep=self.options.keep_workdirs)
            channel.close()
