"""Autonomous placement decisions (pure): free vCPUs, queues, inputs held, work under way, ties,
avoided neighbours, a burst of placements, and the tie-break of a mutual wait."""

from __future__ import annotations

from sflow.sfc.auto import Advert, NeighbourTable, Work, choose, short, upstream_work
from sflow.sfc.bundle import YIELDED
from sflow.sfc.producer import Execute, Hold, Obtain, Producer, Reply, runs_mutual

P = "a" * 64  # the predecessor being placed
IN1, IN2 = "b" * 64, "c" * 64  # its inputs


def advert(node: str, free: int = 2, queue: int = 0, speed: float = 1000.0, vcpus: int = 2, pending: int = 0,
           working: tuple[str, ...] = (), held: tuple[str, ...] = ()) -> Advert:
    return Advert(node, vcpus, free, queue, speed, 100.0, pending, frozenset(short(d) for d in working),
                  frozenset(short(d) for d in held))


def work(own: float = 1000.0, chains: tuple[float, ...] = ()) -> Work:
    return Work(P, own, tuple(zip((IN1, IN2), chains)))


def test_free_vcpus_win_over_a_full_node() -> None:
    me = advert("me", free=0)  # both vCPUs busy
    assert choose(me, [advert("a")], work()).target == "a"
    # here, with a vCPU free, the work stays here: no network
    assert choose(advert("me", free=1), [advert("a")], work()).target == "me"


def test_shorter_queues_win_and_the_queue_counts_pending_work() -> None:
    me = advert("me", free=0, queue=4)
    assert choose(me, [advert("a", free=0, queue=3), advert("b", free=0, queue=1)], work()).target == "b"
    # functions accepted and waiting for inputs will need the vCPUs too
    assert choose(me, [advert("a", pending=4), advert("b", free=0, queue=1)], work()).target == "b"


def test_a_node_holding_the_inputs_is_cheap_for_them() -> None:
    # Neither has the inputs: both would compute the chains before them (heavy); one holds them.
    chains = (5000.0, 3000.0)
    holder = advert("holder", held=(IN1, IN2))
    choice = choose(advert("me"), [advert("a"), holder], work(chains=chains))
    assert choice.target == "holder"
    assert "holds 2/2 inputs" in choice.explain() and choice.explain().startswith("holder ")
    # When this node holds them, they stay here though an idle neighbour is a little faster (its
    # speed does not make up for the transfers), not when it is much faster.
    me = advert("me", held=(IN1, IN2))
    assert choose(me, [advert("fast", speed=1010.0)], work(chains=chains)).target == "me"
    assert choose(me, [advert("fast", speed=1500.0)], work(chains=chains)).target == "fast"
    # An input another node holds is a fetch away, not a computation.
    fetch_only = choose(advert("me"), [advert("a", held=(IN1,))], work(own=0.0, chains=(5000.0,)))
    here = next(e for e in fetch_only.estimates if e.node == "me")
    assert here.seconds < 0.1


def test_the_result_held_or_under_way_elsewhere_is_not_computed_again() -> None:
    assert choose(advert("me"), [advert("a", held=(P,))], work()).target == "a"
    # under way at a neighbour: half its work left, cheaper than starting it here
    assert choose(advert("me"), [advert("a", free=0, working=(P,))], work()).target == "a"
    # under way here: here
    assert choose(advert("me", working=(P,)), [advert("a")], work()).target == "me"


def test_ties_and_light_work_stay_here_and_faster_idle_neighbours_take_heavy_work() -> None:
    assert choose(advert("me"), [advert("other")], work(10_000)).target == "me"
    assert choose(advert("me"), [advert("other", speed=1001)], work(0.01)).target == "me"
    assert choose(advert("me"), [advert("fast", speed=4000)], work(50_000)).target == "fast"


def test_avoided_neighbours_are_skipped_and_ties_go_to_the_first_address() -> None:
    busy = advert("me", free=0, queue=6)
    assert choose(busy, [advert("b"), advert("a")], work()).target == "a"
    assert choose(busy, [advert("a"), advert("b")], work(), avoid=frozenset({"a"})).target == "b"
    assert choose(busy, [advert("a")], work(), avoid=frozenset({"a"})).target == "me"


def test_a_burst_of_placements_spreads_over_the_vcpus() -> None:
    # Six functions placed at once from a node with 2 free vCPUs among two idle 2-vCPU neighbours:
    # two each, the first two here.
    me = advert("me")
    neighbours = [advert("a"), advert("b")]
    placed: dict[str, int] = {}
    for _ in range(6):
        target = choose(me, neighbours, work(), placed=placed).target
        placed[target] = placed.get(target, 0) + 1
    assert placed == {"me": 2, "a": 2, "b": 2}


def test_upstream_work_follows_the_heaviest_chain() -> None:
    workloads = {"a": 1.0, "b": 10.0, "c": 2.0, "d": 1.0}
    inputs = {"d": ["b", "c"], "b": ["a"], "c": ["a"]}
    assert upstream_work("d", workloads, inputs) == 12.0
    assert upstream_work("a", workloads, inputs) == 1.0


def test_neighbour_table_expires_and_bounds() -> None:
    table = NeighbourTable(ttl=3.0, max_neighbours=2)
    assert table.update(advert("a"), 0.0)
    assert not table.update(advert("a"), 1.0)
    table.update(advert("b"), 1.0)
    table.update(advert("c"), 2.0)
    assert sorted(a.node for a in table.fresh(2.0)) == ["b", "c"]
    assert table.expire(4.5) == ["b"]
    assert [a.node for a in table.fresh(4.5)] == ["c"]


def test_a_mutual_wait_is_resolved_at_once_by_the_same_tie_break_on_both_sides() -> None:
    a, b = "10.0.0.2:6363", "10.0.0.3:6363"
    assert runs_mutual(a, b) and not runs_mutual(b, a)
    # Each node is obtaining P from the other and hears the other's request for P.
    on_a, on_b = Producer(name=a), Producer(name=b)
    assert on_a.on_request(P, 0.0, known=True, stored=False, n_inputs=1, mutual=b) == [Hold(), Obtain(0)]
    [reply] = on_b.on_request(P, 0.0, known=True, stored=False, n_inputs=1, mutual=a)
    assert isinstance(reply, Reply) and reply.state == YIELDED and a in reply.reason
    assert P not in on_b.runs  # b does not run it: it waits for a
    # a, told that b yielded, asks its own producer, which already runs it: the request is held.
    assert on_a.on_request(P, 0.1, known=True, stored=False, n_inputs=1) == [Hold()]
    # Not a mutual wait (b was not waiting on the node that asks): b runs it as asked.
    assert on_b.on_request(P, 0.2, known=True, stored=False, n_inputs=0) == [Hold(), Execute()]


def test_the_producer_knows_which_runs_still_wait_for_inputs() -> None:
    producer = Producer(name="n0")
    producer.on_request("a" * 64, 0.0, known=True, stored=False, n_inputs=2)
    producer.on_request("b" * 64, 0.0, known=True, stored=False, n_inputs=1)
    producer.on_request("c" * 64, 0.0, known=True, stored=False, n_inputs=0)  # runs at once
    assert producer.awaiting == {"a" * 64, "b" * 64} and producer.queued() == 2
    producer.on_input("a" * 64, 0)
    assert producer.awaiting == {"a" * 64, "b" * 64}  # one of its two inputs
    assert producer.on_input("a" * 64, 1) == [Execute()]
    producer.on_input_failed("b" * 64, 0, "its node went away", 1.0)
    assert producer.awaiting == set() and producer.queued() == 0
    # failed, then asked again after the failure is forgotten: it waits for its input again
    producer.on_request("b" * 64, 1.0 + producer.failure_memory, known=True, stored=False, n_inputs=1)
    assert producer.awaiting == {"b" * 64}
