"""Several forwarders in one process, linked by in-process faces with delays (NFD's TopologyTester)."""

from __future__ import annotations

from typing import Any

import pytest
from icn_harness import result_of
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from sflow.errors import InterestNacked
from sflow.icn.app import Endpoint
from sflow.icn.face.base import FaceScope
from sflow.icn.face.inprocess import InProcessFace, linked_faces
from sflow.icn.forwarder import Forwarder
from sflow.icn.name import Name
from sflow.icn.packet import Interest, NackReason


class Topology:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.nodes: dict[str, Forwarder] = {}

    def node(self, label: str) -> Forwarder:
        forwarder = Forwarder(self.clock)
        self.nodes[label] = forwarder
        return forwarder

    def link(self, a: str, b: str, delay: float = 0.010) -> tuple[InProcessFace, InProcessFace]:
        face_a, face_b = linked_faces(self.clock, delay=delay, scope=FaceScope.NON_LOCAL, names=(f"link://{a}", f"link://{b}"))
        self.nodes[a].add_face(face_a)
        self.nodes[b].add_face(face_b)
        return face_a, face_b

    def advance(self, seconds: float, step: float = 0.001) -> None:
        """Move time in small steps, so that packets sent on the way are delivered on time."""
        for _ in range(round(seconds / step)):
            self.clock.advance(step)

    def run(self, d: Deferred[Any], seconds: float = 5.0) -> Any:
        return result_of(d, self.clock, seconds)


@pytest.fixture
def line(clock: Clock) -> tuple[Topology, Endpoint, Endpoint, dict[str, tuple[InProcessFace, InProcessFace]]]:
    """consumer — A — B — C — producer; routes for /P point towards C."""
    topo = Topology(clock)
    for label in "ABC":
        topo.node(label)
    links = {"AB": topo.link("A", "B"), "BC": topo.link("B", "C")}
    topo.nodes["A"].add_route("/P", links["AB"][0])
    topo.nodes["B"].add_route("/P", links["BC"][0])
    consumer = Endpoint.attach(topo.nodes["A"])
    producer = Endpoint.attach(topo.nodes["C"])
    return topo, consumer, producer, links


def test_line_exchange_and_caching(line: Any) -> None:
    topo, consumer, producer, _links = line
    served: list[Name] = []

    def handler(interest: Interest) -> bytes:
        served.append(interest.name)
        return b"payload"

    topo.run(producer.route("/P", handler, freshness_period=60_000))
    assert topo.run(consumer.express("/P/x")).content == b"payload"
    assert all(node.counters.n_satisfied_interests >= 1 for node in topo.nodes.values())
    assert topo.run(consumer.express("/P/x")).content == b"payload"
    assert len(served) == 1 and topo.nodes["A"].counters.n_cs_hits == 1  # the nearest cache answered
    other = Endpoint.attach(topo.nodes["B"])
    assert topo.run(other.express("/P/x")).content == b"payload" and topo.nodes["B"].counters.n_cs_hits == 1
    assert len(served) == 1


def test_line_segmented_transfer(line: Any) -> None:
    topo, consumer, producer, _links = line
    content = b"".join(i.to_bytes(4, "big") for i in range(30_000))  # 120 kB
    topo.run(producer.serve_segmented("/P/file", content, version=3))
    assert topo.run(consumer.fetch_segmented("/P/file", window=6), seconds=20) == content


def test_nack_no_route_travels_back(line: Any) -> None:
    topo, consumer, _producer, _links = line
    with pytest.raises(InterestNacked) as nacked:
        topo.run(consumer.express("/P/nobody-serves-this"))  # C has no route for /P: Nack from C
    assert nacked.value.reason == NackReason.NO_ROUTE
    assert topo.nodes["C"].counters.n_out_nacks == 1 and topo.nodes["A"].counters.n_in_nacks == 1
    with pytest.raises(InterestNacked):
        topo.run(consumer.express("/Q/x"))  # no route at A at all


def test_link_failure_removes_routes(line: Any) -> None:
    topo, consumer, producer, links = line
    topo.run(producer.route("/P", lambda i: b"ok"))
    links["BC"][0].close()
    topo.advance(0.1)
    assert topo.nodes["B"].fib.find_exact_match(Name.from_uri("/P")) is None
    with pytest.raises(InterestNacked):
        topo.run(consumer.express("/P/y"))


def test_triangle_multicast_loop_detection(clock: Clock) -> None:
    """A multicast triangle: the Interest loops back and is caught by its Nonce; Data still returns once."""
    topo = Topology(clock)
    for label in "ABC":
        topo.node(label)
        topo.nodes[label].strategy_choice.insert(Name.from_uri("/"), "multicast")
    ab, bc, ca = topo.link("A", "B"), topo.link("B", "C"), topo.link("C", "A")
    topo.nodes["A"].add_route("/T", ab[0])
    topo.nodes["B"].add_route("/T", bc[0])
    topo.nodes["C"].add_route("/T", ca[0])  # C sends it back to A: a loop
    producer_at_b = Endpoint.attach(topo.nodes["B"])
    topo.run(producer_at_b.route("/T", lambda i: None))  # B's app never answers
    consumer = Endpoint.attach(topo.nodes["A"])
    d = consumer.express("/T/1", lifetime=300)
    d.addErrback(lambda f: None)
    topo.advance(0.1)
    loops = sum(node.counters.n_interest_loops for node in topo.nodes.values())
    assert loops >= 1  # the Interest came back to A with the same Nonce
    assert topo.nodes["A"].counters.n_out_nacks >= 1  # answered with Nack(Duplicate) on the p2p link
    topo.advance(1)
    assert all(len(node.pit) == 0 for node in topo.nodes.values())
