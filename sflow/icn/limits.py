"""Bounds on what remote peers can make a forwarder hold (pure; times come in as arguments).

Every table a peer can grow has a limit, and each refusal is counted (never an exception): PIT
entries (a new Interest beyond the limit is dropped), faces (a connection or a new UDP peer beyond
the limit is refused), FIB entries and next hops per entry, and the rate of Interests a face may
send (a token bucket per face: ``rate`` per second, up to ``burst`` at once). A face may also
create at most ``pit_max_entries_per_face`` PIT entries, so that one flooding peer (whose
Interests may ask for long lifetimes) cannot take the whole PIT from the others. The content store is
bounded in packets and bytes by its own capacity (:mod:`sflow.icn.cs`). A limit of 0 is no limit.
Faces of this process (in-process faces: the node's own producer, consumer and management) are
not rate limited.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sflow.config import IcnSettings

DEFAULT_PIT_MAX_ENTRIES = 65536
DEFAULT_PIT_MAX_ENTRIES_PER_FACE = 16384
DEFAULT_MAX_FACES = 100
DEFAULT_FIB_MAX_ENTRIES = 65536
DEFAULT_FIB_MAX_NEXTHOPS = 5
DEFAULT_INTEREST_RATE = 20000.0
DEFAULT_INTEREST_BURST = 20000


@dataclass(frozen=True, slots=True)
class ForwarderLimits:
    """The limits (0 = none): see the module docstring and the ``icn`` settings."""

    pit_max_entries: int = DEFAULT_PIT_MAX_ENTRIES
    pit_max_entries_per_face: int = DEFAULT_PIT_MAX_ENTRIES_PER_FACE
    max_faces: int = DEFAULT_MAX_FACES
    fib_max_entries: int = DEFAULT_FIB_MAX_ENTRIES
    fib_max_nexthops: int = DEFAULT_FIB_MAX_NEXTHOPS
    interest_rate: float = DEFAULT_INTEREST_RATE
    interest_burst: int = DEFAULT_INTEREST_BURST

    @classmethod
    def from_settings(cls, icn: IcnSettings) -> ForwarderLimits:
        return cls(icn.pit_max_entries, icn.pit_max_entries_per_face, icn.max_faces, icn.fib_max_entries, icn.fib_max_nexthops,
                   icn.face_interest_rate, icn.face_interest_burst)

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"forwarder limit {f.name} must be 0 (none) or more")


@dataclass(slots=True)
class LimitCounters:
    """How often each limit bit."""

    n_pit_full: int = 0
    n_pit_face_quota: int = 0
    n_faces_refused: int = 0
    n_fib_full: int = 0
    n_nexthops_refused: int = 0
    n_rate_limited: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` held; one token per Interest."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))
        self.tokens = self.burst
        self.last = now

    def take(self, now: float) -> bool:
        """Take a token; False when there is none (the Interest is over the rate)."""
        tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


def room(limit: int, size: int) -> bool:
    """Whether a table of ``size`` entries may take one more under ``limit`` (0 = none)."""
    return limit <= 0 or size < limit
