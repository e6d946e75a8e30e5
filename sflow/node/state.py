"""A node's task state machine for one job: when each function may run and what follows its end.

Pure: it is fed events (the job starts, an input file arrived complete, a value arrived, a function
finished) and returns actions (run a function, send a file or value to a node, return a result to
the delegator). The server (:mod:`sflow.node.server`) performs them.

Rules (reference §4 lists the original's defects these fix):

* A function is ready when every expected input *file* has arrived complete, counted per
  (predecessor, path) and not per message, and every expected value has arrived.
* Each vCPU runs its functions one at a time, in the plan's (schedule) order: the head of a vCPU's
  queue runs when it is ready; the ones behind it wait.
* A function that finishes makes its files available to the functions on this node in place, and
  sends each file once to each other node that needs it, and every result to the delegator.
* Every transition happens once: a second arrival of one file is refused, a function starts once.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from sflow.node.plan import NodePlan, PlannedTask
from sflow.errors import ProtocolError
from sflow.model.infra import VcpuId
from sflow.model.workflow import TaskId


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
class AllDone:
    """Every function of this node's part of the job has finished successfully."""


Action = Run | SendFile | SendValue | ReturnFile | AllDone

#: An input key: (predecessor, path) for a file; (predecessor, "") for a value.
_Key = tuple[TaskId, str]


class JobState:
    def __init__(self, plan: NodePlan) -> None:
        self.plan = plan
        self.tasks: dict[TaskId, PlannedTask] = {t.id: t for t in plan.tasks}
        self.status: dict[TaskId, Status] = {t.id: Status.WAITING for t in plan.tasks}
        self._needs: dict[TaskId, set[_Key]] = {}
        self._waiters: dict[_Key, list[TaskId]] = {}
        for t in plan.tasks:
            keys = {(i.pred, i.path) for i in t.inputs} | {(p, "") for p in t.value_preds}
            self._needs[t.id] = keys
            for k in keys:
                self._waiters.setdefault(k, []).append(t.id)
        self._arrived: set[_Key] = set()
        self._values: dict[TaskId, str] = {}
        self._queues: dict[VcpuId, deque[TaskId]] = {}
        for t in plan.tasks:
            self._queues.setdefault(t.vcpu, deque()).append(t.id)
        self._busy: set[VcpuId] = set()
        #: functions not yet DONE (``finished`` without a scan of every status per event)
        self._left = len(self.status)
        self.started = False
        self.failed = False
        self.cancelled = False

    # -- queries ---------------------------------------------------------------------------------

    def expects_file(self, pred: TaskId, path: str) -> bool:
        """Whether a file from ``pred`` at ``path`` is an input of a function here not yet arrived."""
        return bool(path) and (pred, path) in self._waiters and (pred, path) not in self._arrived

    def running(self) -> tuple[TaskId, ...]:
        return tuple(t for t, s in self.status.items() if s is Status.RUNNING)

    @property
    def finished(self) -> bool:
        return self._left == 0

    @property
    def active(self) -> bool:
        return not (self.failed or self.cancelled)

    # -- events ----------------------------------------------------------------------------------

    def start(self) -> list[Action]:
        if self.started:
            raise ProtocolError(f"job {self.plan.key} was already started")
        self.started = True
        return self._dispatch()

    def file_arrived(self, pred: TaskId, path: str) -> list[Action]:
        if not self.expects_file(pred, path):
            raise ProtocolError(f"job {self.plan.key}: file {path!r} from task {pred} is not an expected input here")
        self._arrived.add((pred, path))
        return self._dispatch()

    def value_arrived(self, pred: TaskId, val: str) -> list[Action]:
        key = (pred, "")
        if key not in self._waiters or key in self._arrived:
            raise ProtocolError(f"job {self.plan.key}: a value from task {pred} is not an expected input here")
        self._arrived.add(key)
        self._values[pred] = val
        return self._dispatch()

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
            self.failed = True
            return []
        self.status[tid] = Status.DONE
        self._left -= 1
        actions: list[Action] = []
        for out in task.outputs:
            key = (tid, out.path)
            if key in self._waiters:
                self._arrived.add(key)
            actions.extend(SendFile(tid, out.path, node) for node in out.nodes)
            if out.result:
                actions.append(ReturnFile(tid, out.path))
        if task.value is not None:
            if (tid, "") in self._waiters:
                self._arrived.add((tid, ""))
                self._values[tid] = task.value.val
            actions.extend(SendValue(tid, task.value.val, node) for node in task.value.nodes)
        actions.extend(self._dispatch())
        if self.finished:
            actions.append(AllDone())
        return actions

    def cancel(self) -> tuple[TaskId, ...]:
        """Stop the job: nothing more starts. Returns the functions still running (to be killed)."""
        self.cancelled = True
        for tid, s in self.status.items():
            if s is Status.WAITING:
                self.status[tid] = Status.CANCELLED
        return self.running()

    # -- internals -------------------------------------------------------------------------------

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
                )
            )
        return out
