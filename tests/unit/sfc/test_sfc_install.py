"""Installing functions on nodes: batches, and descriptions too large for one Interest sent in
parts and reassembled by the node (sflow.sfc.install), alone and through in-process clusters."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sfc_harness import SECRET, job, make_cluster
from twisted.internet.defer import Deferred

from sflow.errors import ProtocolError
from sflow.icn.app import Endpoint
from sflow.icn.packet import make_interest
from sflow.icn.signature import HmacSha256Signer
from sflow.model.workflow import TaskId
from sflow.sfc.freshness import RunKey, RunSigner
from sflow.sfc.install import Reassembly, batches, decode_part, split
from sflow.sfc.names import CTL_PREFIX, KEY_NAME, installed_to_wire
from sflow.sfc.service import MAX_INSTALL_PARAMS


def parts_of(blob: bytes, limit: int = 200, transfer: bytes = b"t1") -> list[Any]:
    return [decode_part(msgpack.unpackb(p, raw=False)) for p in split(blob, transfer, limit)]


def test_batches_keep_order_stay_under_the_limit_and_put_an_oversize_entry_alone() -> None:
    entries: list[dict[str, Any]] = [{"n": i, "pad": "x" * (i % 7) * 20} for i in range(200)]
    entries.insert(50, {"n": "big", "pad": "y" * 5000})
    out = batches(entries, 1000)
    decoded = [msgpack.unpackb(b, raw=False) for b in out]
    assert [e for batch in decoded for e in batch] == entries
    assert [len(b) > 1000 for b in out].count(True) == 1
    assert [batch for batch in decoded if len(msgpack.packb(batch)) > 1000] == [[entries[50]]]
    # greedy: no two neighbouring batches would have fitted in one
    for a, b in zip(decoded, decoded[1:]):
        assert len(msgpack.packb(a + b[:1])) > 1000


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=5000), st.integers(min_value=170, max_value=900), st.randoms())
def test_parts_in_any_order_with_repeats_give_the_batch_back_once(blob: bytes, limit: int, rnd: random.Random) -> None:
    encoded = split(blob, b"x" * 12, limit)
    assert all(len(p) <= limit for p in encoded)
    parts = [decode_part(msgpack.unpackb(p, raw=False)) for p in encoded]
    sent = parts + rnd.sample(parts, k=min(3, len(parts)))
    rnd.shuffle(sent)
    r = Reassembly()
    got = [r.add(p, 0.0).batch for p in sent]
    assert [g for g in got if g is not None] == [blob]
    assert len(r) == 0 and r.pending_bytes == 0
    assert r.add(parts[0], 1.0).received == len(parts)  # sent again later: answered, not installed again


def test_a_part_that_disagrees_with_its_transfer_is_refused() -> None:
    blob = bytes(range(256)) * 4
    r = Reassembly()
    first, second, *_ = parts_of(blob)
    r.add(first, 0.0)
    with pytest.raises(ProtocolError, match="sent twice with different data"):
        r.add(type(first)(first.transfer, 0, first.count, first.size, first.digest, b"other"), 0.0)
    assert len(r) == 0 and r.counters["refused"] == 1
    forged = parts_of(blob[:-1] + b"!", transfer=b"t2")
    forged = [type(p)(p.transfer, p.index, p.count, p.size, hashlib.sha256(blob).digest(), p.data) for p in forged]
    with pytest.raises(ProtocolError, match="do not add up"):
        for p in forged:
            r.add(p, 0.0)
    with pytest.raises(ProtocolError, match="differs from the earlier parts"):
        r.add(second, 0.0)
        r.add(type(second)(second.transfer, 2, second.count + 1, second.size, second.digest, b""), 0.0)


def test_transfers_are_bounded_in_octets_and_number_and_expire() -> None:
    r = Reassembly(max_transfer_bytes=3000, max_pending_bytes=5000, max_transfers=3, expiry=10.0)
    with pytest.raises(ProtocolError, match="3001 octets is over this node's limit of 3000"):
        r.add(parts_of(b"a" * 3001)[0], 0.0)
    a, b = parts_of(b"a" * 2500, transfer=b"a"), parts_of(b"b" * 2500, transfer=b"b")
    r.add(a[0], 0.0)
    r.add(b[0], 1.0)
    assert r.pending_bytes == 5000
    c = parts_of(b"c" * 100, transfer=b"c")
    r.add(c[0], 2.0)  # over the octets: the oldest transfer goes
    assert r.counters["evicted"] == 1 and r.pending_bytes == 2600
    for t in (b"d", b"e"):
        r.add(parts_of(bytes(300), transfer=t)[0], 3.0)
    assert len(r) == 3 and r.counters["evicted"] == 2  # over the number
    r.add(parts_of(bytes(300), transfer=b"f")[0], 13.5)  # the others stopped 10 s ago
    assert len(r) == 1 and r.counters["expired"] == 3 and r.pending_bytes == 300


@pytest.mark.parametrize("raw, field", [
    ([1, 2], "expected a map"),
    ({"id": b"t", "part": 0, "of": 1, "size": 3, "sha256": b"x" * 32}, "'data'"),
    ({"id": b"t", "part": True, "of": 1, "size": 3, "sha256": b"x" * 32, "data": b""}, "'part'"),
    ({"id": b"t", "part": 1, "of": 1, "size": 3, "sha256": b"x" * 32, "data": b""}, "part 1 of 1"),
    ({"id": b"", "part": 0, "of": 1, "size": 3, "sha256": b"x" * 32, "data": b""}, "'id'"),
    ({"id": b"t", "part": 0, "of": 1, "size": 3, "sha256": b"x", "data": b""}, "'sha256'"),
    ({"id": b"t", "part": 0, "of": 9, "size": 3, "sha256": b"x" * 32, "data": b""}, "9 parts for 3 octets"),
])
def test_malformed_parts_are_named(raw: Any, field: str) -> None:
    with pytest.raises(ProtocolError, match=field):
        decode_part(raw)


def wide_fork_join(width: int) -> list[dict[str, Any]]:
    """A start, ``width`` distinct middle functions, and a join of all of them (files and values)."""
    middle = list(range(2, width + 2))
    join = width + 2
    tasks: list[dict[str, Any]] = [{"task_id": 1, "workload": 10, "cmd": "head > ./out/h.txt",
                                    "out_file_list": [{"path": "./out/h.txt", "size": 0.1, "dest_task_id": middle}]}]
    for i in middle:
        tasks.append({"task_id": i, "workload": 10, "cmd": f"part{i} $F^1 > ./out/p{i}.txt",
                      "out_file_list": [{"path": f"./out/p{i}.txt", "size": 0.1,
                                         "dest_task_id": [join] if i % 2 else []}],
                      "out_value": {"val": str(i), "size": 0, "dest_task_id": [] if i % 2 else [join]}})
    args = " ".join(f"$F^{i}" if i % 2 else f"$V^{i}" for i in middle)
    tasks.append({"task_id": join, "workload": 10, "cmd": f"join {args} > ./out/j.txt",
                  "out_file_list": [{"path": "./out/j.txt", "size": 0.1, "dest_task_id": []}]})
    return tasks


@pytest.mark.parametrize("mode", ["icn", "auto"])
def test_a_join_of_hundreds_of_inputs_installs_in_parts_and_runs(tmp_path: Path, mode: str) -> None:
    cluster = make_cluster(tmp_path, vcpus=2)
    j = job(wide_fork_join(200))
    names = sorted(cluster.nodes)
    placements = {t: names[int(t) % 3] for t in j.by_id}
    if mode == "auto":  # every node has every function; the delegator asks the END function's node
        placements = {t: names[0] for t in j.end_tasks}
    dispatch = cluster.dispatch(j, {TaskId(t): n for t, n in placements.items()}, mode=mode, nodes=names)
    trace = cluster.run(dispatch)
    join = j.end_tasks[0]
    installed = {i.spec.task: i for items in dispatch._installs().values() for i in items}
    assert len(msgpack.packb(installed_to_wire(installed[join]))) > 2 * MAX_INSTALL_PARAMS
    assert cluster.executed() == sorted(int(t) for t in j.by_id)
    text = (tmp_path / "out" / "out" / "j.txt").read_text()
    assert text.startswith("join ") and "[200=200]" in text and "part201 " in text
    assert sum(1 for r in trace.tasks if r.where.startswith("executed")) == 202
    receivers = [names[int(join) % 3]] if mode == "icn" else names
    for name in receivers:
        counters = cluster.nodes[name].service.reassembly.counters
        assert counters["completed"] == 1 and counters["refused"] == 0
        assert cluster.nodes[name].service.status()["install_parts"]["pending"] == 0


def test_only_the_cluster_secret_holder_installs_in_parts(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, n=1)
    service = cluster.nodes["n0"].service
    outsider = Endpoint.attach(cluster.nodes["n0"].forwarder)
    entry = {"spec": {"task": 5, "cmd": "x", "image": None, "outputs": [], "inputs": [], "values": [],
                      "remote": []}, "tar": None, "job_id": 1, "workload": 1.0, "input_nodes": [], "run": "r"}
    blob = msgpack.packb([entry] * 40, use_bin_type=True)
    parts = split(blob, b"t", 300)
    wrong = HmacSha256Signer(KEY_NAME, b"w" * 32)
    for part in parts:
        interest = make_interest(CTL_PREFIX.append("install"), app_parameters=part, signer=wrong, lifetime=500)
        d = outsider.express(interest)
        d.addErrback(lambda _f: None)
    cluster.clock.advance(1)
    assert service.counters["refused"] == len(parts) and service.reassembly.counters["parts"] == 0
    right = RunSigner.of(RunKey.for_run("r", cluster.clock.seconds(), 60.0, 30.0), SECRET)  # the run's key
    replies = []
    for part in parts:
        interest = make_interest(CTL_PREFIX.append("install"), app_parameters=part, signer=right)
        replies.append(cluster.wait(outsider.express(interest)))
    answers = [msgpack.unpackb(r.content, raw=False) for r in replies]
    # with what the node holds of each (nothing: neither its result nor any input's)
    assert answers[-1] == {"ok": True, "count": 40, "held": [[False, b""]] * 40}
    assert all(a["ok"] and a["of"] == len(parts) for a in answers[:-1])
    assert service.function(next(iter(service.installed))) is not None


def test_a_node_that_refuses_a_large_description_fails_the_install_naming_it(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, n=1)
    cluster.nodes["n0"].service.reassembly.max_transfer_bytes = 10_000
    j = job(wide_fork_join(400))
    dispatch = cluster.dispatch(j, {t: "n0" for t in j.by_id})
    dispatch.endpoints["n0"] = cluster.wait(cluster.connect_endpoint("n0"))
    with pytest.raises(ProtocolError, match=r"node n0 refused the job's functions \(a description of \d+ octets "
                                            r"in \d+ parts\): install: a batch of \d+ octets is over this node's "
                                            r"limit of 10000"):
        cluster.wait(Deferred.fromCoroutine(dispatch._install_all()))


def test_a_static_node_says_what_it_holds_of_what_is_installed_and_an_autonomous_one_does_not(
        tmp_path: Path) -> None:
    entry = {"spec": {"task": 5, "cmd": "x", "image": None, "outputs": [], "inputs": [], "values": [],
                      "remote": []}, "tar": None, "job_id": 1, "workload": 1.0, "input_nodes": [], "run": "r"}
    answers = {}
    for auto in (False, True):
        cluster = make_cluster(tmp_path / str(auto), n=1, auto=auto)
        signer = RunSigner.of(RunKey.for_run("r", cluster.clock.seconds(), 60.0, 30.0), SECRET)
        interest = make_interest(CTL_PREFIX.append("install"), signer=signer,
                                 app_parameters=msgpack.packb([entry], use_bin_type=True))
        reply = cluster.wait(Endpoint.attach(cluster.nodes["n0"].forwarder).express(interest))
        answers[auto] = msgpack.unpackb(reply.content, raw=False)
    # static mode: the delegator starts what must run from this; autonomous mode has no use for it
    assert answers == {False: {"ok": True, "count": 1, "held": [[False, b""]]}, True: {"ok": True, "count": 1}}
