"""Autonomous placement decisions (pure)."""

from __future__ import annotations

from sflow.sfc.auto import Advert, NeighbourTable, choose, upstream_work


def advert(node: str, free: int = 2, queue: int = 0, speed: float = 1000.0, vcpus: int = 2) -> Advert:
    return Advert(node, vcpus, free, queue, speed, 100.0)


def test_an_idle_faster_neighbour_takes_heavy_work() -> None:
    assert choose(advert("me", speed=1000), [advert("fast", speed=4000)], work=50_000) == "fast"


def test_ties_and_light_work_stay_here() -> None:
    assert choose(advert("me"), [advert("other")], work=10_000) == "me"
    assert choose(advert("me"), [advert("other", speed=1001)], work=0.01) == "me"


def test_load_pushes_work_to_neighbours_and_avoided_ones_are_skipped() -> None:
    busy = advert("me", free=0, queue=6)
    assert choose(busy, [advert("a"), advert("b", queue=1)], work=5000) == "a"
    assert choose(busy, [advert("a"), advert("b", queue=1)], work=5000, avoid=frozenset({"a"})) == "b"
    assert choose(busy, [advert("a")], work=5000, avoid=frozenset({"a"})) == "me"


def test_recent_placements_spread_the_work() -> None:
    me = advert("me", free=0, queue=4)
    assert choose(me, [advert("a"), advert("b")], work=5000, placed={"a": 3}) == "b"


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
    assert [a.node for a in table.fresh(4.5)] == ["c"]


def test_placer_reuses_the_graph_until_a_function_is_installed() -> None:
    # The functions' graph and upstream work are built once per install generation, not once per
    # placement (that was linear in the installed functions for every input of every function).
    from types import SimpleNamespace
    from typing import Any

    from twisted.internet.task import Clock

    from sflow.sfc.hello import AutoPlacer

    def fn(digest: str, workload: float, *preds: str) -> Any:
        inputs = tuple(SimpleNamespace(digest=p, prefix=f"/{p}") for p in preds)
        return SimpleNamespace(workload=workload, spec=SimpleNamespace(digest=digest, inputs=inputs))

    installed = {"a": fn("a", 100.0), "b": fn("b", 10.0, "a"), "c": fn("c", 1.0, "b")}
    calls = []
    generation = [1]

    def functions() -> dict[str, Any]:
        calls.append(1)
        return dict(installed)

    clock = Clock()
    table = NeighbourTable(ttl=10.0, max_neighbours=8)
    me = advert("me", speed=1000.0)
    placer = AutoPlacer(clock, table, lambda: me, functions, lambda: generation[0])
    assert placer(installed["c"], 0, frozenset()) == ""  # alone: here
    assert placer(installed["b"], 0, frozenset()) == ""
    assert len(calls) == 1
    assert placer._upstream_work("b") == 110.0
    installed["z"] = fn("z", 5000.0)
    installed["a"] = fn("a", 100.0, "z")  # (a new function upstream of a)
    generation[0] += 1
    assert placer._upstream_work("b") == 5110.0 and len(calls) == 2
