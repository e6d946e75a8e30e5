"""The ICN test harness, after NFD's: a DummyFace that records what the forwarder sends."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from sflow.icn.face.base import Face, FaceScope, LinkType
from sflow.icn.forwarder import Forwarder
from sflow.icn.lp import LpPacket
from sflow.icn.name import Name
from sflow.icn.packet import Data, Interest, Nack, make_data, make_interest


class DummyFace(Face):
    """NFD's DummyFace: ``receive_*`` inject packets, ``sent_*`` record what went out."""

    def __init__(
        self,
        scope: FaceScope = FaceScope.NON_LOCAL,
        link_type: LinkType = LinkType.POINT_TO_POINT,
        uri: str = "dummy://",
    ) -> None:
        super().__init__(remote_uri=uri, local_uri=uri, scope=scope, link_type=link_type)
        self.sent_interests: list[Interest] = []
        self.sent_data: list[Data] = []
        self.sent_nacks: list[Nack] = []
        self.sent_tokens: list[bytes | None] = []
        self.sent_incoming_face_ids: list[int | None] = []
        self.wire: list[bytes] = []

    def send_interest(
        self, interest: Interest, *, next_hop_face_id: int | None = None, incoming_face_id: int | None = None
    ) -> None:
        self.counters.n_out_interests += 1
        self.sent_interests.append(interest)
        self.sent_incoming_face_ids.append(incoming_face_id)

    def send_data(self, data: Data, *, pit_token: bytes | None = None, no_cache: bool = False) -> None:
        self.counters.n_out_data += 1
        self.sent_data.append(data)
        self.sent_tokens.append(pit_token)

    def send_nack(self, nack: Nack, *, pit_token: bytes | None = None) -> None:
        self.counters.n_out_nacks += 1
        self.sent_nacks.append(nack)
        self.sent_tokens.append(pit_token)

    def transmit(self, wire: bytes) -> None:
        self.wire.append(wire)

    # shortcuts in NFD's style
    def interest(self, name: str, **kwargs: object) -> Interest:
        kwargs.setdefault("nonce", None)
        interest = make_interest(name, **kwargs)  # type: ignore[arg-type]
        self.receive_interest(interest, None)
        return interest

    def data(self, name: str, content: bytes = b"", lp: LpPacket | None = None, **kwargs: object) -> Data:
        data = make_data(name, content, **kwargs)  # type: ignore[arg-type]
        self.receive_data(data, lp)
        return data

    def nack(self, interest: Interest, reason: int) -> None:
        self.receive_nack(Nack(interest, reason), None)


def result_of(d: Deferred[Any], clock: Clock, seconds: float = 0.0, step: float = 0.001) -> Any:
    """Advance the clock until ``d`` fired (or ``seconds`` passed); return its result or raise its failure."""
    outcome: list[Any] = []
    d.addBoth(outcome.append)
    clock.advance(0)
    elapsed = 0.0
    while not outcome and elapsed < seconds:
        clock.advance(step)
        elapsed += step
    assert outcome, "the Deferred did not fire"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


def route(forwarder: Forwarder, prefix: str, face: Face, cost: int = 0) -> None:
    """A FIB next hop, set directly as NFD's forwarder tests do."""
    entry, _ = forwarder.fib.insert(Name.from_uri(prefix))
    forwarder.fib.add_or_update_next_hop(entry, face, cost)
