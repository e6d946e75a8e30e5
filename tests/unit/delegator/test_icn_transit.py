"""Static ICN over a multi-hop topology: each node routes what it needs toward the next node on the
path, and every node in between is given the route of the results that cross it."""

from __future__ import annotations

from pathlib import Path

from twisted.internet.task import Clock

from sflow.delegator.icn import IcnDispatch, IcnOptions
from sflow.jsonio import load_job
from sflow.model.workflow import TaskId
from sflow.sfc.names import build_specs

JOB = Path(__file__).resolve().parents[3] / "jobs" / "fork-join.json"
LINE = ["a:1", "b:1", "c:1", "d:1"]  # a - b - c - d


def next_hop(here: str, there: str) -> str:
    i, j = LINE.index(here), LINE.index(there)
    return LINE[i + (1 if j > i else -1)]


def test_inputs_go_to_the_next_hop_and_transit_nodes_get_routes(tmp_path: Path) -> None:
    job = load_job(JOB)
    specs = build_specs(job, {})
    # 1 on a; 2–5 on d; 6 on a: results of 1 go a → d (through b, c), results of 2–5 come back.
    placements = {TaskId(1): "a:1", TaskId(6): "a:1", **{TaskId(t): "d:1" for t in (2, 3, 4, 5)}}
    dispatch = IcnDispatch(Clock(), b"s" * 32, job, specs, placements, LINE, lambda a: None,  # type: ignore[arg-type,return-value]
                           IcnOptions(tmp_path, "x", None), (), next_hop=next_hop)
    installs = dispatch._installs()
    (six,) = [i for i in installs["a:1"] if i.spec.task == 6]
    assert set(six.input_nodes) == {"b:1"}  # a asks b for what d made
    (two,) = [i for i in installs["d:1"] if i.spec.task == 2]
    assert two.input_nodes == ("c:1",)
    transit = dispatch._transit()
    assert sorted(transit) == ["b:1", "c:1"]
    one = specs[TaskId(1)].prefix.to_uri()
    # Interests travel toward the producer: 1's name from d via c and b to a, 5's from a via b and c to d.
    assert [one, "a:1"] in transit["b:1"] and [one, "b:1"] in transit["c:1"]
    five = specs[TaskId(5)].prefix.to_uri()
    assert [five, "d:1"] in transit["c:1"] and [five, "c:1"] in transit["b:1"]
    # Without a topology nothing crosses other nodes.
    direct = IcnDispatch(Clock(), b"s" * 32, job, specs, placements, LINE, lambda a: None,  # type: ignore[arg-type,return-value]
                         IcnOptions(tmp_path, "x", None), ())
    assert direct._transit() == {} and {i.spec.task: i.input_nodes for i in direct._installs()["a:1"]}[6] == ("d:1",) * 4
