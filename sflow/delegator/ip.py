"""IP-chaining dispatch: send each node its plan, start the job, collect progress and results.

The delegator connects to every node of the plan (authenticated), sends each its
:class:`~sflow.node.plan.NodePlan`, waits until all have accepted, then starts the job
everywhere (START functions begin at once; the rest wait for their inputs). Nodes report each
function's start and end, and each file they stream (the sender when it began, the receiver when
it had the file: the end of the transfer in the trace); END outputs stream back over the same
connection into the output directory. The job is complete when every function is done and every
result file has arrived; on the first failure the delegator cancels the job on every node and
fails with :class:`~sflow.errors.JobFailed`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from sflow.delegator.plan import JobPlan, ResultFile
from sflow.node.plan import plan_to_wire
from sflow.delegator.trace import TaskRun, Trace, TransferRun
from sflow.errors import ExecutionError, JobFailed, ProtocolError, SflowError
from sflow.model.schedule import Schedule
from sflow.model.workflow import TaskId
from sflow.node.channel import Channel, connect
from sflow.node.protocol import Message
from sflow.node.transfer import FileSink, TransferError

log = logging.getLogger(__name__)

#: (event, task id) — "started", "done" — for a progress display
ProgressCallback = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class DispatchOptions:
    outdir: Path
    algorithm: str
    schedule: Schedule | None
    job_timeout: float = 0.0
    keep_workdirs: bool = False
    chunk_size: int = 262144
    connect_timeout: float = 10.0


class IpDispatch:
    """One run of one job. ``run()`` fires with the :class:`Trace` or fails with an SflowError."""

    def __init__(
        self,
        reactor: Any,
        secret: bytes,
        plan: JobPlan,
        options: DispatchOptions,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.reactor = reactor
        self._secret = secret
        self.plan = plan
        self.options = options
        self._progress = progress or (lambda event, task: None)
        self._channels: dict[str, Channel] = {}
        self._node_of_channel: dict[Channel, str] = {}
        self._accepted: dict[str, defer.Deferred[None]] = {n: defer.Deferred() for n in plan.nodes}
        self._result: defer.Deferred[Trace] = defer.Deferred()
        self._t0 = 0.0
        self._started: dict[TaskId, float] = {}
        self._runs: dict[TaskId, TaskRun] = {}
        self._transfers: list[TransferRun] = []
        #: (task, path, receiving node) → (sending node, bytes, when it began), and → when received
        self._sent: dict[tuple[int, str, str], tuple[str, int, float]] = {}
        self._received_at: dict[tuple[int, str, str], float] = {}
        self._results: dict[tuple[int, str], ResultFile] = {(r.task, r.path): r for r in plan.results}
        self._received: set[tuple[int, str]] = set()
        # Every file streamed between nodes is reported once by its sender and once by its
        # receiver; the trace waits for all.
        self._expected_transfers = sum(
            len(route.nodes) for node_plan in plan.nodes.values() for t in node_plan.tasks for route in t.outputs
        )
        # The vCPU of the first function on a node that reads a file (node, producer, path): a
        # transfer's destination in the trace.
        self._reader_vcpu: dict[tuple[str, int, str], str] = {}
        for node, node_plan in plan.nodes.items():
            for t in node_plan.tasks:
                for i in t.inputs:
                    self._reader_vcpu.setdefault((node, i.pred, i.path), plan.placements[t.id].vcpu)
        self._timer: Any = None
        self._finished = False

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> defer.Deferred[Trace]:
        self.options.outdir.mkdir(parents=True, exist_ok=True)
        d = defer.gatherResults([self._connect(n) for n in self.plan.nodes], consumeErrors=True)
        d.addCallback(lambda _: self._send_plans())
        d.addCallback(lambda _: self._start())
        d.addErrback(self._fail_from)
        return self._result

    def _connect(self, node: str) -> defer.Deferred[None]:
        d = connect(self.reactor, node, self._secret, self, "delegator", self.options.chunk_size, self.options.connect_timeout)

        def ok(channel: Channel) -> None:
            self._channels[node] = channel
            self._node_of_channel[channel] = node

        def bad(failure: Failure) -> None:
            raise ExecutionError(f"cannot reach node {node}: {failure.getErrorMessage()}")

        return d.addCallbacks(ok, bad)

    def _send_plans(self) -> defer.Deferred[Any]:
        for node, node_plan in self.plan.nodes.items():
            self._channels[node].send("job", job=self.plan.key, plan=plan_to_wire(node_plan))
        d = defer.gatherResults(list(self._accepted.values()), consumeErrors=True)
        return d.addTimeout(self.options.connect_timeout, self.reactor, self._no_answer)

    def _no_answer(self, result: Any, timeout: float) -> None:
        waiting = sorted(n for n, d in self._accepted.items() if not d.called)
        raise ExecutionError(f"nodes {', '.join(waiting)} did not accept the job within {timeout:g} s")

    def _start(self) -> None:
        if self._finished:
            return
        self._t0 = self.reactor.seconds()
        log.info("event=job_start job=%s nodes=%d tasks=%d", self.plan.key, len(self.plan.nodes), len(self.plan.placements))
        for channel in self._channels.values():
            channel.send("start", job=self.plan.key)
        if self.options.job_timeout > 0:
            self._timer = self.reactor.callLater(self.options.job_timeout, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(ExecutionError(f"job {self.plan.job_id} did not finish within {self.options.job_timeout:g} s"))

    # -- ChannelHandler --------------------------------------------------------------------------

    def channel_ready(self, channel: Channel) -> None:
        log.debug("event=node_connected node=%s", channel.peer_name)

    def message_received(self, channel: Channel, msg: Message) -> None:
        node = self._node_of_channel.get(channel, channel.peer_name)
        kind = msg["t"]
        if msg.get("job") != self.plan.key:
            raise ProtocolError(f"message about job {msg.get('job')!r}, expected {self.plan.key}")
        if kind == "accepted":
            if not self._accepted[node].called:
                self._accepted[node].callback(None)
        elif kind == "rejected":
            error = ExecutionError(f"node {node} rejected job {self.plan.job_id}: {msg['reason']}")
            if not self._accepted[node].called:
                self._accepted[node].errback(error)
        elif kind == "started":
            self._started[TaskId(msg["task"])] = msg["time"]
            self._progress("started", msg["task"])
        elif kind == "done":
            self._done(node, msg)
        elif kind == "failed":
            self._fail(JobFailed(msg["task"], node, msg["reason"] or "failed", msg["exit_status"], msg["stderr_tail"]))
        elif kind == "job_error":
            self._fail(ExecutionError(f"job {self.plan.job_id} failed: {msg['reason']}"))
        elif kind == "transferred":
            self._transferred(node, msg)
        elif kind == "received":
            self._received_at[(msg["task"], msg["path"], node)] = msg["time"]
            self._add_transfer((msg["task"], msg["path"], node))
        else:
            raise ProtocolError(f"the delegator does not accept {kind!r} messages")

    def open_sink(self, channel: Channel, begin: Message) -> FileSink:
        key = (begin["task"], begin["path"])
        result = self._results.get(key)
        if begin["job"] != self.plan.key or result is None or key in self._received:
            raise TransferError(f"{begin['path']!r} from task {begin['task']} is not an expected result")
        return FileSink(self.options.outdir, result.name, begin["size"])

    def file_received(self, channel: Channel, begin: Message, path: Path) -> None:
        self._received.add((begin["task"], begin["path"]))
        log.info("event=result job=%s task=%s path=%s bytes=%d", self.plan.key, begin["task"], path, begin["size"])
        self._check_complete()

    def file_failed(self, channel: Channel, begin: Message, reason: str) -> None:
        self._fail(ExecutionError(f"result {begin['path']!r} of task {begin['task']} did not arrive intact: {reason}"))

    def channel_closed(self, channel: Channel, reason: str, authenticated: bool) -> None:
        node = self._node_of_channel.pop(channel, None)
        if node is not None and not self._finished:
            self._fail(ExecutionError(f"lost the connection to node {node}: {reason}"))

    # -- events ----------------------------------------------------------------------------------

    def _done(self, node: str, msg: Message) -> None:
        tid = TaskId(msg["task"])
        place = self.plan.placements[tid]
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
        )
        self._progress("done", int(tid))
        self._check_complete()

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
                src_vcpu=self.plan.placements[tid].vcpu,
                dst_vcpu=self._reader_vcpu.get((dst, tid, path), ""),
                bytes=size,
                start=started - self._t0,
                finish=self._received_at.pop(key) - self._t0,
            )
        )
        self._check_complete()

    def _check_complete(self) -> None:
        if (
            self._finished
            or len(self._runs) < len(self.plan.placements)
            or len(self._received) < len(self._results)
            or len(self._transfers) < self._expected_transfers
        ):
            return
        self._finished = True
        trace = self._trace()
        log.info("event=job_done job=%s makespan=%.3f", self.plan.key, trace.makespan)
        self._close(cancel_reason=None)
        self._result.callback(trace)

    def _trace(self) -> Trace:
        runs = tuple(self._runs[t] for t in sorted(self._runs))
        schedule = self.options.schedule
        return Trace(
            job_id=self.plan.job_id,
            run_id=self.plan.run_id,
            mode="ip",
            algorithm=self.options.algorithm,
            predicted_makespan=schedule.makespan if schedule is not None else None,
            # From the moment the delegator said "start" to the last function's end.
            makespan=max((r.finish for r in runs), default=0.0),
            tasks=runs,
            transfers=tuple(sorted(self._transfers, key=lambda x: x.start)),
            results=tuple(r.name for r in self.plan.results),
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
        self._result.errback(Failure(error))

    def _close(self, cancel_reason: str | None) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        for channel in list(self._channels.values()):
            if cancel_reason is not None:
                channel.send("cancel", job=self.plan.key, reason=cancel_reason)
            channel.send("end_job", job=self.plan.key, keep=self.options.keep_workdirs)
            channel.close()
