"""Autonomous placement (``--mode auto``; pure: no I/O, the time is passed in).

Nodes advertise their state in hellos (:class:`Advert`): vCPUs, free vCPUs, the functions queued
for a vCPU, the functions accepted that still wait for inputs, speed, link bandwidth, and — by
short digest — the functions under way there and the results it holds. Each node keeps a
:class:`NeighbourTable` of fresh adverts.

When a node needs an input of a function it was asked for, :func:`choose` decides where the
function that computes that input (the *predecessor*) runs: here or at a neighbour. In the spirit
of the blevel estimate of sflow-original.md §6.3, without its defects, a candidate's estimate is
when it would deliver the result:

* it holds the result (result store, content store): only the transfer back (nothing, here);
* it is computing it: half its work (it is under way) and the transfer;
* otherwise: when the predecessor's own inputs would be there — nothing for those it holds, one
  fetch after another for those other nodes hold, the heaviest chain of work before the rest —
  plus the predecessor's work at its speed, stretched when all its vCPUs are committed (running,
  queued, waiting for inputs, and placed there by this node since its last hello), plus the
  transfer of the result back when it is a neighbour.

The cheapest wins; ties keep the work here (its inputs and its result need no network), then go
to the neighbour whose address sorts first. Neighbours that did not answer are avoided.

There is no forwarding loop to guard against: a node asked for a function runs it; only its
predecessors are placed, each strictly upstream of the node that places it. Two nodes that place
the same predecessor on each other are resolved by the producer (see :mod:`sflow.sfc.producer`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: MB assumed to cross for a predecessor's result when nothing better is known
DEFAULT_RESULT_MB = 0.1
#: seconds added for a remote placement or fetch (request and reply over the network)
REMOTE_LATENCY = 0.005
#: hex digits of a digest that adverts carry (64 bits: collisions do not matter at this size)
SHORT_DIGEST = 16
#: the share of its work a function under way is assumed to have left
UNDER_WAY = 0.5


def short(digest: str) -> str:
    """The short digest adverts carry."""
    return digest[:SHORT_DIGEST]


@dataclass(frozen=True, slots=True)
class Advert:
    """A node's advertised state; ``node`` is its ICN address. ``queue`` counts the functions that
    have their inputs and wait for a vCPU, ``pending`` those accepted that still wait for inputs;
    ``working`` and ``held`` are short digests (:func:`short`) of the functions under way there and
    of results it holds."""

    node: str
    vcpus: int
    free: int
    queue: int
    speed: float  # MIPS per vCPU
    bandwidth: float  # MB/s
    pending: int = 0
    working: frozenset[str] = frozenset()
    held: frozenset[str] = frozenset()

    @property
    def committed(self) -> int:
        """Functions that hold or will need one of its vCPUs."""
        return max(0, self.vcpus - self.free) + self.queue + self.pending

    @property
    def load(self) -> float:
        return self.committed / max(1, self.vcpus)


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

    def expire(self, now: float) -> list[str]:
        """Forget the nodes not heard from for ``ttl`` seconds; their addresses. Asked once per
        hello interval, by the node's hello loop only (which reports what expired)."""
        gone = [n for n, (_, seen) in self.adverts.items() if now - seen > self.ttl]
        for node in gone:
            del self.adverts[node]
        return gone

    def busy(self, seconds: float, now: float) -> None:
        """This node's loop was busy for ``seconds`` and heard nothing meanwhile: every
        neighbour's last hello counts as that much later (what they sent is still unread)."""
        for node, (advert, seen) in self.adverts.items():
            self.adverts[node] = (advert, min(now, seen + seconds))

    def fresh(self, now: float) -> list[Advert]:
        """The neighbours not expired (a placement in the middle of a long burst of work does not
        expire a neighbour whose hellos wait unread: only the hello loop expires them)."""
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


@dataclass(frozen=True, slots=True)
class Work:
    """A predecessor to place: its result ``digest``, its ``own`` work (MI) and, for each of its
    inputs, the input's digest and the work of the chain that computes it (MI)."""

    digest: str
    own: float
    inputs: tuple[tuple[str, float], ...] = ()
    result_mb: float = DEFAULT_RESULT_MB


@dataclass(frozen=True, slots=True)
class Estimate:
    """One candidate's estimate (seconds) and what it was made of, for the placement log."""

    node: str
    seconds: float
    why: str


@dataclass(frozen=True, slots=True)
class Choice:
    """Where the predecessor runs (``target``: an address, ``me.node`` for here) and every
    candidate's estimate, cheapest first."""

    target: str
    estimates: tuple[Estimate, ...]

    def explain(self) -> str:
        """One line: each candidate's state and estimate, the chosen one first."""
        return "; ".join(f"{e.node} {e.why} est={e.seconds:.3f}s" for e in self.estimates)

    def __str__(self) -> str:
        return self.explain()


def _stretch(advert: Advert, placed: int) -> float:
    """How much longer a function takes there because its vCPUs are all committed."""
    committed = advert.committed + placed
    vcpus = max(1, advert.vcpus)
    return 1.0 if committed < vcpus else 1.0 + (committed + 1 - vcpus) / vcpus


def estimate(advert: Advert, work: Work, *, local: bool, placed: int = 0, elsewhere: frozenset[str] = frozenset()) -> Estimate:
    """When ``advert``'s node would deliver ``work``'s result (see the module docstring).
    ``elsewhere`` are the short digests some node holds (an input there is a fetch away)."""
    bandwidth = max(advert.bandwidth, 1e-9)
    speed = max(advert.speed, 1e-9)
    transfer = 0.0 if local else REMOTE_LATENCY + work.result_mb / bandwidth
    state = f"(free {advert.free}/{advert.vcpus} queue {advert.queue} pending {advert.pending}"
    state += f" placed {placed}" if placed else ""
    me = short(work.digest)
    if me in advert.held:
        return Estimate(advert.node, transfer, state + ", holds the result)")
    if me in advert.working:
        return Estimate(advert.node, work.own / speed * UNDER_WAY + transfer, state + ", computing it)")
    computed = fetched = 0.0
    held = 0
    for digest, chain in work.inputs:
        key = short(digest)
        if key in advert.held:
            held += 1
        elif key in elsewhere:
            fetched += REMOTE_LATENCY + work.result_mb / bandwidth
        else:
            computed = max(computed, chain / speed)
    seconds = max(computed, fetched) + work.own / speed * _stretch(advert, placed) + transfer
    inputs = f", holds {held}/{len(work.inputs)} inputs" if work.inputs else ""
    return Estimate(advert.node, seconds, state + inputs + ")")


def choose(
    me: Advert,
    neighbours: Iterable[Advert],
    work: Work,
    *,
    avoid: frozenset[str] = frozenset(),
    placed: Mapping[str, int] | None = None,
) -> Choice:
    """Where to run the predecessor ``work``: ``me.node`` or a neighbour's address."""
    placed = placed or {}
    others = sorted((a for a in neighbours if a.node != me.node and a.node not in avoid), key=lambda a: a.node)
    elsewhere = frozenset(me.held).union(*(a.held for a in others))
    here = estimate(me, work, local=True, placed=placed.get(me.node, 0), elsewhere=elsewhere)
    estimates = [here] + [estimate(a, work, local=False, placed=placed.get(a.node, 0), elsewhere=elsewhere) for a in others]
    best = here
    for candidate in estimates[1:]:
        if candidate.seconds < best.seconds - 1e-9:
            best = candidate
    ranked = [best] + sorted((e for e in estimates if e is not best), key=lambda e: e.seconds)
    return Choice(best.node, tuple(ranked))
