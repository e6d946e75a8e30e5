"""Autonomous placement (``--mode auto``; pure: no I/O, the time is passed in).

Nodes advertise their state (:class:`Advert`: vCPUs, free vCPUs, queued functions, speed, link
bandwidth) in hellos; each keeps a :class:`NeighbourTable` of fresh adverts. When a node needs an
input of a function it was asked for, :func:`choose` decides where that predecessor runs — here
or at a neighbour — with a blevel-style estimate in the spirit of sflow-original.md §6.3, without
its defects: the estimate of a candidate is the predecessor's *upstream* work (its workload plus the
heaviest chain of functions before it, since the chosen node pulls those too) at the candidate's
speed, stretched by the candidate's load (queued, running and recently placed functions per
vCPU), plus the transfer of the result back when the candidate is a neighbour. Ties keep the work
here. Neighbours that did not answer are avoided.

There is no forwarding loop to guard against: a node asked for a function runs it; only its
predecessors are placed, each strictly upstream of the node that places it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: MB assumed to cross for a predecessor's result when nothing better is known
DEFAULT_RESULT_MB = 0.1
#: seconds added for a remote placement (request and reply over the network)
REMOTE_LATENCY = 0.005


@dataclass(frozen=True, slots=True)
class Advert:
    """A node's advertised state; ``node`` is its ICN address."""

    node: str
    vcpus: int
    free: int
    queue: int
    speed: float  # MIPS per vCPU
    bandwidth: float  # MB/s

    @property
    def load(self) -> float:
        busy = self.vcpus - self.free + self.queue
        return max(0, busy) / max(1, self.vcpus)


@dataclass(slots=True)
class NeighbourTable:
    """Fresh adverts by node, at most ``max_neighbours`` (the most recently heard are kept)."""

    ttl: float
    max_neighbours: int
    adverts: dict[str, tuple[Advert, float]] = field(default_factory=dict)

    def update(self, advert: Advert, now: float) -> bool:
        """Record an advert; True when the node is new."""
        new = advert.node not in self.adverts
        self.adverts.pop(advert.node, None)
        self.adverts[advert.node] = (advert, now)
        while len(self.adverts) > self.max_neighbours:
            del self.adverts[next(iter(self.adverts))]
        return new

    def fresh(self, now: float) -> list[Advert]:
        for node in [n for n, (_, seen) in self.adverts.items() if now - seen > self.ttl]:
            del self.adverts[node]
        return [a for a, _ in self.adverts.values()]


def upstream_work(
    task: str, workloads: Mapping[str, float], inputs: Mapping[str, Iterable[str]], memo: dict[str, float] | None = None
) -> float:
    """The task's workload plus the heaviest chain of work before it (by digest). ``memo`` keeps
    the answers for every function visited, for later calls over the same functions."""
    if memo is None:
        memo = {}
    order: list[tuple[str, bool]] = [(task, False)]
    while order:
        node, expanded = order.pop()
        if node in memo:
            continue
        preds = [p for p in inputs.get(node, ()) if p in workloads]
        if not expanded:
            order.append((node, True))
            order.extend((p, False) for p in preds if p not in memo)
            continue
        memo[node] = workloads.get(node, 0.0) + max((memo.get(p, 0.0) for p in preds), default=0.0)
    return memo[task]


def estimate(advert: Advert, work: float, result_mb: float, local: bool, placed: int = 0) -> float:
    """Seconds for ``advert``'s node to deliver a result needing ``work`` (MI) upstream."""
    load = advert.load + placed / max(1, advert.vcpus)
    compute = work / max(advert.speed, 1e-9) * (1.0 + load)
    if local:
        return compute
    return compute + result_mb / max(advert.bandwidth, 1e-9) + REMOTE_LATENCY


def choose(
    me: Advert,
    neighbours: Iterable[Advert],
    work: float,
    *,
    result_mb: float = DEFAULT_RESULT_MB,
    avoid: frozenset[str] = frozenset(),
    placed: Mapping[str, int] | None = None,
) -> str:
    """Where to run a predecessor needing ``work``: ``me.node`` or a neighbour's address."""
    placed = placed or {}
    best = me.node
    best_cost = estimate(me, work, result_mb, True, placed.get(me.node, 0))
    for advert in sorted(neighbours, key=lambda a: a.node):
        if advert.node == me.node or advert.node in avoid:
            continue
        cost = estimate(advert, work, result_mb, False, placed.get(advert.node, 0))
        if cost < best_cost:
            best, best_cost = advert.node, cost
    return best
