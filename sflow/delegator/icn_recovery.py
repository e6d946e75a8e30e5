"""ICN-mode recovery of one job (pure: events in, actions out, time passed in).

In ICN modes the delegator does not follow each function as IP mode does: results are pulled by
name and kept in the nodes' result stores. What it knows is where it placed functions — every
function in static ``icn`` mode (the schedule), only the END functions in ``auto`` mode (the
nodes place the rest themselves, and route around a lost neighbour on their own) — and which
nodes are alive. :class:`IcnRecovery` decides what follows the loss of a node:

* every function the delegator had placed there is placed again on the nodes still alive, with
  the job's algorithm through the same ``Problem``/scheduler path as the first plan
  (:func:`~sflow.delegator.recovery.place_again`, shared with IP mode). A function placed there
  that had finished is placed again too: its result lived in the lost node's store, and is
  computed again only if some function still asks for it (a consumer that obtained it before
  the loss keeps it in its own store);
* static mode: each moved function is installed on its new node (:class:`Install`), and each
  function on a live node one of whose inputs moved is installed again with the input's new node,
  so that its node asks there from then on;
* every END function that moved is asked of its new node (:class:`Ask`).

The job fails only when no node is left to take the work, or the scheduler cannot place it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sflow.delegator.recovery import Fail, Placer, Replanned, place_again
from sflow.errors import SflowError
from sflow.model.workflow import Job, TaskId


@dataclass(frozen=True, slots=True)
class Install:
    """(Re-)install functions ``tasks`` on ``node`` with their inputs' current nodes."""

    node: str
    tasks: tuple[TaskId, ...]


@dataclass(frozen=True, slots=True)
class Ask:
    """Ask ``node`` for the result of END function ``task`` from now on."""

    task: TaskId
    node: str


IcnAction = Replanned | Install | Ask | Fail


class IcnRecovery:
    """``placements``: the node of every function the delegator placed (static mode: all; auto
    mode: the END functions); ``nodes``: the live nodes at the start; ``static``: whether the
    delegator installs placements on the nodes (static mode) or only asks for END results."""

    def __init__(self, job: Job, placements: Mapping[TaskId, str], nodes: Sequence[str], placer: Placer,
                 static: bool) -> None:
        self.job = job
        self.placements: dict[TaskId, str] = dict(placements)
        self.alive: set[str] = set(nodes)
        self.lost: dict[str, str] = {}
        self.placer = placer
        self.static = static
        self.failed = False

    def node_lost(self, node: str, reason: str, now: float) -> list[IcnAction]:
        if node not in self.alive or self.failed:
            return []
        self.alive.discard(node)
        self.lost[node] = reason
        todo = {t for t, n in self.placements.items() if n == node}
        if not todo:
            return []
        moved = place_again(self.job, todo, frozenset(self.alive), self.placer, node, reason)
        if isinstance(moved, SflowError):
            self.failed = True
            return [Fail(moved)]
        self.placements.update({t: p.node for t, p in moved.items()})
        actions: list[IcnAction] = [Replanned(node, reason, now, {t: moved[t] for t in sorted(moved)}, ())]
        if self.static:
            affected: dict[str, list[TaskId]] = {}
            for tid in self.job.order:
                if tid in moved or any(p in moved for p in self.job.preds[tid]):
                    affected.setdefault(self.placements[tid], []).append(tid)
            actions.extend(Install(n, tuple(ts)) for n, ts in sorted(affected.items()))
        ends = set(self.job.end_tasks)
        actions.extend(Ask(t, moved[t].node) for t in sorted(moved) if t in ends)
        return actions

