"""IP-mode progress and recovery of one job (pure: events in, actions out, time passed in).

:class:`JobProgress` follows the job as the delegator hears of it — which function started and
finished where, which node holds which file (its producer, and every node that received it),
which results and END values arrived — and decides what follows an event:

* **A function fails.** It runs again on its node, in a fresh working directory, until it has
  failed ``retries + 1`` times; then the job fails with that function, node, exit status and the
  end of its stderr.
* **A node is lost** (its connection closed, its heartbeats stopped, or a peer could not reach it
  for a heartbeat bound while it seemed alive). The unfinished part is re-planned on the nodes
  still alive, with the job's algorithm through the same ``Problem``/scheduler path as the first
  plan (the ``placer``): the functions the lost node had not finished, and every finished
  function whose output is still needed but lived only there (a result not yet returned, or a
  file a successor still needs that no live node holds) — the closure: a function run again may
  need inputs that were only there too.

  Inputs produced before the loss stay where they are and are *pulled*: a re-planned function's
  node asks (``want``) the node that holds each input — its producer when alive, else a node that
  received it — and that node sends it at once, or when its producer finishes there. Values
  (``$V^``) of finished functions are constants of the job, which the delegator sends itself.
  Every node whose part changed gets its new plan (``replan``): new functions and routes to where
  their successors now run; a route to a node that pulls the same file is left out, so that a
  file never arrives before the plan that expects it.

  The job fails only when no node is left to take the work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sflow.delegator.plan import JobPlan, TaskPlacement, build_plan
from sflow.errors import ExecutionError, JobFailed, SflowError
from sflow.model.paths import job_relative
from sflow.model.workflow import Job, OutFile, OutValue, TaskId
from sflow.node.plan import FileRoute, NodePlan, Pull, ValueRoute

#: where to run the given (sub-)job on the given live nodes: a placement per function
Placer = Callable[[Job, frozenset[str]], Mapping[TaskId, TaskPlacement]]


@dataclass(frozen=True, slots=True)
class Revise:
    """Send ``node`` its new plan and the inputs it must ask peers for."""

    node: str
    plan: NodePlan
    pulls: tuple[Pull, ...]


@dataclass(frozen=True, slots=True)
class GiveValue:
    """Send ``node`` the ``$V^`` value of finished function ``task``."""

    node: str
    task: TaskId
    val: str


@dataclass(frozen=True, slots=True)
class Retry:
    node: str
    task: TaskId
    attempt: int
    failure: JobFailed


@dataclass(frozen=True, slots=True)
class Replanned:
    """A node was lost: what was re-planned and where it runs now (for the display and trace)."""

    node: str
    reason: str
    time: float
    placements: Mapping[TaskId, TaskPlacement]
    #: functions that had finished but whose output was lost with the node
    rerun: tuple[TaskId, ...]


@dataclass(frozen=True, slots=True)
class Suspect:
    """A peer could not reach ``node``: unless the delegator loses it itself by ``deadline``,
    call :meth:`JobProgress.unreachable`."""

    node: str
    deadline: float
    reason: str


@dataclass(frozen=True, slots=True)
class Fail:
    error: SflowError


Action = Revise | GiveValue | Retry | Replanned | Suspect | Fail


class JobProgress:
    """``plan`` is the first plan; ``order`` the schedule order of every function (a topological
    order: re-planned plans keep it, so no vCPU queue waits on a function behind it); ``nodes``
    every node the job may use (those of the plan and any other that took the job)."""

    def __init__(self, job: Job, plan: JobPlan, order: Sequence[TaskId], nodes: Sequence[str], placer: Placer,
                 retries: int = 0, suspect_grace: float = 8.0) -> None:
        self.job = job
        self.run_id = plan.run_id
        self.order = tuple(order)
        self.placements: dict[TaskId, TaskPlacement] = dict(plan.placements)
        self.plans: dict[str, NodePlan] = {n: plan.nodes.get(n, NodePlan(job.id, plan.run_id, n, ())) for n in nodes}
        self.alive: set[str] = set(nodes)
        self.lost: dict[str, str] = {}
        self.placer = placer
        self.retries = retries
        self.suspect_grace = suspect_grace
        self.done: dict[TaskId, str] = {}
        self.running: dict[TaskId, str] = {}
        self.failures: dict[TaskId, int] = {}
        self.holders: dict[tuple[TaskId, str], set[str]] = {}
        self.results: dict[tuple[TaskId, str], bool] = {(r.task, r.path): False for r in plan.results}
        self.values: dict[TaskId, str] = {}
        self.expected_values = {t.id for t in job.tasks if t.out_value is not None and (not t.out_value.dest or
                                                                                          not job.succs[t.id])}
        self.failed = False

    # -- queries ---------------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        return (len(self.done) == len(self.job.tasks) and all(self.results.values())
                and self.expected_values <= set(self.values))

    def current(self, task: TaskId, node: str) -> bool:
        """Whether ``node`` runs ``task`` now (a report from a lost node, or about a function
        moved since, is stale)."""
        place = self.placements.get(task)
        return node in self.alive and place is not None and place.node == node

    # -- events ----------------------------------------------------------------------------------

    def started(self, task: TaskId, node: str) -> bool:
        if not self.current(task, node):
            return False
        self.running[task] = node
        return True

    def finished(self, task: TaskId, node: str) -> bool:
        """A function finished on ``node``; False when the report is stale."""
        if not self.current(task, node) or task in self.done:
            return False
        self.running.pop(task, None)
        self.done[task] = node
        for f in self.job.task(task).out_files:
            self.holders.setdefault((task, job_relative(f.path)), set()).add(node)
        return True

    def received(self, task: TaskId, path: str, node: str) -> None:
        self.holders.setdefault((task, path), set()).add(node)

    def result_arrived(self, task: TaskId, path: str) -> None:
        self.results[(task, path)] = True

    def value_arrived(self, task: TaskId, val: str) -> None:
        self.values[task] = val

    def function_failed(self, task: TaskId, node: str, failure: JobFailed) -> list[Action]:
        if not self.current(task, node):
            return []
        self.running.pop(task, None)
        count = self.failures.get(task, 0) + 1
        self.failures[task] = count
        if count <= self.retries:
            return [Retry(node, task, count + 1, failure)]
        return self._fail(failure)

    def send_failed(self, sender: str, to: str, reason: str, now: float) -> list[Action]:
        """A node could not send to (or ask) ``to``: if the delegator itself does not lose ``to``
        within the grace, it is lost for this job (its peers cannot reach it)."""
        if to not in self.alive or sender not in self.alive:
            return []
        return [Suspect(to, now + self.suspect_grace, f"node {sender} cannot reach it: {reason}")]

    def unreachable(self, node: str, reason: str, now: float) -> list[Action]:
        return self.node_lost(node, reason, now)

    def node_lost(self, node: str, reason: str, now: float) -> list[Action]:
        if node not in self.alive or self.failed:
            return []
        self.alive.discard(node)
        self.lost[node] = reason
        for task in [t for t, n in self.running.items() if n == node]:
            del self.running[task]
        if self.complete:
            return []
        return self._replan(node, reason, now)

    # -- re-planning ---------------------------------------------------------------------------

    def _needed_again(self) -> set[TaskId]:
        """Functions to run (again) on live nodes: unfinished ones on lost nodes, and finished
        ones whose output is still needed but no live node holds."""
        lost = set(self.lost)
        todo = {t for t, p in self.placements.items() if p.node in lost and t not in self.done}
        for (task, _), arrived in self.results.items():
            if not arrived and task in self.done and self.done[task] in lost:
                todo.add(task)
        grew = True
        while grew:
            grew = False
            for consumer in [t for t in self.job.by_id if t not in self.done or t in todo]:
                for pred, path in _file_inputs(self.job, consumer):
                    if pred in self.done and pred not in todo and not (self.holders.get((pred, path), set()) & self.alive):
                        todo.add(pred)
                        grew = True
        return todo

    def _replan(self, node: str, reason: str, now: float) -> list[Action]:
        todo = self._needed_again()
        rerun = tuple(sorted(t for t in todo if t in self.done))
        for task in rerun:
            del self.done[task]
        if not todo:
            return []
        if not self.alive:
            return self._fail(ExecutionError(
                f"node {node} was lost ({reason}) and no node is left to run functions "
                f"{', '.join(map(str, sorted(todo)))}"))
        try:
            moved = dict(self.placer(_sub_job(self.job, todo), frozenset(self.alive)))
        except SflowError as exc:
            return self._fail(ExecutionError(f"node {node} was lost ({reason}); re-planning functions "
                                             f"{', '.join(map(str, sorted(todo)))} failed: {exc}"))
        if set(moved) != todo or any(p.node not in self.alive for p in moved.values()):
            return self._fail(ExecutionError(f"node {node} was lost ({reason}); the re-plan did not place "
                                             f"every function on a live node"))
        self.placements.update(moved)
        try:
            plan = build_plan(self.job, self.placements, self.order, self.run_id)
        except SflowError as exc:
            return self._fail(ExecutionError(f"node {node} was lost ({reason}); the re-plan cannot run: {exc}"))
        pulls, values = self._pulls(todo)
        actions: list[Action] = [Replanned(node, reason, now, {t: moved[t] for t in sorted(moved)}, rerun)]
        pulled = {(p.pred, p.path, n) for n, ps in pulls.items() for p in ps}
        for live in sorted(self.alive):
            new = _without_routes(plan.nodes.get(live, NodePlan(self.job.id, self.run_id, live, ())), pulled,
                                  set(self.lost))
            if new != self.plans.get(live) or pulls.get(live):
                self.plans[live] = new
                actions.append(Revise(live, new, tuple(pulls.get(live, ()))))
        actions.extend(GiveValue(n, t, v) for n, t, v in values)
        return actions

    def _pulls(self, moved: set[TaskId]) -> tuple[dict[str, list[Pull]], list[tuple[str, TaskId, str]]]:
        """What each live node must ask for, and the values the delegator sends: for a moved
        function, every input from another node; for one that stays, the inputs that were to come
        from a lost node and are held elsewhere."""
        pulls: dict[str, list[Pull]] = {}
        values: list[tuple[str, TaskId, str]] = []
        lost = set(self.lost)
        for consumer in self.order:
            if consumer in self.done:
                continue
            here = self.placements[consumer].node
            for pred, path in _file_inputs(self.job, consumer):
                holders = self.holders.get((pred, path), set()) & self.alive
                if pred in self.done:
                    if here in holders or (consumer not in moved and self.done[pred] not in lost):
                        continue
                    source = self.done[pred] if self.done[pred] in holders else min(holders)
                elif consumer in moved:
                    source = self.placements[pred].node
                else:
                    continue  # its producer's plan routes it here (the producer stayed, or moved)
                if source != here:
                    pulls.setdefault(here, []).append(Pull(pred, path, source))
            for pred, val in _value_inputs(self.job, consumer):
                if pred in self.done:
                    if consumer in moved or self.done[pred] in lost:
                        values.append((here, pred, val))
                elif consumer in moved and self.placements[pred].node != here:
                    pulls.setdefault(here, []).append(Pull(pred, "", self.placements[pred].node))
        return pulls, values

    def _fail(self, error: SflowError) -> list[Action]:
        self.failed = True
        return [Fail(error)]


def _file_inputs(job: Job, task: TaskId) -> list[tuple[TaskId, str]]:
    out = []
    for pred in job.preds[task]:
        for f in job.task(pred).out_files:
            if task in f.dest:
                out.append((pred, job_relative(f.path)))
    return list(dict.fromkeys(out))


def _value_inputs(job: Job, task: TaskId) -> list[tuple[TaskId, str]]:
    """The predecessors that send ``task`` a ``$V^`` value, with the value."""
    return [(p, v.val) for p in job.preds[task] if (v := job.task(p).out_value) is not None and task in v.dest]


def _sub_job(job: Job, tasks: set[TaskId]) -> Job:
    """The functions to re-plan as a job of their own (for the scheduler): their edges among
    themselves; inputs from outside are already available (produced before the loss)."""
    out = []
    for t in job.tasks:
        if t.id not in tasks:
            continue
        files = tuple(OutFile(f.path, f.size, tuple(d for d in f.dest if d in tasks)) for f in t.out_files)
        value = t.out_value
        if value is not None:
            value = OutValue(value.val, value.size, tuple(d for d in value.dest if d in tasks))
        out.append(dataclasses.replace(t, out_files=files, out_value=value))
    return Job(job.id, tuple(out))


def _without_routes(plan: NodePlan, pulled: set[tuple[TaskId, str, str]], lost: set[str]) -> NodePlan:
    """``plan`` without routes to lost nodes, nor to nodes that pull that file (or value)."""
    tasks = []
    for t in plan.tasks:
        outputs = tuple(FileRoute(o.path, tuple(n for n in o.nodes if n not in lost and (t.id, o.path, n) not in pulled),
                                  o.result) for o in t.outputs)
        value = t.value
        if value is not None:
            value = ValueRoute(value.val, tuple(n for n in value.nodes if n not in lost and (t.id, "", n) not in pulled),
                               value.result)
        tasks.append(dataclasses.replace(t, outputs=outputs, value=value))
    return dataclasses.replace(plan, tasks=tuple(tasks))

