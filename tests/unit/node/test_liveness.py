"""Heartbeats: the pure liveness rules, and two channels on a task.Clock that keep each other alive
while they talk and declare a silent peer lost within the bound."""

from __future__ import annotations

import pytest
from node_fakes import SECRET, Pipe, RecordingHandler
from twisted.internet.task import Clock

from sflow.config import NodeSettings
from sflow.errors import ConfigError
from sflow.node.channel import Channel
from sflow.node.liveness import Heartbeat, Liveness, Lost, Ping

BEAT = Heartbeat(2.0, 3)


def test_pings_when_quiet_and_declares_the_peer_lost_after_misses_intervals() -> None:
    live = Liveness(BEAT, 0.0, peer_interval=2.0)
    assert live.tick(2.0) == [Ping()]
    live.sent(2.5)
    assert live.tick(3.0) == []  # something went out half an interval ago
    assert live.tick(4.0) == [Ping()]
    live.heard(4.0)
    assert live.tick(6.0) == [Ping()]
    assert live.tick(8.0) == [Ping()]
    (lost,) = live.tick(10.0)
    assert isinstance(lost, Lost) and lost.silence == 6.0 and lost.limit == 6.0


def test_a_check_that_comes_late_does_not_blame_the_peer_for_this_sides_busy_loop() -> None:
    live = Liveness(BEAT, 0.0, peer_interval=2.0)
    live.heard(2.0)
    assert live.tick(2.0) == [Ping()]
    # this side's loop was held 8 s by a long callback: what the peer sent meanwhile is unread
    assert live.tick(12.0) == [Ping()]
    live.heard(12.1)  # read right after the check
    assert live.tick(14.0) == [Ping()]
    # a peer that really is silent is still lost, by the silence the loop could have seen
    assert live.tick(16.0) == [Ping()]
    (lost,) = live.tick(18.1)
    assert isinstance(lost, Lost) and lost.silence >= 6.0


def test_the_slower_peer_sets_the_limit_and_a_peer_without_pings_is_never_lost_by_silence() -> None:
    assert Liveness(BEAT, 0.0, peer_interval=5.0).limit == 15.0
    quiet = Liveness(BEAT, 0.0, peer_interval=None)
    assert quiet.tick(1000.0) == [Ping()]


def test_a_side_that_stopped_reading_does_not_blame_its_peer() -> None:
    live = Liveness(BEAT, 0.0, peer_interval=2.0)
    live.reading(True, 1.0)
    assert not any(isinstance(a, Lost) for a in live.tick(60.0))
    live.reading(False, 61.0)
    assert not any(isinstance(a, Lost) for a in live.tick(62.0) + live.tick(64.0) + live.tick(66.0))
    assert isinstance(live.tick(67.5)[0], Lost)


def test_settings_are_checked() -> None:
    assert Heartbeat.from_settings(NodeSettings()).bound == 8.0
    with pytest.raises(ConfigError, match="heartbeat_misses"):
        Heartbeat.from_settings(NodeSettings(heartbeat_misses=1))
    with pytest.raises(ConfigError, match="heartbeat_interval"):
        Heartbeat.from_settings(NodeSettings(heartbeat_interval=-1.0))
    assert not Heartbeat.from_settings(NodeSettings(heartbeat_interval=0.0)).enabled


def pair(clock: Clock) -> tuple[Channel, RecordingHandler, Channel, RecordingHandler, Pipe]:
    ch_handler, sv_handler = RecordingHandler(), RecordingHandler()
    client = Channel("client", SECRET, ch_handler, clock, "client", heartbeat=BEAT)
    server = Channel("server", SECRET, sv_handler, clock, "server", heartbeat=BEAT)
    pipe = Pipe(client, server)
    pipe.pump()
    assert client.ready.called and server.ready.called
    return client, ch_handler, server, sv_handler, pipe


def test_channels_that_exchange_pings_stay_up() -> None:
    clock = Clock()
    client, ch_handler, server, sv_handler, pipe = pair(clock)
    for _ in range(50):
        clock.advance(1.0)
        pipe.pump()
    assert not client.closed and not server.closed
    assert ch_handler.messages == [] and sv_handler.messages == []  # pings never reach the handler


def test_a_silent_peer_is_lost_within_the_bound_and_the_connection_aborted() -> None:
    clock = Clock()
    client, ch_handler, server, sv_handler, pipe = pair(clock)
    # The server's process stops: nothing it would send arrives any more (its bytes stay put).
    waited = 0.0
    while not client.closed:
        clock.advance(0.5)
        waited += 0.5
        pipe.rt.clear()
        assert waited <= BEAT.bound
    assert pipe.lt.disconnecting  # aborted: nothing waits for the silent peer to read
    client.connectionLost()
    (reason, authenticated) = ch_handler.closed[0]
    assert "no heartbeat from server" in reason and authenticated
