"""Autonomous mode on in-process clusters and the hello protocol (fake UDP transport)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sfc_harness import SECRET, fork_join_tasks, job, make_cluster
from twisted.internet.task import Clock

from sflow.model.workflow import TaskId
from sflow.sfc.auto import Advert, NeighbourTable
from sflow.sfc.hello import AutoPlacer, HelloProtocol, decode_hello, encode_hello
from sflow.sfc.names import Installed


class FakeUdp:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []
        self.broadcast = False

    def write(self, datagram: bytes, addr: Any) -> None:
        self.sent.append((datagram, addr))

    def setBroadcastAllowed(self, allowed: bool) -> None:
        self.broadcast = allowed


def advert(node: str, free: int = 2, queue: int = 0) -> Advert:
    return Advert(node, 2, free, queue, 1000.0, 100.0)


def test_hellos_are_sent_periodically_authenticated_and_recorded() -> None:
    clock = Clock()
    table = NeighbourTable(ttl=3.0, max_neighbours=5)
    hello = HelloProtocol(clock, SECRET, table, lambda: advert("10.0.0.1:6363"), [("10.0.0.2", 15454)], 1.0)
    transport = FakeUdp()
    hello.makeConnection(transport)  # type: ignore[arg-type]
    clock.advance(1.0)
    clock.advance(1.0)
    assert len(transport.sent) == 3 and transport.broadcast
    assert decode_hello(transport.sent[0][0], SECRET) == advert("10.0.0.1:6363")

    hello.datagramReceived(encode_hello(advert("10.0.0.2:6363", free=1), SECRET), ("10.0.0.2", 15454))
    hello.datagramReceived(encode_hello(advert("10.0.0.3:6363"), b"wrong" * 8), ("10.0.0.3", 15454))
    hello.datagramReceived(b"junk", ("10.0.0.4", 15454))
    hello.datagramReceived(encode_hello(advert("0.0.0.0:7000"), SECRET), ("10.0.0.5", 15454))
    assert sorted(a.node for a in table.fresh(clock.seconds())) == ["10.0.0.2:6363", "10.0.0.5:7000"]
    for _ in range(4):
        clock.advance(1.0)  # our own hellos go on, but nobody answered: neighbours expire
    assert table.fresh(clock.seconds()) == []
    hello.stopProtocol()


def table_placer(cluster_names: list[str], me: str, clock: Clock, loads: dict[str, int]) -> Any:
    table = NeighbourTable(ttl=1e9, max_neighbours=10)
    for name in cluster_names:
        if name != me:
            table.update(advert(name, free=0, queue=loads.get(name, 0)), 0.0)
    return table


def test_auto_mode_places_predecessors_and_routes_around_a_dead_neighbour(tmp_path: Path) -> None:
    names = ["n0", "n1", "n2"]
    holder: dict[str, Any] = {}

    def placer(me: str) -> Any:
        def place(item: Installed, index: int, avoid: frozenset[str]) -> str:
            p: AutoPlacer = holder[me]
            return p(item, index, avoid)

        return place

    cluster = make_cluster(tmp_path, placer=placer)
    for name in names:
        # Everybody looks idle except the node itself: work is pushed to neighbours, n2 first.
        table = table_placer(names, name, cluster.clock, {"n1": 1})
        service = cluster.nodes[name].service

        def me(name: str = name) -> Advert:
            return advert(name, free=0, queue=9)

        holder[name] = AutoPlacer(cluster.clock, table, me, service.functions)
    cluster.down.add("n2")
    j = job(fork_join_tasks())
    trace = cluster.run(cluster.dispatch(j, {TaskId(4): "n0"}, mode="auto", nodes=names))
    assert cluster.executed() == [1, 2, 3, 4]
    ran_on = {r.task: r.node for r in trace.tasks}
    assert ran_on[4] == "n0"
    assert "n2" not in ran_on.values()
    assert set(ran_on.values()) - {"n0"}  # some work went to a neighbour


def test_a_wildcard_neighbour_is_known_by_the_address_it_was_heard_from() -> None:
    from sflow.sfc.hello import reachable_address

    assert reachable_address("0.0.0.0:7070", "10.0.0.2") == "10.0.0.2:7070"
    assert reachable_address("[::]:7070", "::1") == "[::1]:7070"  # IPv6 hosts keep their brackets
    assert reachable_address("10.0.0.3:7070", "10.0.0.2") == "10.0.0.3:7070"
