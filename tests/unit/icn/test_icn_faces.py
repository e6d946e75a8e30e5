"""Faces: stream framing over ``StringTransport`` (any chunking, oversize, malformed), UDP channel,
in-process links. No sockets, no real reactor."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icn_harness import route
from twisted.internet import address, tcp
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from sflow.icn import tlv
from sflow.icn.face.base import FaceScope
from sflow.icn.face.inprocess import linked_faces
from sflow.icn.face.stream import ForwarderStreamFactory, NdnStreamProtocol
from sflow.icn.face.udp import UdpChannel
from sflow.icn.face.uri import parse_face_uri
from sflow.icn.forwarder import Forwarder
from sflow.icn.lp import decode_lp_packet
from sflow.icn.name import Name
from sflow.icn.packet import NackReason, decode_data, decode_interest, encode_data, encode_interest, make_data, make_interest


def connect(forwarder: Forwarder, host: str = "127.0.0.1", port: int = 40000) -> tuple[NdnStreamProtocol, StringTransport]:
    protocol = ForwarderStreamFactory(forwarder).buildProtocol(None)
    transport = StringTransport(
        hostAddress=address.IPv4Address("TCP", "127.0.0.1", 6363), peerAddress=address.IPv4Address("TCP", host, port)
    )
    protocol.makeConnection(transport)
    return protocol, transport


def split_packets(stream: bytes) -> list[bytes]:
    packets = []
    pos = 0
    while pos < len(stream):
        size = tlv.read_packet_length(stream, pos, len(stream))
        assert size is not None
        packets.append(stream[pos : pos + size])
        pos += size
    return packets


def test_stream_face_scope_from_peer_address(forwarder: Forwarder) -> None:
    local, _ = connect(forwarder, "127.0.0.1")
    remote, _ = connect(forwarder, "10.1.2.3")
    assert local.face is not None and local.face.scope == FaceScope.LOCAL
    assert remote.face is not None and remote.face.scope == FaceScope.NON_LOCAL
    assert remote.face.remote_uri == "tcp4://10.1.2.3:40000" and forwarder.faces.get(remote.face.face_id) is remote.face


def test_stream_exchange_byte_by_byte(forwarder: Forwarder) -> None:
    consumer, consumer_tx = connect(forwarder, port=1)
    producer, producer_tx = connect(forwarder, port=2)
    assert producer.face is not None
    route(forwarder, "/A", producer.face)
    interest = encode_interest(make_interest("/A/1", nonce=7))
    for octet in interest:
        consumer.dataReceived(bytes([octet]))
    forwarded = split_packets(producer_tx.value())
    assert [decode_interest(p).name.to_uri() for p in forwarded] == ["/A/1"]
    data = encode_data(make_data("/A/1", b"x" * 1000))  # a 3-octet TLV-LENGTH
    for octet in data:
        producer.dataReceived(bytes([octet]))
    assert split_packets(consumer_tx.value()) == [data]


def test_packets_sent_while_a_read_is_processed_leave_as_one_write_per_face(forwarder: Forwarder) -> None:
    consumer, consumer_tx = connect(forwarder, port=1)
    producer, producer_tx = connect(forwarder, port=2)
    assert producer.face is not None and consumer.face is not None
    route(forwarder, "/A", producer.face)
    writes: list[bytes] = []
    original_write = producer_tx.write
    producer_tx.write = lambda data: (writes.append(data), original_write(data))[1]  # type: ignore[method-assign]
    interests = [encode_interest(make_interest(f"/A/{i}", nonce=i)) for i in range(5)]
    consumer.dataReceived(b"".join(interests))
    assert len(writes) == 1 and split_packets(writes[0]) == interests  # in order, one buffer
    consumer.face.send_interest(make_interest("/B", nonce=9))  # outside a read: written at once
    assert decode_interest(split_packets(consumer_tx.value())[-1]).name.to_uri() == "/B"
    producer.dataReceived(encode_data(make_data("/A/0", b"x")) + encode_data(make_data("/A/1", b"y")))
    assert [decode_data(p).name.to_uri() for p in split_packets(consumer_tx.value())[-2:]] == ["/A/0", "/A/1"]
    # a read that queues a Nack(NoRoute) on its own face and then closes it (bad framing): the Nack
    # is written before the connection is closed
    consumer.dataReceived(encode_interest(make_interest("/Z", nonce=11)) + b"\x05\xfd\x00\x10")
    assert consumer.face.closed and consumer_tx.disconnecting
    nack = decode_lp_packet(split_packets(consumer_tx.value())[-1])
    assert nack.nack_reason == NackReason.NO_ROUTE and nack.fragment is not None
    assert decode_interest(nack.fragment).name.to_uri() == "/Z"


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_stream_framing_tolerates_any_chunking(data: st.DataObject) -> None:
    forwarder = Forwarder(Clock())
    consumer, _ = connect(forwarder, port=1)
    producer, producer_tx = connect(forwarder, port=2)
    assert producer.face is not None
    route(forwarder, "/A", producer.face)
    names = [f"/A/{i}" for i in range(data.draw(st.integers(1, 6)))]
    sizes = data.draw(st.lists(st.integers(0, 400), min_size=len(names), max_size=len(names)))
    stream = b"".join(
        encode_interest(make_interest(n, nonce=i, app_parameters=b"p" * size)) for i, (n, size) in enumerate(zip(names, sizes))
    )
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=20)))) if len(stream) > 1 else []
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    for piece in pieces:
        consumer.dataReceived(piece)
    received = [decode_interest(p).name.prefix(2).to_uri() for p in split_packets(producer_tx.value())]
    assert received == names
    assert forwarder.counters.n_malformed_packets == 0


def test_oversize_packet_closes_only_that_face(forwarder: Forwarder) -> None:
    bad, bad_tx = connect(forwarder, port=1)
    good, good_tx = connect(forwarder, port=2)
    producer, producer_tx = connect(forwarder, port=3)
    assert producer.face is not None and bad.face is not None
    route(forwarder, "/A", producer.face)
    bad.dataReceived(b"\x06\xfd\x22\x61")  # announces 8801 octets of value
    assert bad_tx.disconnecting and bad.face.closed
    assert forwarder.faces.get(bad.face.face_id) is None
    assert forwarder.counters.n_oversize_packets == 1 and bad.face.counters.n_in_oversize == 1
    good.dataReceived(encode_interest(make_interest("/A/1", nonce=1)))
    assert len(split_packets(producer_tx.value())) == 1 and not good_tx.disconnecting


def test_packet_of_exactly_the_limit_is_accepted(forwarder: Forwarder) -> None:
    producer, _ = connect(forwarder, port=3)
    consumer, consumer_tx = connect(forwarder, port=4)
    assert producer.face is not None
    route(forwarder, "/A", producer.face)
    consumer.dataReceived(encode_interest(make_interest("/A/big", nonce=1)))
    size = tlv.MAX_NDN_PACKET_SIZE
    wire = encode_data(make_data("/A/big", b"z" * size))
    while len(wire) > tlv.MAX_NDN_PACKET_SIZE:
        size -= len(wire) - tlv.MAX_NDN_PACKET_SIZE
        wire = encode_data(make_data("/A/big", b"z" * size))
    assert len(wire) == tlv.MAX_NDN_PACKET_SIZE
    producer.dataReceived(wire)
    assert split_packets(consumer_tx.value()) == [wire] and not consumer_tx.disconnecting


def test_malformed_packet_dropped_face_goes_on(forwarder: Forwarder) -> None:
    consumer, consumer_tx = connect(forwarder, port=1)
    producer, producer_tx = connect(forwarder, port=2)
    assert producer.face is not None and consumer.face is not None
    route(forwarder, "/A", producer.face)
    garbage = b"\x05\x04\x07\x02\x08\x05"  # a Name component running past its Name
    consumer.dataReceived(garbage + b"\x42\x01\x00" + encode_interest(make_interest("/A/1", nonce=1)))
    assert forwarder.counters.n_malformed_packets == 2 and consumer.face.counters.n_malformed == 2
    assert not consumer_tx.disconnecting and len(split_packets(producer_tx.value())) == 1


def test_bad_framing_closes_face(forwarder: Forwarder) -> None:
    consumer, consumer_tx = connect(forwarder, port=1)
    consumer.dataReceived(b"\x05\xfd\x00\x10")  # not the shortest VAR-NUMBER: cannot resynchronize
    assert consumer_tx.disconnecting and forwarder.counters.n_malformed_packets == 1


def test_nack_and_pit_token_on_the_wire(forwarder: Forwarder) -> None:
    consumer, consumer_tx = connect(forwarder, port=1)
    from sflow.icn.lp import LpPacket, encode_lp_packet

    interest = encode_interest(make_interest("/none/1", nonce=3))
    consumer.dataReceived(encode_lp_packet(LpPacket(fragment=interest, pit_token=b"\xab\xcd")))
    (reply,) = split_packets(consumer_tx.value())
    lp = decode_lp_packet(reply)
    assert lp.nack_reason == NackReason.NO_ROUTE and lp.pit_token == b"\xab\xcd" and lp.fragment == interest


def test_connection_lost_removes_face(forwarder: Forwarder) -> None:
    consumer, _ = connect(forwarder)
    assert consumer.face is not None
    face_id = consumer.face.face_id
    consumer.connectionLost()
    assert forwarder.faces.get(face_id) is None


class FakeUdpTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, datagram: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((datagram, addr))

    def getHost(self) -> Any:
        return address.IPv4Address("UDP", "127.0.0.1", 6363)


def test_udp_channel_faces_per_peer(forwarder: Forwarder, clock: Clock) -> None:
    channel = UdpChannel(forwarder, clock, idle_timeout=10)
    transport = FakeUdpTransport()
    channel.transport = transport  # type: ignore[assignment]
    channel.startProtocol()
    producer = channel.connect("10.0.0.2", 6363)
    route(forwarder, "/A", producer)
    channel.datagramReceived(encode_interest(make_interest("/A/1", nonce=1)), ("127.0.0.1", 5000))
    assert transport.sent[-1][1] == ("10.0.0.2", 6363)
    consumer = channel.faces[("127.0.0.1", 5000)]
    assert consumer.scope == producer.scope == FaceScope.NON_LOCAL  # UDP faces are never local (NFD)
    channel.datagramReceived(encode_data(make_data("/A/1", b"ok")), ("10.0.0.2", 6363))
    assert decode_data(transport.sent[-1][0]).content == b"ok" and transport.sent[-1][1] == ("127.0.0.1", 5000)
    channel.datagramReceived(b"\x06" + b"\x00" * 9000, ("10.0.0.9", 1))  # oversize: that face closes
    assert ("10.0.0.9", 1) not in channel.faces and forwarder.counters.n_oversize_packets == 1
    clock.advance(30)  # idle on-demand faces close; the persistent one stays
    assert ("127.0.0.1", 5000) not in channel.faces and ("10.0.0.2", 6363) in channel.faces
    channel.stopProtocol()
    assert not channel.faces


def test_in_process_link_delay(clock: Clock) -> None:
    a, b = linked_faces(clock, delay=0.01)
    received: list[str] = []

    class Sink:
        def on_incoming_interest(self, face: Any, interest: Any, lp: Any) -> None:
            received.append(interest.name.to_uri())

        def on_face_closed(self, face: Any) -> None:
            received.append("closed")

    b.handler = Sink()  # type: ignore[assignment]
    a.send_interest(make_interest("/x"))
    clock.advance(0.005)
    assert received == []
    clock.advance(0.005)
    assert received == ["/x"]
    a.close()
    clock.advance(0.01)
    assert b.closed and received == ["/x", "closed"]


def test_an_applications_face_reaches_its_forwarder_at_once_and_hears_it_later(clock: Clock) -> None:
    """What an application sends is handled by the forwarder before ``send`` returns; what the
    forwarder sends the application comes on a later turn: neither runs inside the other's call."""
    forwarder = Forwarder(clock)
    fwd_side, app_side = linked_faces(clock, names=("inproc://fwd", "inproc://app"), application=True)
    producer_fwd, producer_app = linked_faces(clock, names=("inproc://fwd2", "inproc://producer"), application=True)
    forwarder.add_face(fwd_side)
    forwarder.add_face(producer_fwd)
    route(forwarder, "/x", producer_fwd)
    heard: list[str] = []

    class Producer:
        def on_incoming_interest(self, face: Any, interest: Any, lp: Any) -> None:
            heard.append("producer " + interest.name.to_uri())
            face.send_data(make_data(interest.name, b"ok"))  # from inside its own handler
            heard.append(f"answered: {forwarder.counters.n_in_data} Data in the forwarder")

    class Consumer:
        def on_incoming_data(self, face: Any, data: Any, lp: Any) -> None:
            heard.append("consumer " + data.name.to_uri())

    producer_app.handler = Producer()  # type: ignore[assignment]
    app_side.handler = Consumer()  # type: ignore[assignment]
    app_side.send_interest(make_interest("/x/1"))
    assert forwarder.counters.n_in_interests == 1 and heard == []  # in the PIT; the producer hears it later
    clock.advance(0)
    # the producer's Data reached the forwarder within its send, and the consumer heard it after
    assert heard == ["producer /x/1", "answered: 1 Data in the forwarder", "consumer /x/1"]
    # with a delay, an application's packets wait it out like any link's
    slow_fwd, slow_app = linked_faces(clock, delay=0.01, application=True)
    assert not slow_app.at_once and not slow_fwd.at_once and not fwd_side.at_once and app_side.at_once


def test_face_uri_parsing() -> None:
    assert str(parse_face_uri("127.0.0.1:7000")) == "tcp4://127.0.0.1:7000"
    assert str(parse_face_uri("tcp6://[::1]:6363")) == "tcp6://[::1]:6363"
    assert str(parse_face_uri("udp://10.0.0.1")) == "udp4://10.0.0.1:6363"
    assert parse_face_uri("unix:///run/x.sock").path == "/run/x.sock"
    import pytest

    from sflow.errors import InputError

    for bad in ("ftp://x", "1.2.3.4:port", "1.2.3.4:99999", "unix://"):
        with pytest.raises(InputError):
            parse_face_uri(bad)


_valid_packets = st.sampled_from(
    [
        encode_interest(make_interest("/A/fuzz", nonce=1)),
        encode_data(make_data("/A/fuzz", b"d")),
        b"\x64\x05\x50\x03\x05\x01\x07",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=40) | _valid_packets, max_size=12))
def test_random_stream_input_never_breaks_the_forwarder(chunks: list[bytes]) -> None:
    forwarder = Forwarder(Clock())
    fuzzed, _ = connect(forwarder, port=1)
    for chunk in chunks:
        fuzzed.dataReceived(chunk)
    # whatever happened to the fuzzed face, the forwarder still forwards for others
    consumer, _ = connect(forwarder, port=2)
    producer, producer_tx = connect(forwarder, port=3)
    assert producer.face is not None
    route(forwarder, "/B", producer.face)
    consumer.dataReceived(encode_interest(make_interest("/B/ok", nonce=5)))
    assert [decode_interest(p).name.to_uri() for p in split_packets(producer_tx.value())] == ["/B/ok"]


class _Reactor:
    """What a ``tcp.Connection`` asks of its reactor here: writers are only recorded (the test
    never runs a reactor, so anything sent went out at once)."""

    def __init__(self) -> None:
        self.writers: set[Any] = set()
        self.writers_added = 0
        self.later: list[Any] = []

    def callLater(self, delay: float, call: Any, *args: Any) -> None:
        assert delay == 0
        self.later.append((call, args))

    def end_turn(self) -> None:
        """What the reactor does between two turns: the calls made for the next one."""
        later, self.later = self.later, []
        for call, args in later:
            call(*args)

    def addWriter(self, writer: Any) -> None:
        self.writers.add(writer)
        self.writers_added += 1

    def removeWriter(self, writer: Any) -> None:
        self.writers.discard(writer)

    def addReader(self, reader: Any) -> None:
        pass

    def removeReader(self, reader: Any) -> None:
        pass


def _socket_face(forwarder: Forwarder) -> tuple[Any, socket.socket, _Reactor]:
    """A stream face on one end of a real socket pair, the other end returned to read from."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    reactor = _Reactor()
    protocol = ForwarderStreamFactory(forwarder).buildProtocol(address.UNIXAddress(None))
    transport = tcp.Connection(ours, protocol, reactor)  # type: ignore[arg-type]
    transport.connected = True  # as tcp.Server and tcp.Client set it
    transport.getPeer = lambda: address.UNIXAddress(None)  # type: ignore[method-assign]
    transport.getHost = lambda: address.UNIXAddress(None)  # type: ignore[method-assign]
    protocol.makeConnection(transport)
    assert protocol.face is not None
    return protocol.face, theirs, reactor


def test_a_packet_leaves_in_the_turn_that_made_it(forwarder: Forwarder) -> None:
    """A stream face sends on the socket at once; it does not wait for the reactor's next poll."""
    face, theirs, reactor = _socket_face(forwarder)
    wire = encode_data(make_data(Name.from_uri("/now"), b"x"))
    face.transmit(wire)
    assert theirs.recv(65536) == wire
    assert not reactor.writers  # nothing left for the reactor to write


def test_a_packet_the_socket_takes_whole_never_waits_for_a_writable_poll(forwarder: Forwarder) -> None:
    """Sent at once, from a stream's input (one batch) or outside it: the descriptor is never
    registered for writing (two system calls more per packet)."""
    face, theirs, reactor = _socket_face(forwarder)
    first = encode_data(make_data(Name.from_uri("/one"), b"x"))
    face.transmit(first)
    face._queued.append(encode_data(make_data(Name.from_uri("/two"), b"y")))
    face.flush()
    assert theirs.recv(65536) == first + encode_data(make_data(Name.from_uri("/two"), b"y"))
    assert reactor.writers_added == 0


def test_what_the_socket_does_not_take_waits_for_the_reactor_in_order(forwarder: Forwarder) -> None:
    face, theirs, reactor = _socket_face(forwarder)
    face.protocol.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    packets = [encode_data(make_data(Name.from_uri(f"/big/{i}"), bytes([i]) * 8000)) for i in range(64)]
    for wire in packets:
        face.transmit(wire)
    assert reactor.writers == {face.protocol.transport}  # the rest waits for the socket to drain
    received = b""
    while len(received) < sum(map(len, packets)):
        try:
            received += theirs.recv(1 << 20)
        except BlockingIOError:
            face.protocol.transport.doWrite()  # what the reactor does once the socket is writable
    assert received == b"".join(packets)


def test_a_closing_transport_is_left_to_its_own_write_path(forwarder: Forwarder) -> None:
    face, theirs, reactor = _socket_face(forwarder)
    transport = face.protocol.transport
    transport.disconnecting = True  # loseConnection asked: the reactor's doWrite must close it
    face.transmit(encode_data(make_data(Name.from_uri("/late"), b"x")))
    with pytest.raises(BlockingIOError):
        theirs.recv(65536)
    assert reactor.writers == {transport}


def test_a_burst_leaves_its_first_packet_at_once_and_the_rest_together(forwarder: Forwarder) -> None:
    """A join asks for its thousand inputs in one turn: one system call for the first, then one
    write of all the others when the reactor polls, not a system call each."""
    face, theirs, reactor = _socket_face(forwarder)
    transport = face.protocol.transport
    packets = [encode_data(make_data(Name.from_uri(f"/burst/{i}"), b"x")) for i in range(5)]
    for wire in packets:
        face.transmit(wire)
    assert theirs.recv(65536) == packets[0]
    assert reactor.writers == {transport}  # the rest waits for the poll
    transport.doWrite()  # the poll finds the socket writable
    assert theirs.recv(65536) == b"".join(packets[1:])
    reactor.end_turn()
    face.transmit(packets[0])  # a new turn: at once again
    assert theirs.recv(65536) == packets[0]
