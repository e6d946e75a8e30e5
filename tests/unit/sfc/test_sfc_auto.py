"""Autonomous mode on in-process clusters (task.Clock), and the hello protocol (fake UDP transport):
hellos carry the advertised address and are never taken from the node itself; the fork–join
spreads over the nodes' vCPUs; a mutual wait is resolved at once with exactly one execution; a
neighbour that goes away mid-run is routed around at once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sfc_harness import SECRET, Cluster, chain_tasks, fan_tasks, fork_join_tasks, job, make_cluster
from twisted.internet.task import Clock, LoopingCall

from sflow.delegator.trace import CACHED, Trace, run_kind
from sflow.model.workflow import TaskId
from sflow.sfc.auto import Advert, NeighbourTable, short
from sflow.sfc.hello import MIN_GAP, HelloProtocol, decode_hello, encode_hello, reachable_address
from sflow.sfc.identity import Identity
from sflow.sfc.consumer import ResultClient
from sflow.sfc.names import Installed


class FakeUdp:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []
        self.broadcast = False

    def write(self, datagram: bytes, addr: Any) -> None:
        self.sent.append((datagram, addr))

    def setBroadcastAllowed(self, allowed: bool) -> None:
        self.broadcast = allowed


def advert(node: str, free: int = 2, queue: int = 0, working: frozenset[str] = frozenset(),
           held: frozenset[str] = frozenset()) -> Advert:
    return Advert(node, 2, free, queue, 1000.0, 100.0, 1, working, held)


def test_hellos_carry_the_advertised_address_and_are_never_taken_from_the_node_itself() -> None:
    clock = Clock()
    table = NeighbourTable(ttl=3.0, max_neighbours=5)
    me = Identity.of("10.0.0.1:6363", ["0.0.0.0", "10.0.0.1"])
    mine = advert("10.0.0.1:6363", working=frozenset({short("a" * 64)}), held=frozenset({short("b" * 64)}))
    lost: list[str] = []
    hello = HelloProtocol(clock, SECRET, table, lambda: mine, [("10.0.0.2", 15454)], 1.0, is_me=me.is_me,
                          on_lost=lost.append)
    transport = FakeUdp()
    hello.makeConnection(transport)  # type: ignore[arg-type]
    clock.advance(1.0)
    clock.advance(1.0)
    assert len(transport.sent) == 3 and transport.broadcast
    # what a neighbour hears: the advertised address (not the bind address) and the state
    assert decode_hello(transport.sent[0][0], SECRET)[0] == mine

    hello.datagramReceived(encode_hello(advert("10.0.0.2:6363", free=1), SECRET), ("10.0.0.2", 15454))
    hello.datagramReceived(encode_hello(advert("10.0.0.3:6363"), b"wrong" * 8), ("10.0.0.3", 15454))
    hello.datagramReceived(b"junk", ("10.0.0.4", 15454))
    hello.datagramReceived(encode_hello(advert("0.0.0.0:7000"), SECRET), ("10.0.0.5", 15454))
    # this node's own hellos, in any form (it is in its own neighbour list, or hears a broadcast)
    for own in ("10.0.0.1:6363", "0.0.0.0:6363", "127.0.0.1:6363"):
        hello.datagramReceived(encode_hello(advert(own), SECRET), ("10.0.0.1", 15454))
    assert sorted(a.node for a in table.fresh(clock.seconds())) == ["10.0.0.2:6363", "10.0.0.5:7000"]
    assert table.adverts["10.0.0.2:6363"][0].free == 1
    for _ in range(4):
        clock.advance(1.0)  # our own hellos go on, but nobody answered: neighbours expire, reported lost
    assert table.fresh(clock.seconds()) == [] and sorted(lost) == ["10.0.0.2:6363", "10.0.0.5:7000"]

    # A change of work sends a hello soon, at most one per MIN_GAP.
    clock.advance(0.5)
    before = len(transport.sent)
    hello.soon()
    hello.soon()
    clock.advance(0)
    assert len(transport.sent) == before + 1
    hello.soon()
    clock.advance(MIN_GAP / 2)
    assert len(transport.sent) == before + 1
    clock.advance(MIN_GAP)
    assert len(transport.sent) == before + 2
    hello.stopProtocol()


def test_a_wildcard_neighbour_is_known_by_the_address_it_was_heard_from() -> None:
    assert reachable_address("0.0.0.0:7070", "10.0.0.2") == "10.0.0.2:7070"
    assert reachable_address("[::]:7070", "::1") == "[::1]:7070"  # IPv6 hosts keep their brackets
    assert reachable_address("10.0.0.3:7070", "10.0.0.2") == "10.0.0.3:7070"


def _hello_loop(cluster: Cluster, interval: float = 0.5) -> LoopingCall:
    loop = LoopingCall(cluster.hellos)
    loop.clock = cluster.clock
    loop.start(interval, now=True)
    return loop


def _check_precedence(trace: Trace, width: int) -> None:
    """No function started before every input existed."""
    runs = {r.task: r for r in trace.tasks}
    sink = width + 2
    for t in range(2, sink):
        assert runs[t].start >= runs[1].finish - 1e-9
        assert runs[sink].start >= runs[t].finish - 1e-9


def test_auto_fork_join_spreads_over_the_nodes_vcpus(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger="sflow.sfc.placer")
    width = 6
    cluster = make_cluster(tmp_path, auto=True, vcpus=2, delays={t: 1.0 for t in range(2, width + 2)})
    # what was logged of placements when each request to compute went out
    from sflow.sfc.consumer import ResultClient

    compute = ResultClient.compute
    asked: list[tuple[str, int]] = []

    def computing(client: ResultClient, prefix: Any, signer: Any = None) -> Any:
        asked.append((str(prefix), sum("event=placed" in r.getMessage() for r in caplog.records)))
        return compute(client, prefix, signer)

    monkeypatch.setattr(ResultClient, "compute", computing)
    loop = _hello_loop(cluster)
    start = cluster.clock.seconds()
    trace = cluster.run(cluster.dispatch(job(fan_tasks(width)), {TaskId(width + 2): "n0"}, mode="auto",
                                         nodes=list(cluster.nodes)))
    loop.stop()
    elapsed = cluster.clock.seconds() - start
    runs = {r.task: r for r in trace.tasks}
    middle = range(2, width + 2)
    # two of the six on each node, at most one per vCPU at a time, and all in one round
    per_node = {n: [t for t in middle if runs[t].node == n] for n in cluster.nodes}
    assert sorted(len(v) for v in per_node.values()) == [2, 2, 2], per_node
    assert elapsed < 1.5, elapsed
    assert sorted(cluster.executed()).count(width + 2) == 1
    assert [t for t in cluster.executed() if t in middle] == list(middle)  # each once
    _check_precedence(trace, width)
    # The nodes place the functions themselves: the delegator starts none (a static run's start)
    assert all(node.service.counters["started"] == 0 for node in cluster.nodes.values())
    # each placement is one INFO line: which node placed which function where, and why
    placed = [r.getMessage() for r in caplog.records if "event=placed" in r.getMessage()]
    for t in middle:
        [line] = [m for m in placed if f" task={t} " in m]
        assert line.startswith("event=placed node=n0 ") and f"for_task={width + 2} " in line
        assert f"on={'here' if runs[t].node == 'n0' else runs[t].node} " in line
        assert all(f"{n} (free " in line for n in cluster.nodes) and "queue " in line and "est=" in line
    # The join's node placed its inputs in one turn, and logged the placements once the requests
    # were on their way: its requests to the other nodes went out before any line was written.
    away = [t for t in middle if runs[t].node != "n0"]
    first_requests = asked[1:1 + len(away)]  # (the delegator's request for the join comes first)
    assert len(away) == 4 and [logged for _, logged in first_requests] == [0] * len(away), asked


def test_a_neighbour_is_fetched_from_only_when_its_adverts_say_it_holds_the_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node asks a neighbour that does not advertise the result to compute it at once (a fetch
    would only be refused first); one that advertises it is fetched from first, a cache hit."""
    fetched: list[tuple[str, str]] = []  # (node that fetched, name) for the nodes' fetches
    plain_fetch = ResultClient.fetch

    def fetch(self: ResultClient, prefix: Any) -> Any:
        if self.requester:  # a node's client (the delegator's names no requester)
            fetched.append((self.requester, str(prefix)))
        return plain_fetch(self, prefix)

    monkeypatch.setattr(ResultClient, "fetch", fetch)
    width = 6
    sink = width + 2
    cluster = make_cluster(tmp_path, auto=True, vcpus=2, delays={t: 1.0 for t in range(2, sink)})
    loop = _hello_loop(cluster)
    first = cluster.run(cluster.dispatch(job(fan_tasks(width)), {TaskId(sink): "n0"}, mode="auto",
                                         nodes=list(cluster.nodes)))
    ran_first = {r.task: r.node for r in first.tasks}
    assert {n for t, n in ran_first.items() if 2 <= t < sink} - {"n0"}, "n0 placed nothing on a neighbour"
    assert fetched == []  # nothing was held anywhere: every input was computed on request
    # The same functions again with the sink on n1: the six results are held where they ran, as
    # the hellos say; n1 fetches those on its neighbours and runs none of the six again.
    cluster.clock.advance(1.0)
    hits = cluster.nodes["n1"].service.counters["input_cache_hits"]
    second = cluster.run(cluster.dispatch(job(fan_tasks(width), job_id=8), {TaskId(sink): "n1"}, mode="auto",
                                          nodes=list(cluster.nodes)))
    loop.stop()
    assert [t for t in cluster.executed() if 2 <= t < sink] == list(range(2, sink))  # each once, in all
    elsewhere = [t for t in range(2, sink) if ran_first[t] != "n1"]
    assert elsewhere and {node for node, _ in fetched} == {"n1"} and len(fetched) == len(elsewhere)
    assert cluster.nodes["n1"].service.counters["input_cache_hits"] - hits == width
    assert {r.task for r in second.tasks if run_kind(r.where) == CACHED} >= set(elsewhere)


def test_a_nodes_pending_work_leaves_out_the_functions_waiting_for_the_result_being_placed(tmp_path: Path) -> None:
    width = 3
    sink = width + 2
    cluster = make_cluster(tmp_path, auto=True, delays={t: 5.0 for t in range(1, sink)})
    d = cluster.dispatch(job(fan_tasks(width)), {TaskId(sink): "n0"}, mode="auto", nodes=list(cluster.nodes)).run()
    for _ in range(50):
        cluster.clock.advance(0.01)
    service = cluster.nodes["n0"].service
    sink_spec = next(f.spec for f in service.functions().values() if int(f.spec.task) == sink)
    middle = [ref.digest for ref in sink_spec.inputs]
    waiting = [f.spec for f in service.functions().values() if f.spec.digest in service.producer.awaiting]
    assert sink_spec in waiting  # the sink waits for its inputs here
    assert service.local_advert().pending == len(waiting)
    assert service.local_advert(middle[0]).pending == len(waiting) - 1  # the sink cannot run before it
    assert service.local_advert("f" * 64).pending == len(waiting)
    cluster.wait(d)
    assert not service.producer.awaiting and service.local_advert().pending == 0


def test_a_mutual_wait_is_resolved_at_once_and_the_function_runs_once(tmp_path: Path) -> None:
    """n0 is asked for 4 and places 2 on n1 and 3 on n2; n1 places their common input 1 on n2 and
    n2 places it on n1: each asks the other for it. n1 (first by address) runs it; n2 yields."""
    forced = {("n0", 2): "n1", ("n0", 3): "n2", ("n1", 1): "n2", ("n2", 1): "n1"}

    def placer(name: str) -> Any:
        def place(item: Installed, index: int, avoid: frozenset[str]) -> str:
            return forced.get((name, int(item.spec.inputs[index].pred)), "")

        return place

    cluster = make_cluster(tmp_path, placer=placer)
    start = cluster.clock.seconds()
    trace = cluster.run(cluster.dispatch(job(fork_join_tasks()), {TaskId(4): "n0"}, mode="auto",
                                         nodes=list(cluster.nodes)))
    assert sorted(cluster.nodes["n1"].executor.tasks()) == [1, 2]
    assert cluster.executed() == [1, 2, 3, 4]  # function 1 ran once
    assert {r.task: r.node for r in trace.tasks}[1] == "n1"
    assert cluster.nodes["n2"].service.counters["yielded"] == 1
    # without waiting for any Interest's lifetime (4 s) or a neighbour's give-up time
    assert cluster.clock.seconds() - start < 0.5


def test_a_neighbour_that_goes_away_mid_run_is_routed_around_at_once(tmp_path: Path) -> None:
    """n2 dies while it runs one of the six: n0 places that function again at once (its face to n2
    closed), without waiting for an Interest lifetime or a give-up time."""
    width = 6
    cluster = make_cluster(tmp_path, auto=True, vcpus=2, delays={t: 5.0 for t in range(2, width + 2)})
    loop = _hello_loop(cluster)
    d = cluster.dispatch(job(fan_tasks(width)), {TaskId(width + 2): "n0"}, mode="auto",
                         nodes=list(cluster.nodes)).run()
    for _ in range(100):
        cluster.clock.advance(0.01)
    on_n2 = [r.task_id for r in cluster.nodes["n2"].executor.requests]
    assert on_n2, "n2 was given nothing to run"
    cluster.kill("n2")
    trace = cluster.wait(d)
    loop.stop()
    runs = {r.task: r for r in trace.tasks}
    assert all(runs[t].node != "n2" for t in on_n2)
    assert (tmp_path / "out" / "out/sink.txt").exists()
    # re-placed when n2 went (t = 1 s), then 5 s of work: no 12 s give-up, no 4 s lifetime wait
    assert runs[width + 2].finish < 1.0 + 5.0 + 5.0 + 0.5, runs[width + 2]
    assert cluster.nodes["n0"].service.counters["replaced"] >= 1
    _check_precedence(trace, width)


def test_auto_mode_routes_around_a_neighbour_that_cannot_be_reached(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, auto=True)
    cluster.hellos()  # n2 was heard once, then went down before the job
    cluster.down.add("n2")
    trace = cluster.run(cluster.dispatch(job(fork_join_tasks()), {TaskId(4): "n0"}, mode="auto",
                                         nodes=["n0", "n1", "n2"]))
    # (with no hellos since, n0 and n1 do not know that the other computes 1: each may)
    assert set(cluster.executed()) == {1, 2, 3, 4} and [t for t in cluster.executed() if t != 1] == [2, 3, 4]
    ran_on = {r.task: r.node for r in trace.tasks}
    assert ran_on[4] == "n0" and "n2" not in ran_on.values()


def test_a_node_whose_loop_was_busy_does_not_lose_neighbours_whose_hellos_wait_unread() -> None:
    clock = Clock()
    table = NeighbourTable(ttl=3.0, max_neighbours=5)
    lost: list[str] = []
    hello = HelloProtocol(clock, SECRET, table, lambda: advert("10.0.0.1:6363"), [], 1.0, on_lost=lost.append)
    hello.makeConnection(FakeUdp())  # type: ignore[arg-type]
    hello.datagramReceived(encode_hello(advert("10.0.0.2:6363"), SECRET), ("10.0.0.2", 15454))
    # a placement in the middle of a long burst of work (5 s, no hello read) still sees it
    assert [a.node for a in table.fresh(clock.seconds() + 5.0)] == ["10.0.0.2:6363"]
    clock.advance(5.0)  # the loop was held 5 s: the next hello tick comes 4 s late
    assert lost == [] and "10.0.0.2:6363" in table.adverts
    hello.datagramReceived(encode_hello(advert("10.0.0.2:6363"), SECRET), ("10.0.0.2", 15454))  # read now
    # a neighbour that really went silent is still lost, by the hello loop
    for _ in range(5):
        clock.advance(1.0)
    assert lost == ["10.0.0.2:6363"] and table.fresh(clock.seconds()) == []


def test_placements_stop_counting_after_their_ttl_and_one_placed_again_counts_afresh() -> None:
    from sflow.sfc.placer import AutoPlacer

    placer = AutoPlacer(Clock(), NeighbourTable(ttl=3.0, max_neighbours=5), ttl=3.0)
    placer.placed = {"a:1": {"d1": 0.0, "d2": 1.0, "d3": 2.0}, "b:1": {"d4": 0.5}}
    assert placer._placed_counts(2.5) == {"a:1": 3, "b:1": 1}
    assert placer._placed_counts(3.6) == {"a:1": 2, "b:1": 0}  # d1 and d4 expired
    assert list(placer.placed["a:1"]) == ["d2", "d3"]
    # placed again at 3.6 (as __call__ does): it moves to the newest end and counts from then
    placer.placed["a:1"].pop("d2")
    placer.placed["a:1"]["d2"] = 3.6
    assert placer._placed_counts(5.5) == {"a:1": 1, "b:1": 0}  # d3 (2.0) expired, d2 (3.6) not
    assert placer._placed_counts(7.0) == {"a:1": 0, "b:1": 0}


def test_a_long_chain_stays_on_one_node_and_its_requests_do_not_run_out_of_stack(tmp_path: Path) -> None:
    """The rest of a chain waiting on a node cannot compete with the predecessor it waits for:
    each node keeps placing the chain on itself (no hop crosses the network). Its requests to
    itself, one inside the other, are cut into reactor turns: 150 of them ran out of stack (the
    error was lost in a Deferred and the run hung)."""
    import sys

    n = 150
    assert n * 20 > sys.getrecursionlimit()  # (about 20 frames a request: deep enough to have failed)
    cluster = make_cluster(tmp_path, auto=True, delays={t: 0.01 for t in range(1, n + 1)})
    loop = _hello_loop(cluster)
    trace = cluster.run(cluster.dispatch(job(chain_tasks(n)), {TaskId(n): "n0"}, mode="auto",
                                         nodes=list(cluster.nodes)))
    loop.stop()
    assert {r.node for r in trace.tasks} == {"n0"} and len(trace.tasks) == n
    assert sorted(cluster.executed()) == list(range(1, n + 1))
    # still work that competes is spread: see test_auto_fork_join_spreads_over_the_nodes_vcpus


def _count_join_asks(monkeypatch: pytest.MonkeyPatch, cluster: Cluster, join: str) -> list[int]:
    """After each call that asks for inputs of the function ``join`` (digest), how many of its
    inputs had been asked for in all."""
    from sflow.sfc.producer import Obtain

    service = cluster.nodes["n0"].service
    performed = [0]
    after_each: list[int] = []
    perform, ask = service._perform, service._ask_inputs

    def counting(item: Installed, action: Any) -> None:
        performed[0] += item.spec.digest == join and isinstance(action, Obtain)
        perform(item, action)

    def asking(item: Installed, obtains: list[Any]) -> None:
        ask(item, obtains)
        if item.spec.digest == join:
            after_each.append(performed[0])

    monkeypatch.setattr(service, "_perform", counting)
    monkeypatch.setattr(service, "_ask_inputs", asking)
    return after_each


def test_a_join_asks_for_its_inputs_a_few_per_turn_and_has_them_all(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A join's inputs are placed and asked for INPUTS_PER_TURN at a time, one call after another
    from the reactor (not one inside the other), so that its requests leave between them."""
    from sflow.sfc.names import build_specs
    from sflow.sfc.service import INPUTS_PER_TURN

    width = 2 * INPUTS_PER_TURN + 16
    sink = width + 2
    j = job(fan_tasks(width))
    cluster = make_cluster(tmp_path, n=1, auto=True)
    after_each = _count_join_asks(monkeypatch, cluster, build_specs(j, {})[TaskId(sink)].digest)
    trace = cluster.run(cluster.dispatch(j, {TaskId(sink): "n0"}, mode="auto", nodes=["n0"]))
    assert after_each == [INPUTS_PER_TURN, 2 * INPUTS_PER_TURN, width]
    assert sorted(cluster.executed()) == list(range(1, sink + 1)) and len(trace.tasks) == sink


def test_a_join_whose_input_failed_asks_for_no_more_of_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sflow.errors import JobFailed
    from sflow.sfc.names import build_specs
    from sflow.sfc.service import INPUTS_PER_TURN

    width = 3 * INPUTS_PER_TURN
    sink = width + 2
    j = job(fan_tasks(width))
    cluster = make_cluster(tmp_path, n=1, auto=True, fail={2})
    after_each = _count_join_asks(monkeypatch, cluster, build_specs(j, {})[TaskId(sink)].digest)
    with pytest.raises(JobFailed) as failed:
        cluster.run(cluster.dispatch(j, {TaskId(sink): "n0"}, mode="auto", nodes=["n0"]))
    error = failed.value
    assert (error.task_id, error.node, error.exit_code, error.stderr_tail) == (2, "n0", 3, "task 2 says: no such thing\n")
    assert after_each == [INPUTS_PER_TURN]  # the first turn's inputs only: the join had failed
    assert sink not in cluster.executed() and len(cluster.executed()) <= 1 + INPUTS_PER_TURN
