"""When bytes sent over an emulated path arrive: the timing model of emulated links. Pure: time
comes in as an argument, randomness from a seeded :class:`random.Random`.

A directed link has a one-way delay, a bandwidth and a loss rate. A path is a sequence of links
(the topology's shortest path between two nodes). Bytes written at once (one ``write``) cross each
link in turn, pipelined by segments as a router would forward them: a link serialises them at its
bandwidth once it is free (a link carries one write at a time, so that the writes of one sender
over a link share its bandwidth), then they travel for its delay. Over TCP a lost segment is
retransmitted: it and every byte behind it arrive later (one round trip for a loss that duplicate
acknowledgements reveal — fast retransmit —, a retransmission timeout for a loss near the end of a
write); no byte is ever lost. A datagram is dropped with the path's loss rate.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: TCP maximum segment size on an Ethernet path (bytes)
MSS = 1448
#: Linux's minimum retransmission timeout (seconds)
MIN_RTO = 0.2
#: segments behind a loss needed for duplicate acknowledgements to trigger a fast retransmit
DUPACKS = 3


@dataclass(frozen=True, slots=True)
class LinkProps:
    """One direction of a link: ``delay`` in seconds, ``rate`` in bytes per second (``math.inf``:
    unlimited), ``loss`` a probability in [0, 1)."""

    delay: float
    rate: float
    loss: float

    @classmethod
    def from_topology(cls, delay_ms: float, bandwidth_mbps: float, loss: float) -> LinkProps:
        """From a topology's units: milliseconds, megabits per second (0: unlimited), a fraction."""
        rate = bandwidth_mbps * 1e6 / 8 if bandwidth_mbps > 0 else math.inf
        return cls(delay_ms / 1000.0, rate, loss)


class PathModel:
    """Delivery times of writes and datagrams over paths of ``links`` (by id). It keeps when each
    link is next free."""

    def __init__(self, links: Mapping[str, LinkProps], rng: random.Random) -> None:
        self.links = dict(links)
        self.rng = rng
        self._free_at: dict[str, float] = {}

    def update(self, links: Mapping[str, LinkProps]) -> None:
        """New link properties (a reloaded topology); links keep their busy times."""
        self.links = dict(links)

    def delay(self, path: Sequence[str]) -> float:
        return sum(self.links[link].delay for link in path)

    def loss(self, path: Sequence[str]) -> float:
        keep = 1.0
        for link in path:
            keep *= 1.0 - self.links[link].loss
        return 1.0 - keep

    def _cross(self, path: Sequence[str], size: int, now: float) -> float:
        """When the last byte of ``size`` bytes written at ``now`` leaves the last link."""
        first = last = now  # when the first and the last byte are at the entrance of the next link
        segment = min(size, MSS)
        for link in path:
            props = self.links[link]
            start = max(first, self._free_at.get(link, 0.0))
            finish = max(start + size / props.rate, last + segment / props.rate)
            self._free_at[link] = finish
            first = start + segment / props.rate + props.delay
            last = finish + props.delay
        return last

    def stream(self, path: Sequence[str], size: int, now: float) -> float:
        """When ``size`` bytes written at ``now`` on a TCP connection over ``path`` have all arrived,
        retransmissions included."""
        arrival = self._cross(path, size, now)
        loss = self.loss(path)
        if loss <= 0.0 or size <= 0:
            return arrival
        rtt = 2 * self.delay(path)
        rto = max(MIN_RTO, 2 * rtt)
        segments = math.ceil(size / MSS)
        penalty = 0.0
        for k in range(segments):
            if self.rng.random() < loss:
                # Enough segments behind it: duplicate ACKs, a fast retransmit one round trip
                # later; otherwise the sender waits for its retransmission timer.
                penalty += rtt if segments - k > DUPACKS else rto
        return arrival + penalty

    def datagram(self, path: Sequence[str], size: int, now: float) -> float | None:
        """When a datagram sent at ``now`` arrives, or None when it is lost."""
        if self.rng.random() < self.loss(path):
            return None
        return self._cross(path, size, now)


# ---------------------------------------------------------------------------------------------
# The links file: what a node of an emulated topology is told (``node.links``)


@dataclass(frozen=True, slots=True)
class PeerRoute:
    """How this node reaches the node ``node``: over the links of ``path`` (by id), or not at all
    (``None``: a link is down and no other path is left)."""

    node: str
    path: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class LinksFile:
    """One node's view of the topology: its own address (its connections start there, so that
    peers know who they come from), its links' properties and its route to every other node, by
    the other node's IP address. Traffic with any other address (the delegator's) is not
    emulated."""

    node: str
    address: str
    seed: int
    links: Mapping[str, LinkProps]
    peers: Mapping[str, PeerRoute]


LINKS_FILE_VERSION = 1


def links_file_to_dict(doc: LinksFile) -> dict[str, object]:
    return {
        "version": LINKS_FILE_VERSION,
        "node": doc.node,
        "address": doc.address,
        "seed": doc.seed,
        "links": {k: {"delay_s": p.delay, "rate_Bps": None if math.isinf(p.rate) else p.rate, "loss": p.loss}
                  for k, p in doc.links.items()},
        "peers": {ip: {"node": r.node, "path": None if r.path is None else list(r.path)} for ip, r in doc.peers.items()},
    }


def links_file_from_dict(data: object, source: str) -> LinksFile:
    """Raises ValueError naming the field at fault."""
    if not isinstance(data, dict) or data.get("version") != LINKS_FILE_VERSION:
        raise ValueError(f"{source}: not a links file of version {LINKS_FILE_VERSION}")
    try:
        links = {
            str(k): LinkProps(float(v["delay_s"]), math.inf if v["rate_Bps"] is None else float(v["rate_Bps"]),
                              float(v["loss"]))
            for k, v in data["links"].items()
        }
        peers = {}
        for ip, r in data["peers"].items():
            path = None if r["path"] is None else tuple(str(x) for x in r["path"])
            if path is not None and any(x not in links for x in path):
                raise ValueError(f"{source}: peers.{ip}.path names a link that is not in links")
            peers[str(ip)] = PeerRoute(str(r["node"]), path)
        return LinksFile(str(data["node"]), str(data["address"]), int(data["seed"]), links, peers)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{source}: malformed links file ({exc!r})") from None
