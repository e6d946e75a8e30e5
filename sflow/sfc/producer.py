"""The producer's per-function state machine (pure: the caller passes the time in).

A node asked (by an authenticated compute Interest) for a function it does not have moves the
function through ``inputs`` (its inputs are being obtained) → ``running`` (executing) → done,
where a success leaves the result in the store and the run is forgotten, and a failure is kept
for ``failure_memory`` seconds so that every consumer waiting for it hears the same reason
(afterwards a new request tries again). A failure carries the :class:`FunctionFailure` where it
began — this function, or, when an input failed, the function upstream that failed — so that the
delegator can name the function, node, exit status and stderr at fault however far down it hears.
However many consumers ask, each function starts once: requests for a function already under way
are held until it ends.

In autonomous mode two nodes may each place the same function on the other and ask for it at the
same time (a *mutual wait*). The node asked knows it at once — it is itself obtaining that function
from the node that asks — and the tie is broken the same way on both sides (:func:`runs_mutual`):
the node whose address sorts first runs it and holds the request; the other answers ``yielded`` at
once and goes on waiting for the first, which, hearing ``yielded``, runs it itself. Exactly one of
them runs the function and neither waits for a deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sflow.errors import FunctionFailure
from sflow.sfc.bundle import FAILED, READY, RUNNING, UNKNOWN, YIELDED

INPUTS = "inputs"

FAILURE_MEMORY = 5.0


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the request now (``state`` is a bundle status state)."""

    state: str
    reason: str = ""
    elapsed: float = 0.0
    failure: FunctionFailure | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    """Keep the request until the function ends (or the Interest is about to expire)."""


@dataclass(frozen=True, slots=True)
class Obtain:
    """Start obtaining input ``index`` of the function."""

    index: int


@dataclass(frozen=True, slots=True)
class Execute:
    """All inputs are here: run the function."""


@dataclass(frozen=True, slots=True)
class ReplyAll:
    """Answer every held request with ``state``."""

    state: str
    reason: str = ""
    failure: FunctionFailure | None = None


Action = Reply | Hold | Obtain | Execute | ReplyAll


@dataclass(slots=True)
class FunctionRun:
    digest: str
    n_inputs: int
    requested: float
    phase: str = INPUTS
    have: set[int] = field(default_factory=set)
    ended: float = 0.0
    reason: str = ""
    failure: FunctionFailure | None = None


def runs_mutual(me: str, other: str) -> bool:
    """Of two nodes waiting on each other for the same function, whether ``me`` runs it: the one
    whose address sorts first (both sides compute the same answer)."""
    return me < other


class Producer:
    """The runs under way on one node (``name``: its advertised address), by result digest."""

    def __init__(self, failure_memory: float = FAILURE_MEMORY, name: str = "") -> None:
        self.failure_memory = failure_memory
        self.name = name
        self.runs: dict[str, FunctionRun] = {}
        #: the digests of the runs still obtaining their inputs (phase INPUTS)
        self.awaiting: set[str] = set()

    def running(self) -> int:
        return sum(1 for r in self.runs.values() if r.phase == RUNNING)

    def queued(self) -> int:
        return len(self.awaiting)

    def working(self) -> list[str]:
        """Digests of the functions under way here (obtaining inputs or running)."""
        return [d for d, r in self.runs.items() if r.phase != FAILED]

    def on_request(
        self, digest: str, now: float, *, known: bool, stored: bool, n_inputs: int, mutual: str = ""
    ) -> list[Action]:
        """A compute request. ``mutual`` is the node that asks when this node is itself obtaining
        this function from it (see the module docstring)."""
        if stored:
            return [Reply(READY)]
        run = self.runs.get(digest)
        if run is not None and run.phase == FAILED:
            if now - run.ended < self.failure_memory:
                return [Reply(FAILED, run.reason, failure=run.failure)]
            del self.runs[digest]
            run = None
        if run is not None:
            return [Hold()]
        if not known:
            return [Reply(UNKNOWN, "this node was not told about the function")]
        if mutual and not runs_mutual(self.name, mutual):
            return [Reply(YIELDED, f"{self.name} is waiting on {mutual} for this function; {mutual} runs it")]
        run = FunctionRun(digest, n_inputs, now)
        self.runs[digest] = run
        if n_inputs == 0:
            run.phase = RUNNING
            return [Hold(), Execute()]
        self.awaiting.add(digest)
        return [Hold(), *(Obtain(i) for i in range(n_inputs))]

    def elapsed(self, digest: str, now: float) -> float:
        run = self.runs.get(digest)
        return now - run.requested if run is not None else 0.0

    def on_input(self, digest: str, index: int) -> list[Action]:
        run = self.runs.get(digest)
        if run is None or run.phase != INPUTS:
            return []
        run.have.add(index)
        if len(run.have) < run.n_inputs:
            return []
        run.phase = RUNNING
        self.awaiting.discard(digest)
        return [Execute()]

    def on_input_failed(
        self, digest: str, index: int, reason: str, now: float, failure: FunctionFailure | None = None
    ) -> list[Action]:
        """Input ``index`` cannot be had; ``failure`` is where that began (None: unknown)."""
        run = self.runs.get(digest)
        if run is None or run.phase != INPUTS:
            return []
        return self._fail(run, f"input {index + 1} of {run.n_inputs}: {reason}", now, failure)

    def on_executed(
        self, digest: str, ok: bool, reason: str, now: float, failure: FunctionFailure | None = None
    ) -> list[Action]:
        """The function ended; when it failed, ``failure`` describes it."""
        run = self.runs.get(digest)
        if run is None or run.phase != RUNNING:
            return []
        if ok:
            del self.runs[digest]
            return [ReplyAll(READY)]
        return self._fail(run, reason, now, failure)

    def _fail(self, run: FunctionRun, reason: str, now: float, failure: FunctionFailure | None) -> list[Action]:
        run.phase = FAILED
        self.awaiting.discard(run.digest)
        run.reason = reason
        run.ended = now
        run.failure = failure
        return [ReplyAll(FAILED, reason, failure)]
