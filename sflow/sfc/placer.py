"""The placer of autonomous mode: where a node has the predecessors of its functions computed.

:class:`AutoPlacer` is the :data:`~sflow.sfc.service.Placer` of ``--mode auto``. For input ``index``
of a function it runs, it describes the predecessor (its work, and the work of the chains before
its own inputs, from the functions the delegator installed), takes this node's state from its
:class:`NodeView` — the vCPUs free now, the queue, the functions accepted that do not wait for
this very input, and whether it holds or is computing the predecessor or its inputs — and the
fresh adverts of its neighbours, and lets :func:`~sflow.sfc.auto.choose` decide. Every decision
is logged at INFO on one line, with each candidate's state and estimate (``event=placed``).

A function placed on a node counts as load there until that node shows it under way or done (the
node's next advert, or, here, the request reaching this node's producer or the result reaching
this node: :meth:`AutoPlacer.arrived`), or for ``ttl`` seconds, so that a burst of decisions made
before any advert changes spreads the work. A decision costs the same however many are
outstanding (a join of a thousand inputs places them all at once).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any, Protocol

from sflow import deferred_log
from sflow.sfc.auto import Advert, NeighbourTable, Work, choose, short, upstream_work
from sflow.sfc.names import Installed

log = logging.getLogger(__name__)


class NodeView(Protocol):
    """What the placer needs to know of its own node (the :class:`~sflow.sfc.service.SfcService`)."""

    name: str
    #: called with a digest whose function is now under way here or whose result is here
    on_arrival: Callable[[str], None] | None
    #: whether a neighbour (by address) last advertised that it holds a result (by digest)
    held_at: Callable[[str, str], bool] | None

    @property
    def generation(self) -> int:
        """Changes whenever a function new to the node is installed."""
        ...

    def local_advert(self, waiting_on: str) -> Advert:
        """The node's state now, leaving out of ``pending`` the functions waiting for the result
        ``waiting_on`` (they cannot compete with the function that computes it)."""
        ...

    def holds(self, digest: str) -> bool: ...

    def working_on(self, digest: str) -> bool: ...

    def functions(self) -> dict[str, Installed]: ...


class AutoPlacer:
    """See the module docstring; ``view`` is set once the node's service exists."""

    def __init__(self, clock: Any, table: NeighbourTable, view: NodeView | None = None, ttl: float | None = None) -> None:
        self.clock = clock
        self.table = table
        self.view = view
        self.ttl = table.ttl if ttl is None else ttl
        #: node -> {digest: when placed there}, until that node shows it
        self.placed: dict[str, dict[str, float]] = {}
        self._graph: tuple[int, dict[str, float], dict[str, list[str]], dict[str, float]] | None = None

    def attach(self, view: NodeView) -> None:
        """Place for ``view``'s node, which tells :meth:`arrived`."""
        self.view = view
        view.on_arrival = self.arrived
        view.held_at = self.held_at

    def held_at(self, node: str, digest: str) -> bool:
        """Whether ``node``'s last advert lists the result ``digest`` among those it holds."""
        entry = self.table.adverts.get(node)
        return entry is not None and short(digest) in entry[0].held

    def arrived(self, digest: str) -> None:
        """The function is under way on this node, or its result is here: a placement of it here
        no longer counts (the node's own state does)."""
        if self.view is not None:
            self.placed.get(self.view.name, {}).pop(digest, None)

    def heard(self, advert: Advert) -> None:
        """A neighbour's advert: the placements it shows (under way or held) no longer count."""
        mine = self.placed.get(advert.node)
        if mine:
            for digest in [d for d in mine if short(d) in advert.working or short(d) in advert.held]:
                del mine[digest]

    def _placed_counts(self, now: float) -> dict[str, int]:
        """Placements still counting, per node; the expired ones are dropped. Each node's are
        kept oldest first, so only those that expire are looked at."""
        counts: dict[str, int] = {}
        ttl = self.ttl
        for node, digests in self.placed.items():
            expired = [key for key, _ in itertools.takewhile(lambda entry: now - entry[1] > ttl, digests.items())]
            for key in expired:
                del digests[key]
            counts[node] = len(digests)
        return counts

    def _graph_of(self, view: NodeView) -> tuple[dict[str, float], dict[str, list[str]], dict[str, float]]:
        """Workloads and inputs of the installed functions by digest, and the upstream work
        computed so far: rebuilt only when a function was installed since."""
        generation = view.generation
        if self._graph is None or self._graph[0] != generation:
            functions = view.functions()
            workloads = {d: f.workload for d, f in functions.items()}
            inputs = {d: [r.digest for r in f.spec.inputs] for d, f in functions.items()}
            self._graph = (generation, workloads, inputs, {})
        _, workloads, inputs, memo = self._graph
        return workloads, inputs, memo

    def work(self, view: NodeView, digest: str) -> Work:
        workloads, inputs, memo = self._graph_of(view)
        preds = inputs.get(digest, [])
        return Work(digest, workloads.get(digest, 0.0), tuple((p, upstream_work(p, workloads, inputs, memo)) for p in preds))

    def __call__(self, item: Installed, index: int, avoid: frozenset[str]) -> str:
        view = self.view
        if view is None:
            return ""
        ref = item.spec.inputs[index]
        now = self.clock.seconds()
        work = self.work(view, ref.digest)
        relevant = [work.digest, *(d for d, _ in work.inputs)]
        me = view.local_advert(ref.digest)
        me = Advert(
            me.node, me.vcpus, me.free, me.queue, me.speed, me.bandwidth, me.pending,
            frozenset(short(d) for d in relevant if view.working_on(d)),
            frozenset(short(d) for d in relevant if view.holds(d)),
        )
        choice = choose(me, self.table.fresh(now), work, avoid=avoid, placed=self._placed_counts(now))
        there = self.placed.setdefault(choice.target, {})
        there.pop(ref.digest, None)  # placed again: it moves to the newest end
        there[ref.digest] = now
        where = "here" if choice.target == me.node else choice.target
        # Written when the reactor's turn ends, once the request it decides has gone out (a line
        # with every candidate's estimate costs about 0.1 ms on a busy CPU; a join places a
        # thousand inputs in one turn), with the time of the decision.
        line = deferred_log.record(log, logging.INFO,
                                   "event=placed node=%s task=%d function=%s/%s for_task=%d on=%s why=\"%s\"",
                                   me.node, ref.pred, ref.program, short(ref.digest)[:8], item.spec.task, where, choice)
        if line is not None:
            self.clock.callLater(0, deferred_log.write, log, line)
        return "" if choice.target == me.node else choice.target
