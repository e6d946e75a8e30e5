"""Fresh ICN requests (sflow.sfc.freshness) on in-process clusters (task.Clock): run keys and their
checks; a compute Interest replayed after its run (ended, or past its window) runs nothing; an
unsigned or stale status request gets no answer; identical requests of a run keep one name;
hellos replayed later are dropped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgpack

import pytest
from sfc_harness import SECRET, chain_tasks, job, make_cluster
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from sflow.errors import InterestTimeout
from sflow.icn.app import Endpoint
from sflow.icn.name import Name
from sflow.icn.packet import ContentType, Interest, make_interest
from sflow.icn.signature import HmacSha256Signer, SignatureInfo
from sflow.model.workflow import TaskId
from sflow.sfc.auto import Advert, NeighbourTable
from sflow.sfc.bundle import decode_status, encode_request
from sflow.sfc.freshness import RequestGuard, RunKey, RunSigner, TimedClusterSigner
from sflow.sfc.hello import HelloProtocol, encode_hello
from sflow.sfc.names import CTL_PREFIX, KEY_NAME, build_specs


def compute_interest(prefix: Name, signer: Any, nonce: int = 1) -> Interest:
    """A compute Interest as a consumer sends it (what an attacker on the path records)."""
    return make_interest(prefix, must_be_fresh=True, lifetime=4000, nonce=nonce, app_parameters=encode_request(""),
                         signer=signer)


def test_run_keys_name_their_window_and_only_the_secret_derives_them() -> None:
    key = RunKey.for_run("ab12", now=1000.0, validity=60.0, skew=5.0)
    assert (key.not_before_ms, key.not_after_ms) == (995_000, 1_060_000)
    assert RunKey.parse(key.name) == key
    assert RunKey.parse(KEY_NAME) is None and RunKey.parse(key.name.prefix(-1)) is None
    assert key.derive(SECRET) != key.derive(b"t" * 32)
    assert key.derive(SECRET) != RunKey("ab12", 995_000, 1_060_001).derive(SECRET)  # the window is bound
    # identical requests within a run have the same name: they aggregate in PITs
    prefix = Name.from_uri("/sflow/fn/seq/" + "a" * 64)
    signer = RunSigner.of(key, SECRET)
    assert compute_interest(prefix, signer, 1).name == compute_interest(prefix, signer, 2).name


def test_the_guard_checks_signature_window_end_and_signature_time() -> None:
    guard = RequestGuard(SECRET, max_validity=3600.0, skew=5.0)
    key = RunKey.for_run("r1", now=1000.0, validity=60.0, skew=5.0)
    prefix = Name.from_uri("/sflow/fn/seq/" + "b" * 64)
    good = compute_interest(prefix, RunSigner.of(key, SECRET))
    assert guard.check_run_request(good, 1000.0).run_key == key
    assert guard.check_run_request(good, 1001.0).ok  # the same request again, within the run: fine
    assert not guard.check_run_request(compute_interest(prefix, RunSigner(key, b"x" * 32)), 1000.0).ok
    assert not guard.check_run_request(compute_interest(prefix, HmacSha256Signer(KEY_NAME, SECRET)), 1000.0).ok
    assert not guard.check_run_request(make_interest(prefix, app_parameters=b""), 1000.0).ok
    assert "validity" in guard.check_run_request(good, 1066.0).reason  # past the window and the skew
    assert "validity" in guard.check_run_request(good, 980.0).reason  # before it
    long = RunKey.for_run("r2", now=1000.0, validity=7200.0, skew=5.0)
    assert "maximum" in guard.check_run_request(compute_interest(prefix, RunSigner.of(long, SECRET)), 1000.0).reason
    older = RunKey("r1", key.not_before_ms, key.not_after_ms)
    backdated = compute_interest(prefix, _TimeSigner(older, SECRET, key.not_before_ms - 1))
    assert not guard.check_run_request(backdated, 1000.0).ok
    later = compute_interest(prefix, _TimeSigner(key, SECRET, key.not_before_ms + 10))
    assert guard.check_run_request(later, 1000.0).ok
    assert "older" in guard.check_run_request(good, 1000.0).reason  # a SignatureTime never goes back per key
    # a node's own request for a function placed on it carries no Interest: only its key is checked
    assert guard.check_key(key, 1000.0).run_key == key
    assert "validity" in guard.check_key(key, 1066.0).reason and "maximum" in guard.check_key(long, 1000.0).reason
    guard.end("r1", key.not_after_ms)
    assert "ended" in guard.check_run_request(later, 1000.0).reason
    assert "ended" in guard.check_key(key, 1000.0).reason
    assert guard.counters["ended"] == 2 and guard.counters["expired"] == 5
    # requests of no run (status): the cluster key and a current SignatureTime
    status = make_interest(CTL_PREFIX.append("status"), app_parameters=b"", signer=TimedClusterSigner(SECRET, 1_000_000))
    assert guard.check_cluster_request(status, 1000.0).ok
    assert not guard.check_cluster_request(status, 1006.0).ok
    assert not guard.check_cluster_request(make_interest(CTL_PREFIX.append("status"), app_parameters=b""), 1000.0).ok


@dataclass(frozen=True)
class _TimeSigner:
    """A run signer with another SignatureTime (what a consumer with its own clock could send)."""

    run_key: RunKey
    secret: bytes
    time: int

    def signature_info(self) -> SignatureInfo:
        return replace(RunSigner.of(self.run_key, self.secret).signature_info(), time=self.time)

    def sign(self, portions: Sequence[bytes]) -> bytes:
        return RunSigner.of(self.run_key, self.secret).sign(portions)


def test_a_compute_interest_replayed_after_its_run_runs_nothing(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, n=1)
    cluster.clock.advance(1_000_000)  # a wall-clock-like time
    j = job(chain_tasks(3))
    specs = build_specs(j, {})
    dispatch = cluster.dispatch(j, {TaskId(t): "n0" for t in (1, 2, 3)}, timeout=600.0)
    dispatch.endpoints["n0"] = cluster.wait(cluster.connect_endpoint("n0"))
    cluster.wait(Deferred.fromCoroutine(dispatch._install_all()))
    attacker = Endpoint.attach(cluster.nodes["n0"].forwarder)
    # During the run, the run's request makes function 1 run (what an on-path attacker records).
    recorded = {t: compute_interest(specs[TaskId(t)].prefix, dispatch._signer, nonce=t) for t in (1, 2)}
    status = decode_status(cluster.wait(attacker.express(recorded[1])).content)
    cluster.clock.advance(1)
    assert status.state in ("running", "ready") and cluster.executed() == [1]
    cluster.wait(Deferred.fromCoroutine(dispatch._end_run()))
    # After the run: the recorded requests are refused, whether the result exists or not.
    for t, interest in recorded.items():
        data = cluster.wait(attacker.express(compute_interest(interest.name.prefix(-1), dispatch._signer, nonce=9 + t)))
        assert data.content_type == ContentType.NACK
    cluster.clock.advance(10)
    assert cluster.executed() == [1]
    service = cluster.nodes["n0"].service
    assert service.guard.counters["ended"] == 2

    # A run whose delegator never ended it: refused once its window (timeout + skew) has passed.
    other = cluster.dispatch(j, {TaskId(t): "n0" for t in (1, 2, 3)}, timeout=60.0)
    other.endpoints["n0"] = dispatch.endpoints["n0"]
    cluster.wait(Deferred.fromCoroutine(other._install_all()))
    replay = compute_interest(specs[TaskId(3)].prefix, other._signer, nonce=77)
    cluster.clock.advance(60 + cluster.config.icn.clock_skew * 2 + 1)
    data = cluster.wait(attacker.express(replay))
    assert data.content_type == ContentType.NACK
    cluster.clock.advance(10)
    assert cluster.executed() == [1] and service.guard.counters["expired"] >= 1


def test_a_whole_run_works_with_run_keys_and_ends_on_every_node(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, n=2)
    j = job(chain_tasks(2))
    dispatch = cluster.dispatch(j, {TaskId(1): "n0", TaskId(2): "n1"}, timeout=600.0)
    trace = cluster.run(dispatch)
    assert cluster.executed() == [1, 2] and len(trace.tasks) == 2
    for node in cluster.nodes.values():
        assert node.service.guard.ended(dispatch.run_id)


def test_status_needs_a_signed_current_request(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, n=1)
    cluster.clock.advance(1_000_000)
    outsider = Endpoint.attach(cluster.nodes["n0"].forwarder)
    name = CTL_PREFIX.append("status")
    for interest in (
        make_interest(name, must_be_fresh=True, lifetime=1000),
        make_interest(name, must_be_fresh=True, lifetime=1000, app_parameters=b"",
                      signer=HmacSha256Signer(KEY_NAME, SECRET)),  # no SignatureTime: replayable
        make_interest(name, must_be_fresh=True, lifetime=1000, app_parameters=b"",
                      signer=TimedClusterSigner(SECRET, 1_000_000_000 - 3_600_000)),  # an hour old
        make_interest(name, must_be_fresh=True, lifetime=1000, app_parameters=b"",
                      signer=TimedClusterSigner(b"x" * 32, 1_000_000_000)),
    ):
        with pytest.raises(InterestTimeout):
            cluster.wait(outsider.express(interest))
    signed = make_interest(name, must_be_fresh=True, lifetime=1000, app_parameters=b"",
                           signer=TimedClusterSigner(SECRET, int(cluster.clock.seconds() * 1000)))
    body = msgpack.unpackb(cluster.wait(outsider.express(signed)).content, raw=False)
    assert body["node"] == "n0" and body["counters"]["refused"] == 4


class FakeUdp:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def write(self, datagram: bytes, addr: Any) -> None:
        self.sent.append((datagram, addr))

    def setBroadcastAllowed(self, allowed: bool) -> None:
        pass


def test_replayed_and_stale_hellos_are_dropped() -> None:
    clock = Clock()
    clock.advance(1_000_000)
    table = NeighbourTable(ttl=3.0, max_neighbours=5)
    me = Advert("10.0.0.1:6363", 2, 2, 0, 1000.0, 100.0, 0)
    hello = HelloProtocol(clock, SECRET, table, lambda: me, [], 1.0, skew=5.0)
    hello.makeConnection(FakeUdp())  # type: ignore[arg-type]
    neighbour = Advert("10.0.0.2:6363", 2, 1, 0, 1000.0, 100.0, 0)
    now_ms = 1_000_000_000
    first = encode_hello(neighbour, SECRET, now_ms, 1)
    hello.datagramReceived(first, ("10.0.0.2", 15454))
    assert [a.node for a in table.fresh(clock.seconds())] == ["10.0.0.2:6363"]
    # The neighbour dies; its recorded hello is replayed to keep it alive: dropped, it expires.
    for _ in range(4):
        clock.advance(1.0)
        hello.datagramReceived(first, ("10.0.0.2", 15454))
    assert table.fresh(clock.seconds()) == []
    # Older than the skew (a hello recorded long ago, with a sequence never heard): dropped too.
    hello.datagramReceived(encode_hello(neighbour, SECRET, now_ms - 60_000, 99), ("10.0.0.2", 15454))
    assert table.fresh(clock.seconds()) == []
    assert hello.counters["stale"] == 5
    # A newer hello (a later time, or the same time and a higher sequence) is heard.
    hello.datagramReceived(encode_hello(neighbour, SECRET, now_ms + 4000, 2), ("10.0.0.2", 15454))
    assert [a.node for a in table.fresh(clock.seconds())] == ["10.0.0.2:6363"]
    hello.stopProtocol()
