"""Liveness of one node channel (pure: the time is passed in).

A peer that goes silent without closing its connection — a network partition, a stopped process
(SIGSTOP), a host that lost power — would otherwise hold a job for ever: TCP does not notice an
idle connection whose other end is gone. So both ends of every authenticated node channel
(delegator ⇄ node, node ⇄ node) send a ``ping`` frame every ``interval`` seconds (unless other
frames went out meanwhile), and each declares its peer lost when no frame at all has arrived for ``misses`` intervals of the slower of
the two (each side announces its interval during the handshake). Checked once per interval, a
silent peer is declared lost within ``interval × (misses + 1)`` seconds (8 s with the defaults).

Any frame counts as a sign of life (a file chunk as much as a ping), so a busy channel sends no
extra pings. While this side has stopped reading (its disk is behind), the peer cannot be heard
and is not blamed. Nor is it while this side's own event loop was too busy to look: a check that
comes late (a long callback held the loop) moves the peer's last sign of life on by the lateness,
so that what the peer sent meanwhile, still unread in the socket, is read before it is judged.

:class:`Liveness` takes events (``heard``, ``sent``, ``tick``) and returns what to do
(:class:`Ping`, :class:`Lost`); the channel (:mod:`sflow.node.channel`) performs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sflow.config import NodeSettings
from sflow.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """``interval`` seconds between pings (0: no heartbeat); lost after ``misses`` silent intervals."""

    interval: float
    misses: int

    @classmethod
    def from_settings(cls, node: NodeSettings) -> Heartbeat:
        """``node.heartbeat_interval`` and ``node.heartbeat_misses``, checked."""
        if node.heartbeat_interval < 0:
            raise ConfigError("<settings>", "node.heartbeat_interval", f"must be 0 (off) or positive, found {node.heartbeat_interval:g}")
        if node.heartbeat_interval > 0 and node.heartbeat_misses < 2:
            raise ConfigError("<settings>", "node.heartbeat_misses", f"must be at least 2, found {node.heartbeat_misses}")
        return cls(node.heartbeat_interval, node.heartbeat_misses)

    @property
    def enabled(self) -> bool:
        return self.interval > 0 and self.misses > 0

    @property
    def bound(self) -> float:
        """At most how long a silent peer goes unnoticed (one check interval late)."""
        return self.interval * (self.misses + 1)


@dataclass(frozen=True, slots=True)
class Ping:
    """Send a ping: nothing has been sent for half an interval."""


@dataclass(frozen=True, slots=True)
class Lost:
    """The peer has been silent for ``silence`` seconds: close the channel."""

    silence: float
    limit: float


LivenessAction = Ping | Lost


class Liveness:
    """The heartbeat state of one channel, from the moment it is authenticated (``now``)."""

    def __init__(self, heartbeat: Heartbeat, now: float, peer_interval: float | None = None) -> None:
        self.heartbeat = heartbeat
        #: the peer's announced interval: None or 0 when it sends no pings (then it is never
        #: declared lost by silence; TCP keepalive still applies)
        self.peer_interval = peer_interval
        self.last_heard = now
        self.last_sent = now
        self.last_tick = now
        self.deaf = False

    @property
    def limit(self) -> float:
        """Seconds of silence after which the peer is lost (inf when the peer does not ping)."""
        if not self.peer_interval or self.peer_interval <= 0:
            return float("inf")
        return self.heartbeat.misses * max(self.heartbeat.interval, self.peer_interval)

    def heard(self, now: float) -> None:
        self.last_heard = now

    def sent(self, now: float) -> None:
        self.last_sent = now

    def reading(self, paused: bool, now: float) -> None:
        """This side stopped (``paused``) or resumed reading: silence meanwhile is not the peer's."""
        self.deaf = paused
        self.last_heard = now

    def tick(self, now: float) -> list[LivenessAction]:
        """Called once per heartbeat interval."""
        late = now - self.last_tick - self.heartbeat.interval
        self.last_tick = now
        if late > self.heartbeat.interval / 2:  # this side's loop was busy: the silence meanwhile is not the peer's
            self.last_heard = min(now, self.last_heard + late)
        if self.deaf:
            self.last_heard = now
        silence = now - self.last_heard
        if silence >= self.limit:
            return [Lost(silence, self.limit)]
        # Half an interval: frames then never leave more than 1.5 intervals between them, however
        # the ticks fall between other frames sent.
        if now - self.last_sent >= self.heartbeat.interval / 2:
            self.last_sent = now
            return [Ping()]
        return []
