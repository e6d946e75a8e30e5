"""A node's task state machine for one job: when each function may run and what follows its end.

Pure: it is fed events (the job starts, an input file arrived complete, a value arrived, a function
finished, the delegator re-planned the job or retries a function, a peer wants a file) and returns
actions (run a function, send a file or value to a node, return a result to the delegator). The
server (:mod:`sflow.node.server`) performs them.

Rules (reference §4 lists the original's defects these fix):

* A function is ready when every expected input *file* has arrived complete, counted per
  (predecessor, path) and not per message, and every expected value has arrived.
* Each vCPU runs its functions one at a time, in the plan's (schedule) order: the head of a vCPU's
  queue runs when it is ready; the ones behind it wait.
* A function that finishes makes its files available to the functions on this node in place, and
  sends each file once to each other node that needs it, and every result to the delegator.
* Every transition happens once: a function starts once per attempt, a file or value goes once to
  a node, a second arrival of one file is refused.
* A function that fails stops nothing else here: the delegator decides whether it runs again
  (:meth:`JobState.retry`, with a fresh working directory) or the job is cancelled.

Recovery (the delegator lost another node): :meth:`JobState.revise` takes this node's new plan —
the same functions with routes to the nodes their successors now run on, plus the functions
re-planned onto this node — and :meth:`JobState.want` serves a peer that needs a file this node
produced or received before the loss (sent at once when it is here, or when its function ends).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from sflow.errors import ProtocolError
from sflow.model.infra import VcpuId
from sflow.model.workflow import TaskId
from sflow.node.plan import NodePlan, PlannedTask


class Status(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Run:
    task: PlannedTask
    #: ``$F^<pred>`` → job-relative path
    files: Mapping[int, str]
    #: ``$V^<pred>`` → value
    values: Mapping[int, str]
    #: 1 for the first run; a retry (2, 3, …) runs in a fresh working directory
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class SendFile:
    task: TaskId
    path: str
    node: str


@dataclass(frozen=True, slots=True)
class SendValue:
    task: TaskId
    val: str
    node: str


@dataclass(frozen=True, slots=True)
class ReturnFile:
    task: TaskId
    path: str


@dataclass(frozen=True, slots=True)
class ReturnValue:
    """The ``out_value`` of a function whose value is a job result (an END function's)."""

    task: TaskId
    val: str


@dataclass(frozen=True, slots=True)
class AllDone:
    """Every function of this node's part of the job has finished successfully."""


Action = Run | SendFile | SendValue | ReturnFile | ReturnValue | AllDone

#: An input key: (predecessor, path) for a file; (predecessor, "") for a value.
_Key = tuple[TaskId, str]


class JobState:
    def __init__(self, plan: NodePlan) -> None:
        self.plan = plan
        self.tasks: dict[TaskId, PlannedTask] = {}
        self.status: dict[TaskId, Status] = {}
        self.attempts: dict[TaskId, int] = {}
        self._needs: dict[TaskId, set[_Key]] = {}
        self._waiters: dict[_Key, list[TaskId]] = {}
        #: inputs here: arrived from elsewhere, or produced by a function that finished here
        self._arrived: set[_Key] = set()
        self._values: dict[TaskId, str] = {}
        self._queues: dict[VcpuId, deque[TaskId]] = {}
        self._busy: set[VcpuId] = set()
        #: (task, path or "" for a value, node) already sent: nothing goes twice to one node
        self._sent: set[tuple[TaskId, str, str]] = set()
        #: files and values peers asked for that are not here yet: sent when they are
        self._wanted: dict[_Key, set[str]] = {}
        #: functions not yet DONE (``finished`` without a scan of every status per event)
        self._left = 0
        self.started = False
        self.cancelled = False
        for t in plan.tasks:
            self._add(t)
        self._queue_in_order()

    # -- queries ---------------------------------------------------------------------------------

    def expects_file(self, pred: TaskId, path: str) -> bool:
        """Whether a file from ``pred`` at ``path`` is an input of a function here not yet arrived."""
        return bool(path) and (pred, path) in self._waiters and (pred, path) not in self._arrived

    def has(self, pred: TaskId, path: str) -> bool:
        """Whether the file (or, for ``path`` "", the value) of ``pred`` is here."""
        return (pred, path) in self._arrived

    def running(self) -> tuple[TaskId, ...]:
        return tuple(t for t, s in self.status.items() if s is Status.RUNNING)

    @property
    def finished(self) -> bool:
        return self._left == 0

    @property
    def active(self) -> bool:
        return not self.cancelled

    # -- events ----------------------------------------------------------------------------------

    def start(self) -> list[Action]:
        if self.started:
            raise ProtocolError(f"job {self.plan.key} was already started")
        self.started = True
        return self._dispatch()

    def file_arrived(self, pred: TaskId, path: str) -> list[Action]:
        if not self.expects_file(pred, path):
            raise ProtocolError(f"job {self.plan.key}: file {path!r} from task {pred} is not an expected input here")
        return self._have((pred, path)) + self._dispatch()

    def value_arrived(self, pred: TaskId, val: str) -> list[Action]:
        """A ``$V^`` value arrived; a second copy (after a re-plan, the same value may come from
        the delegator and from a late peer) changes nothing."""
        key = (pred, "")
        if key in self._arrived:
            return []
        if key not in self._waiters:
            raise ProtocolError(f"job {self.plan.key}: a value from task {pred} is not an expected input here")
        self._values[pred] = val
        return self._have(key) + self._dispatch()

    def task_finished(self, tid: TaskId, ok: bool) -> list[Action]:
        """A function ended: ``ok`` means exit 0 with every declared output present."""
        if self.status.get(tid) is not Status.RUNNING:
            raise ProtocolError(f"job {self.plan.key}: task {tid} is not running here")
        task = self.tasks[tid]
        self._busy.discard(task.vcpu)
        if not self.active:
            self.status[tid] = Status.CANCELLED
            return []
        if not ok:
            self.status[tid] = Status.FAILED
            return self._dispatch()
        self.status[tid] = Status.DONE
        self._left -= 1
        actions: list[Action] = []
        for out in task.outputs:
            actions.extend(self._have((tid, out.path)))
            actions.extend(self._send_file(tid, out.path, node) for node in out.nodes if self._first(tid, out.path, node))
            if out.result:
                actions.append(ReturnFile(tid, out.path))
        if task.value is not None:
            self._values[tid] = task.value.val
            actions.extend(self._have((tid, "")))
            actions.extend(SendValue(tid, task.value.val, node) for node in task.value.nodes if self._first(tid, "", node))
            if task.value.result:
                actions.append(ReturnValue(tid, task.value.val))
        actions.extend(self._dispatch())
        if self.finished:
            actions.append(AllDone())
        return actions

    def retry(self, tid: TaskId) -> list[Action]:
        """Run a failed function again (the delegator's decision); it goes back to the head of its
        vCPU's queue, its attempt number one higher."""
        if self.status.get(tid) is not Status.FAILED:
            raise ProtocolError(f"job {self.plan.key}: task {tid} has not failed here")
        self.status[tid] = Status.WAITING
        self.attempts[tid] += 1
        self._queue_in_order()
        return self._dispatch()

    def revise(self, plan: NodePlan) -> list[Action]:
        """This node's new plan after a re-plan: functions already here keep their state and take
        the new routes (a finished one sends its outputs to nodes that are new in them); functions
        new here wait for their inputs. Functions may leave only while they wait."""
        if plan.key != self.plan.key:
            raise ProtocolError(f"a plan for job {plan.key} cannot revise job {self.plan.key}")
        incoming = {t.id: t for t in plan.tasks}
        for tid in [t for t in self.tasks if t not in incoming]:
            if self.status[tid] not in (Status.WAITING, Status.CANCELLED):
                raise ProtocolError(f"job {plan.key}: task {tid} is {self.status[tid].value} here and cannot move")
            self._remove(tid)
        actions: list[Action] = []
        for task in plan.tasks:
            old = self.tasks.get(task.id)
            if old is None:
                self._add(task)
                continue
            if (old.vcpu, old.inputs, old.value_preds) != (task.vcpu, task.inputs, task.value_preds):
                raise ProtocolError(f"job {plan.key}: a re-plan may change task {task.id}'s routes only")
            self.tasks[task.id] = task
            if self.status[task.id] is Status.DONE:
                for out in task.outputs:
                    actions.extend(self._send_file(task.id, out.path, n) for n in out.nodes
                                   if self._first(task.id, out.path, n))
                if task.value is not None:
                    actions.extend(SendValue(task.id, task.value.val, n) for n in task.value.nodes
                                   if self._first(task.id, "", n))
        self.plan = plan
        self._queue_in_order()
        return actions + self._dispatch()

    def want(self, pred: TaskId, path: str, node: str) -> list[Action]:
        """``node`` needs the file (``path`` "": the value) of ``pred`` that is here or will be:
        it is sent now, or when it is here."""
        key = (pred, path)
        if key not in self._arrived:
            self._wanted.setdefault(key, set()).add(node)
            return []
        if not self._first(pred, path, node):
            return []
        return [SendValue(pred, self._values[pred], node) if not path else SendFile(pred, path, node)]

    def cancel(self) -> tuple[TaskId, ...]:
        """Stop the job: nothing more starts. Returns the functions still running (to be killed)."""
        self.cancelled = True
        for tid, s in self.status.items():
            if s is Status.WAITING:
                self.status[tid] = Status.CANCELLED
        return self.running()

    # -- internals -------------------------------------------------------------------------------

    def _add(self, t: PlannedTask) -> None:
        if t.id in self.tasks:
            raise ProtocolError(f"job {self.plan.key}: task {t.id} appears twice")
        self.tasks[t.id] = t
        self.status[t.id] = Status.WAITING
        self.attempts[t.id] = 1
        keys = {(i.pred, i.path) for i in t.inputs} | {(p, "") for p in t.value_preds}
        self._needs[t.id] = keys
        for k in keys:
            self._waiters.setdefault(k, []).append(t.id)
        self._left += 1

    def _remove(self, tid: TaskId) -> None:
        for k in self._needs.pop(tid):
            waiting = self._waiters[k]
            waiting.remove(tid)
            if not waiting:
                del self._waiters[k]
        if self.status.pop(tid) is not Status.DONE:
            self._left -= 1
        del self.tasks[tid], self.attempts[tid]

    def _queue_in_order(self) -> None:
        """Each vCPU's queue: its waiting functions in the plan's order (the schedule's, which is
        a topological order, so no function waits behind one that needs its output)."""
        self._queues = {}
        for t in self.plan.tasks:
            if self.status.get(t.id) is Status.WAITING:
                self._queues.setdefault(t.vcpu, deque()).append(t.id)

    def _first(self, task: TaskId, path: str, node: str) -> bool:
        """True the first time (task, path) is to go to ``node``; it is then counted as sent."""
        key = (task, path, node)
        if key in self._sent:
            return False
        self._sent.add(key)
        return True

    def _send_file(self, task: TaskId, path: str, node: str) -> SendFile:
        return SendFile(task, path, node)

    def _have(self, key: _Key) -> list[Action]:
        """``key`` is here now: serve the peers that wanted it."""
        self._arrived.add(key)
        pred, path = key
        out: list[Action] = []
        for node in sorted(self._wanted.pop(key, ())):
            if self._first(pred, path, node):
                out.append(SendValue(pred, self._values[pred], node) if not path else SendFile(pred, path, node))
        return out

    def _ready(self, tid: TaskId) -> bool:
        return self._needs[tid] <= self._arrived

    def _dispatch(self) -> list[Action]:
        if not (self.started and self.active):
            return []
        out: list[Action] = []
        for vcpu, queue in self._queues.items():
            if vcpu in self._busy or not queue or not self._ready(queue[0]):
                continue
            tid = queue.popleft()
            task = self.tasks[tid]
            self.status[tid] = Status.RUNNING
            self._busy.add(vcpu)
            out.append(
                Run(
                    task,
                    {i.pred: i.path for i in task.file_args},
                    {p: self._values[p] for p in task.value_preds},
                    self.attempts[tid],
                )
            )
        return out
