"""Forwarder limits (sflow.icn.limits) and who may manage the forwarder, on task.Clock: every table
a peer can grow stops at its limit, counts each refusal and goes on serving; management from
loopback TCP needs the cluster key, from in-process and Unix-socket faces it does not."""

from __future__ import annotations

from typing import Any

from icn_harness import DummyFace, route
from twisted.internet.task import Clock

from sflow.icn.control import ControlParameters, decode_control_response
from sflow.icn.face.base import FaceScope
from sflow.icn.face.stream import ForwarderStreamFactory
from sflow.icn.face.udp import UdpChannel
from sflow.icn.forwarder import Forwarder, ForwarderConfig
from sflow.icn.limits import ForwarderLimits, TokenBucket
from sflow.icn.name import Component, Name
from sflow.icn.packet import encode_interest, make_interest
from sflow.icn.signature import DigestSha256Signer, HmacSha256Signer, KeyLocator, SignatureInfo, SignatureType

KEY = b"k" * 32
NO_RATE = dict(interest_rate=0.0)


def forwarder(clock: Clock, **limits: Any) -> Forwarder:
    return Forwarder(clock, ForwarderConfig(limits=ForwarderLimits(**limits), management_key=KEY, clock_skew=5.0))


def test_the_pit_stops_at_its_limit_and_serves_again_when_entries_expire() -> None:
    clock = Clock()
    fwd = forwarder(clock, pit_max_entries=10, **NO_RATE)
    flooder, sink = DummyFace(), DummyFace()
    fwd.add_face(flooder)
    fwd.add_face(sink)
    route(fwd, "/flood", sink)
    for i in range(50):
        flooder.interest(f"/flood/{i}", lifetime=1000)
    assert len(fwd.pit) == 10 and fwd.limit_counters.n_pit_full == 40
    flooder.interest("/flood/3", lifetime=1000)  # an entry that exists still takes the Interest
    assert fwd.limit_counters.n_pit_full == 40
    clock.advance(1.1)
    assert len(fwd.pit) == 0
    flooder.interest("/flood/new", lifetime=1000)
    assert len(fwd.pit) == 1 and sink.sent_interests[-1].name == Name.from_uri("/flood/new")


def test_one_face_cannot_take_the_whole_pit() -> None:
    clock = Clock()
    fwd = forwarder(clock, pit_max_entries=100, pit_max_entries_per_face=5, **NO_RATE)
    flooder, polite, sink = DummyFace(), DummyFace(), DummyFace()
    for face in (flooder, polite, sink):
        fwd.add_face(face)
    route(fwd, "/flood", sink)
    for i in range(50):
        flooder.interest(f"/flood/{i}", lifetime=3_600_000)  # long lifetimes: the entries would stay
    assert len(fwd.pit) == 5 and fwd.limit_counters.n_pit_face_quota == 45
    polite.interest("/flood/polite")
    polite.interest("/flood/3")  # joins the flooder's entry: no new entry, no quota
    assert len(fwd.pit) == 6 and fwd.limit_counters.n_pit_face_quota == 45
    sink.data("/flood/polite")
    sink.data("/flood/0")
    clock.advance(0.1)
    assert len(fwd.pit) == 4
    flooder.interest("/flood/again")  # its satisfied entry freed a place in its quota
    assert len(fwd.pit) == 5 and fwd.limit_counters.n_pit_face_quota == 45


def test_a_face_over_its_interest_rate_is_dropped_others_are_not() -> None:
    clock = Clock()
    fwd = forwarder(clock, interest_rate=100.0, interest_burst=10)
    flooder, polite, sink = DummyFace(), DummyFace(), DummyFace()
    for face in (flooder, polite, sink):
        fwd.add_face(face)
    route(fwd, "/x", sink)
    for i in range(50):
        flooder.interest(f"/x/f{i}")
    assert fwd.limit_counters.n_rate_limited == 40 and len(sink.sent_interests) == 10
    polite.interest("/x/p")
    assert len(sink.sent_interests) == 11  # another face has its own bucket
    clock.advance(0.05)  # five more tokens
    for i in range(10):
        flooder.interest(f"/x/g{i}")
    assert len(sink.sent_interests) == 16 and fwd.limit_counters.n_rate_limited == 45


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(10.0, 3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.1) and not bucket.take(0.1)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]


def test_faces_stop_at_max_faces_for_connections_and_udp_peers() -> None:
    clock = Clock()
    fwd = forwarder(clock, max_faces=len(Forwarder(clock).faces) + 3)
    factory = ForwarderStreamFactory(fwd)
    channel = UdpChannel(fwd, clock)
    channel.transport = _FakeUdpTransport()  # type: ignore[assignment]
    for port in range(10):
        channel.datagramReceived(encode_interest(make_interest(f"/u/{port}")), ("10.0.0.9", 4000 + port))
    assert len(channel.faces) == 3 and fwd.limit_counters.n_faces_refused == 7
    assert factory.buildProtocol(None) is None  # the connection is closed at once
    assert fwd.limit_counters.n_faces_refused == 8
    channel.datagramReceived(encode_interest(make_interest("/u/again")), ("10.0.0.9", 4000))  # a known peer
    assert fwd.limit_counters.n_faces_refused == 8
    next(iter(channel.faces.values())).close()
    assert factory.buildProtocol(None) is not None


def test_fib_entries_and_next_hops_stop_at_their_limits() -> None:
    clock = Clock()
    base = len(Forwarder(clock).fib)
    fwd = forwarder(clock, fib_max_entries=base + 3, fib_max_nexthops=2)
    faces = [DummyFace() for _ in range(4)]
    for face in faces:
        fwd.add_face(face)
    for i in range(6):
        fwd.add_route(f"/p/{i}", faces[0])
    assert len(fwd.fib) == base + 3 and fwd.limit_counters.n_fib_full == 3
    for cost, face in zip((30, 10, 20, 40), faces):
        fwd.add_route("/p/0", face, cost)
    entry = fwd.fib.find_exact_match(Name.from_uri("/p/0"))
    assert entry is not None and [h.face for h in entry.next_hops] == [faces[1], faces[2]]
    assert fwd.limit_counters.n_nexthops_refused > 0


class _FakeUdpTransport:
    def write(self, datagram: bytes, addr: Any) -> None:
        pass

    def getHost(self) -> Any:
        class _Host:
            host, port = "0.0.0.0", 6363

        return _Host()


def _register(clock: Clock, face: DummyFace, prefix: str, signer: Any) -> int:
    params = ControlParameters(name=Name.from_uri(prefix))
    name = Name.from_uri("/localhost/nfd/rib/register").append(Component.generic(params.encode()))
    before = len(face.sent_data)
    face.receive_interest(make_interest(name, app_parameters=b"", signer=signer, lifetime=1000), None)
    clock.advance(0)
    assert len(face.sent_data) == before + 1
    return decode_control_response(face.sent_data[-1].content).status_code


def _hmac(key: bytes, time_ms: int | None) -> Any:
    class Signer:
        def signature_info(self) -> SignatureInfo:
            return SignatureInfo(SignatureType.HMAC_WITH_SHA256, KeyLocator(name=Name.from_uri("/any/key")), time=time_ms)

        def sign(self, portions: Any) -> bytes:
            return HmacSha256Signer(Name.from_uri("/any/key"), key).sign(portions)

    return Signer()


def test_management_from_loopback_tcp_needs_the_cluster_key_and_a_current_time() -> None:
    clock = Clock()
    clock.advance(1000)
    fwd = forwarder(clock)
    tcp = DummyFace(scope=FaceScope.LOCAL, uri="tcp4://127.0.0.1:40000")  # loopback: local scope, not trusted
    unix = DummyFace(scope=FaceScope.LOCAL, uri="unix:///run/sflow.sock")
    for face in (tcp, unix):
        fwd.add_face(face)
    assert _register(clock, tcp, "/a", DigestSha256Signer(interest_nonce_size=8)) == 403
    assert _register(clock, tcp, "/a", _hmac(b"x" * 32, 1_000_000)) == 403  # not the cluster key
    assert _register(clock, tcp, "/a", _hmac(KEY, None)) == 403  # no SignatureTime: replayable
    assert _register(clock, tcp, "/a", _hmac(KEY, 1_000_000 - 60_000)) == 403  # a minute old
    assert _register(clock, tcp, "/a", _hmac(KEY, 1_000_000)) == 200
    assert _register(clock, unix, "/b", DigestSha256Signer(interest_nonce_size=8)) == 200
    prefixes = {str(e.prefix) for e in fwd.fib}
    assert "/a" in prefixes and "/b" in prefixes
    keyless = Forwarder(clock)
    other = DummyFace(scope=FaceScope.LOCAL, uri="tcp4://127.0.0.1:40001")
    keyless.add_face(other)
    assert _register(clock, other, "/c", _hmac(KEY, 1_000_000)) == 403  # without a key, only local sockets manage
