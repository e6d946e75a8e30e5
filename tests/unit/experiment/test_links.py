"""The emulated links: the timing model (pure) and the transport wrappers on task.Clock."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from sflow.errors import ConfigError
from sflow.experiment.emulation import HIGH_WATER, LinkDatagram, LinkFactory, LinkTable
from sflow.experiment.links import MIN_RTO, MSS, LinkProps, PathModel, links_file_from_dict, links_file_to_dict
from sflow.experiment.topology import Topology, TopoLink, TopoNode


def line(delay_ms: float = 100.0, bandwidth_mbps: float = 0.0, loss: float = 0.0) -> Topology:
    nodes = tuple(TopoNode(n, 1, 1000.0) for n in "abc")
    links = (TopoLink("a", "b", delay_ms, bandwidth_mbps, loss), TopoLink("b", "c", delay_ms, bandwidth_mbps, loss))
    return Topology("line", nodes, links)


# -- the model ---------------------------------------------------------------------------------------


def test_delay_adds_per_link_and_bandwidth_serialises() -> None:
    props = {"a>b": LinkProps.from_topology(100, 8, 0), "b>c": LinkProps.from_topology(100, 0, 0)}
    model = PathModel(props, random.Random(1))
    # 1 MB at 8 Mb/s = 1 s on the first link, then both delays; the unlimited link adds nothing.
    assert model.stream(["a>b", "b>c"], 1_000_000, 10.0) == pytest.approx(10.0 + 1.0 + 0.2)
    # The link is busy until 11.0: a second write waits for it.
    assert model.stream(["a>b"], 1000, 10.5) == pytest.approx(11.0 + 0.001 + 0.1)


def test_a_pipelined_path_is_limited_by_its_narrowest_link_not_the_sum() -> None:
    props = {"x": LinkProps.from_topology(0, 8, 0), "y": LinkProps.from_topology(0, 8, 0)}
    model = PathModel(props, random.Random(1))
    # Store-and-forward of the whole write would take 2 s; segments are forwarded as they come.
    assert model.stream(["x", "y"], 1_000_000, 0.0) == pytest.approx(1.0 + MSS / 1e6)


def test_tcp_loss_delays_but_never_drops_and_datagrams_are_dropped() -> None:
    props = {"l": LinkProps.from_topology(10, 0, 0.5)}
    model = PathModel(props, random.Random(7))
    late = [model.stream(["l"], 100, 0.0) for _ in range(200)]
    assert min(late) == pytest.approx(0.01)  # not lost: the delay alone
    assert max(late) >= 0.01 + MIN_RTO  # lost once at least: a retransmission timeout
    dropped = sum(model.datagram(["l"], 100, 0.0) is None for _ in range(1000))
    assert 400 < dropped < 600


def test_links_file_round_trip_and_errors() -> None:
    doc = line().links_file("a", 5)
    back = links_file_from_dict(json.loads(json.dumps(links_file_to_dict(doc))), "f")
    assert back == doc
    assert back.peers["127.0.1.3"].path == ("a>b", "b>c")
    with pytest.raises(ValueError, match="version"):
        links_file_from_dict({"version": 99}, "f")


# -- the wrappers ------------------------------------------------------------------------------------


class Recorder(Protocol):
    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


def connection(tmp_path: Path, topology: Topology, me: str, peer: str) -> tuple[Clock, LinkTable, Protocol, StringTransport]:
    path = tmp_path / f"{me}.links.json"
    path.write_text(json.dumps(links_file_to_dict(topology.links_file(me, 1))))
    clock = Clock()
    table = LinkTable(clock, path)
    factory = LinkFactory(Factory.forProtocol(Recorder), table)
    proto = factory.buildProtocol(IPv4Address("TCP", topology.address(peer), 9))
    transport = StringTransport(peerAddress=IPv4Address("TCP", topology.address(peer), 9))
    proto.makeConnection(transport)
    return clock, table, proto, transport


def test_writes_reach_the_socket_after_the_path_delay_in_order(tmp_path: Path) -> None:
    clock, table, proto, transport = connection(tmp_path, line(), "a", "c")
    inner = proto.wrappedProtocol  # type: ignore[attr-defined]
    inner.transport.write(b"hello ")
    inner.transport.writeSequence([b"wor", b"ld"])
    assert transport.value() == b""
    clock.advance(0.199)
    assert transport.value() == b""
    clock.advance(0.002)
    assert transport.value() == b"hello world"
    assert table.bytes == {"a>b": 11, "b>a": 0, "b>c": 11, "c>b": 0}
    inner.dataReceived(b"x")  # what arrives is not delayed on this side (the sender's side delays it)


def test_an_unreachable_peer_holds_bytes_until_the_link_is_back_and_close_waits(tmp_path: Path) -> None:
    topo = line(delay_ms=10)
    clock, table, proto, transport = connection(tmp_path, topo, "a", "b")
    down = topo.links_file("a", 1, [frozenset(("a", "b"))])
    table.path.write_text(json.dumps(links_file_to_dict(down)))
    table.reload()
    inner = proto.wrappedProtocol  # type: ignore[attr-defined]
    inner.transport.write(b"held")
    inner.transport.loseConnection()
    clock.advance(5)
    assert transport.value() == b"" and not transport.disconnecting
    table.path.write_text(json.dumps(links_file_to_dict(topo.links_file("a", 1))))
    table.reload()
    clock.advance(0.011)
    assert transport.value() == b"held" and transport.disconnecting


def test_a_fast_writer_is_paused_and_resumed(tmp_path: Path) -> None:
    clock, table, proto, transport = connection(tmp_path, line(bandwidth_mbps=80), "a", "b")
    inner = proto.wrappedProtocol  # type: ignore[attr-defined]

    class Producer:
        paused = 0
        resumed = 0

        def pauseProducing(self) -> None:
            self.paused += 1

        def resumeProducing(self) -> None:
            self.resumed += 1

        def stopProducing(self) -> None:
            pass

    producer = Producer()
    inner.transport.registerProducer(producer, True)
    inner.transport.write(b"x" * (HIGH_WATER + 1))
    assert producer.paused == 1
    clock.advance(10)
    assert producer.resumed == 1 and len(transport.value()) == HIGH_WATER + 1


def test_traffic_with_an_address_outside_the_topology_is_not_emulated(tmp_path: Path) -> None:
    topo = line()
    path = tmp_path / "a.json"
    path.write_text(json.dumps(links_file_to_dict(topo.links_file("a", 1))))
    table = LinkTable(Clock(), path)
    proto = LinkFactory(Factory.forProtocol(Recorder), table).buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5))
    proto.makeConnection(transport)
    proto.wrappedProtocol.transport.write(b"now")  # type: ignore[attr-defined]
    assert transport.value() == b"now"


def test_datagrams_are_delayed_or_dropped(tmp_path: Path) -> None:
    topo = line(delay_ms=50)
    path = tmp_path / "a.json"
    path.write_text(json.dumps(links_file_to_dict(topo.links_file("a", 1, [frozenset(("b", "c"))]))))
    clock = Clock()
    table = LinkTable(clock, path)
    sent: list[tuple[bytes, tuple[str, int]]] = []

    class Port:
        def write(self, data: bytes, addr: tuple[str, int]) -> None:
            sent.append((data, addr))

    inner = DatagramProtocol()
    LinkDatagram(inner, table).makeConnection(Port())
    port: Any = inner.transport
    port.write(b"hi", ("127.0.1.2", 1))
    port.write(b"lost", ("127.0.1.3", 1))  # b–c is down
    assert sent == []
    clock.advance(0.05)
    assert sent == [(b"hi", ("127.0.1.2", 1))] and table.dropped == 1


def test_a_malformed_links_file_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{}")
    with pytest.raises(ConfigError, match="node.links"):
        LinkTable(Clock(), path)
    assert math.isinf(LinkProps.from_topology(1, 0, 0).rate)


def test_the_emulating_reactor_wraps_connections_below_tls_and_binds_the_nodes_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    from sflow.experiment.emulation import EmulatedReactor

    class TLSMemoryBIOFactory:  # stands for Twisted's (pyOpenSSL comes with the TLS work)
        def __init__(self, context: object, client: bool, wrapped: object) -> None:
            self.wrappedFactory = wrapped

    monkeypatch.setitem(sys.modules, "twisted.protocols.tls",
                        types.SimpleNamespace(TLSMemoryBIOFactory=TLSMemoryBIOFactory))  # type: ignore[arg-type]

    path = tmp_path / "a.json"
    path.write_text(json.dumps(links_file_to_dict(line().links_file("a", 1))))
    calls: list[tuple[str, tuple[object, ...]]] = []

    class Reactor:
        def listenTCP(self, *args: object) -> None:
            calls.append(("listenTCP", args))

        def connectTCP(self, *args: object) -> None:
            calls.append(("connectTCP", args))

        def seconds(self) -> float:
            return 0.0

    table = LinkTable(Clock(), path)
    reactor = EmulatedReactor(Reactor(), table)
    app = Factory.forProtocol(Recorder)
    reactor.connectTCP("127.0.1.2", 7, app)
    reactor.listenSSL(8, app, object())
    (_, connect), (_, listen) = calls
    assert isinstance(connect[2], LinkFactory) and connect[2].wrappedFactory is app
    assert connect[4] == ("127.0.1.1", 0)  # connections start from the node's own address
    assert isinstance(listen[1], LinkFactory) and isinstance(listen[1].wrappedFactory, TLSMemoryBIOFactory)
    assert listen[1].wrappedFactory.wrappedFactory is app
    assert reactor.seconds() == 0.0  # everything else is the real reactor's
