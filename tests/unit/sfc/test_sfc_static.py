"""Static ICN chaining on in-process clusters: results by name, PIT aggregation, caching, changed
inputs, long functions, lost Interests, failures, deadlines, security."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgpack
import pytest
from twisted.internet.defer import Deferred
from sfc_harness import SECRET, chain_tasks, fired, fork_join_tasks, inline, job, make_cluster, stored_records

from sflow.errors import ExecutionError, JobFailed
from sflow.icn.app import Endpoint
from sflow.icn.name import Name
from sflow.icn.packet import ContentType, make_interest
from sflow.icn.signature import DigestSha256Signer, HmacSha256Signer
from sflow.model.workflow import TaskId
from sflow.sfc.bundle import UNKNOWN, decode_bundle
from sflow.sfc.names import CTL_PREFIX, FN_PREFIX, KEY_NAME, build_specs
from sflow.sfc.service import START_WINDOW


def placements(mapping: dict[int, str]) -> dict[TaskId, str]:
    return {TaskId(k): v for k, v in mapping.items()}


def test_fork_join_runs_each_function_once_and_writes_the_result(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    j = job(fork_join_tasks())
    trace = cluster.run(cluster.dispatch(j, placements({1: "n0", 2: "n1", 3: "n2", 4: "n0"})))
    # Function 1 has two consumers on two nodes: it runs once.
    assert cluster.executed() == [1, 2, 3, 4]
    assert sorted(cluster.nodes["n0"].executor.tasks()) == [1, 4]
    out = (tmp_path / "out" / "out/d.txt").read_bytes()
    assert out.startswith(b"join $F^2 $F^3 > ./out/d.txt|out/d.txt\n")
    assert b"left $V^1 $F^1 > ./out/b.txt[1=4]" in out
    assert {r.task: r.where for r in trace.tasks} == {t: "executed (native)" for t in (1, 2, 3, 4)}
    assert {r.task: r.node for r in trace.tasks} == {1: "n0", 2: "n1", 3: "n2", 4: "n0"}
    # Inputs from other nodes are asked of them directly: no route per function, so the FIB does
    # not grow with jobs.
    def routes() -> dict[str, list[str]]:
        return {n: sorted(str(e.prefix) for e in node.forwarder.fib if str(e.prefix).startswith("/sflow"))
                for n, node in cluster.nodes.items()}

    assert routes() == {n: ["/sflow/ctl", "/sflow/fn"] for n in cluster.nodes}
    cluster.run(cluster.dispatch(job(fork_join_tasks("seq 20")), placements({1: "n0", 2: "n1", 3: "n2", 4: "n0"})))
    assert routes() == {n: ["/sflow/ctl", "/sflow/fn"] for n in cluster.nodes}
    assert cluster.executed() == [1, 1, 2, 2, 3, 3, 4, 4]


def test_second_run_is_answered_from_caches_without_executing(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    j = job(fork_join_tasks())
    where = placements({1: "n0", 2: "n1", 3: "n2", 4: "n1"})
    cluster.run(cluster.dispatch(j, where))
    first = (tmp_path / "out" / "out/d.txt").read_bytes()
    trace = cluster.run(cluster.dispatch(j, where, outdir=tmp_path / "again"))
    assert cluster.executed() == [1, 2, 3, 4]  # nothing more
    assert (tmp_path / "again" / "out/d.txt").read_bytes() == first
    kinds = {r.task: r.where for r in trace.tasks}
    assert kinds[4].startswith("cache hit")
    assert all(not k.startswith("executed") for k in kinds.values())


def test_another_job_computing_the_same_thing_shares_the_results(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    cluster.run(cluster.dispatch(job(fork_join_tasks(), job_id=1), placements({1: "n0", 2: "n1", 3: "n2", 4: "n0"})))
    trace = cluster.run(cluster.dispatch(job(fork_join_tasks(), job_id=2), placements({1: "n0", 2: "n1", 3: "n2", 4: "n0"})))
    assert cluster.executed() == [1, 2, 3, 4]
    assert trace.job_id == 2


def test_a_run_starts_every_function_it_must_compute_at_once_on_its_node(tmp_path: Path) -> None:
    # Told to start (once END is absent), each node begins its functions of the run and asks for
    # their inputs: the whole chain runs without any request from the delegator reaching END.
    cluster = make_cluster(tmp_path, delays={1: 2.0})
    j = job(chain_tasks(3))
    dispatch = cluster.dispatch(j, placements({1: "n0", 2: "n1", 3: "n2"}))
    for name in cluster.nodes:
        dispatch.endpoints[name] = fired(cluster.connect_endpoint(name))
    cluster.wait(Deferred.fromCoroutine(dispatch._install_all()))
    dispatch._start_run()
    dispatch._start_run()  # once per run
    cluster.clock.advance(0.01)
    assert cluster.executed() == [1]  # 2 and 3 wait for their inputs, asked for already
    assert {n: node.service.counters["started"] for n, node in cluster.nodes.items()} == {"n0": 1, "n1": 1, "n2": 1}
    assert all(node.service.counters["compute_requests"] <= 1 for node in cluster.nodes.values())
    for _ in range(300):
        cluster.clock.advance(0.01)
    assert cluster.executed() == [1, 2, 3]
    spec = build_specs(j, {})[TaskId(3)]
    assert spec.digest in cluster.nodes["n2"].service.store
    # The run itself now finds END made; a second run starts nothing (every END result is held).
    cluster.run(dispatch)
    cluster.run(cluster.dispatch(j, placements({1: "n0", 2: "n1", 3: "n2"}), outdir=tmp_path / "again"))
    assert cluster.executed() == [1, 2, 3]
    assert sum(node.service.counters["started"] for node in cluster.nodes.values()) == 3


def test_a_run_starts_only_what_the_requests_from_end_would_reach(tmp_path: Path) -> None:
    # END's result is gone from its node, which still holds its input (obtained in the first run),
    # and so is the first function's: only END is computed again, and only END is started.
    j = job(chain_tasks(3))
    where = placements({1: "n0", 2: "n1", 3: "n2"})
    first = make_cluster(tmp_path)
    first.run(first.dispatch(j, where))
    specs = build_specs(j, {})
    for node, task in (("n2", 3), ("n0", 1)):  # each node stored its function's result, and only that
        results = tmp_path / node / "store" / "results"
        assert [r.digest for r in stored_records(results)] == [specs[TaskId(task)].digest]
        for pack in results.iterdir():
            pack.unlink()
    again = make_cluster(tmp_path)  # the nodes restarted on the same stores
    again.run(again.dispatch(j, where, outdir=tmp_path / "again"))
    assert again.executed() == [3]
    assert {n: node.service.counters["started"] for n, node in again.nodes.items()} == {"n0": 0, "n1": 0, "n2": 1}


def test_a_start_names_result_digests_of_the_run_and_nothing_else(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, n=1)
    j = job(chain_tasks(2))
    dispatch = cluster.dispatch(j, placements({1: "n0", 2: "n0"}))
    endpoint = dispatch.endpoints["n0"] = fired(cluster.connect_endpoint("n0"))
    cluster.wait(Deferred.fromCoroutine(dispatch._install_all()))
    start = CTL_PREFIX.append("start", dispatch.run_id)

    def ask(params: bytes, name: Name = start) -> dict[str, object]:
        return cluster.wait(Deferred.fromCoroutine(dispatch._control(endpoint, name, params)))

    assert ask(b"\x01") == {"ok": False, "error": "start: expected a list of 32-octet result digests"}
    assert ask(msgpack.packb([b"short"])) == {"ok": False, "error": "start: expected a list of 32-octet result digests"}
    assert ask(msgpack.packb([b"x" * 32])) == {"ok": True, "started": 0}  # no such function of this run
    digest = bytes.fromhex(build_specs(j, {})[TaskId(1)].digest)
    assert ask(msgpack.packb([digest]), CTL_PREFIX.append("start", "another")) == {"ok": False,
                                                                                    "error": "key of another run"}
    assert cluster.executed() == []
    assert ask(msgpack.packb([digest, digest])) == {"ok": True, "started": 1}  # once, though named twice
    assert cluster.executed() == [1]


def test_a_changed_input_reexecutes_only_what_is_downstream(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    tasks = fork_join_tasks()
    where = placements({1: "n0", 2: "n1", 3: "n2", 4: "n0"})
    cluster.run(cluster.dispatch(job(tasks), where))
    tasks[2]["cmd"] = "right --changed $F^1 > ./out/c.txt"
    trace = cluster.run(cluster.dispatch(job(tasks), where))
    assert cluster.executed() == [1, 2, 3, 3, 4, 4]
    kinds = {r.task: r.where.split(" (")[0] for r in trace.tasks}
    assert kinds == {1: "cache hit", 2: "cache hit", 3: "executed", 4: "executed"}


def test_an_input_its_producer_held_before_it_was_asked_is_a_cache_hit(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, n=2, delays={1: 1.0, 2: 1.0})
    tasks = chain_tasks(2)
    cluster.run(cluster.dispatch(job(tasks), placements({1: "n0", 2: "n0"})))
    tasks[1]["cmd"] += " --changed"
    trace = cluster.run(cluster.dispatch(job(tasks), placements({1: "n0", 2: "n1"})))
    assert cluster.executed() == [1, 2, 2]
    # n1 asked n0 for 1 to be computed; n0 had it in its store from the first run: a cache hit
    # for n1 as much as a fetch would have been, and n0's result store served it
    assert cluster.nodes["n1"].service.counters["input_cache_hits"] == 1
    assert cluster.nodes["n0"].service.counters["store_hits"] == 1
    assert {r.task: r.where for r in trace.tasks}[1] == "cache hit (result store)"


def test_names_change_downstream_of_a_changed_input_only() -> None:
    tasks = fork_join_tasks()
    before = build_specs(job(tasks), {})
    tasks[2]["cmd"] = "right --changed $F^1 > ./out/c.txt"
    after = build_specs(job(tasks, job_id=99), {})
    same = {t for t in before if before[t].prefix == after[t].prefix}
    assert same == {1, 2}
    assert str(before[TaskId(1)].prefix).startswith("/sflow/fn/seq/")


def test_a_function_longer_than_the_interest_lifetime(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, lifetime_ms=1000, delays={2: 30.0})
    trace = cluster.run(cluster.dispatch(job(chain_tasks(3)), placements({1: "n0", 2: "n1", 3: "n2"})))
    assert cluster.executed() == [1, 2, 3]
    assert trace.makespan >= 30.0
    # The consumer heard "running" and asked again, many times over.
    assert cluster.nodes["n1"].service.counters["executed"] == 1


def test_a_failed_function_fails_the_job_with_its_function_node_status_and_stderr(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, fail={2})
    # The delegator asks n2 (function 4); function 2 fails on n1, two hops up: what the delegator
    # reports is function 2's failure, passed down from node to node, not "input 1 of 2".
    with pytest.raises(JobFailed) as failed:
        cluster.run(cluster.dispatch(job(chain_tasks(4)), placements({1: "n0", 2: "n1", 3: "n2", 4: "n2"})))
    error = failed.value
    assert (error.task_id, error.node, error.exit_code) == (2, "n1", 3)
    assert error.stderr_tail == "task 2 says: no such thing\n"
    assert str(error) == ("function 2 failed on node n1: the command exited with an error (exit status 3)\n"
                          "--- end of stderr ---\ntask 2 says: no such thing")
    assert 3 not in cluster.executed() and 4 not in cluster.executed()


def test_an_unreachable_node_ends_in_a_deadline_error(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    cluster.down.add("n1")
    with pytest.raises(ExecutionError, match="deadline") as failed:
        cluster.run(cluster.dispatch(job(chain_tasks(3)), placements({1: "n0", 2: "n1", 3: "n2"}), timeout=20.0))
    # The error says which node was waiting for what.
    assert "waiting for input from task 2: cannot reach node n1" in str(failed.value)


def test_dropped_interests_are_retransmitted(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    dispatch = cluster.dispatch(job(chain_tasks(3)), placements({1: "n0", 2: "n1", 3: "n2"}))
    cluster.lose_until = 5.0  # every packet between nodes for the first 5 s is lost
    trace = cluster.run(dispatch)
    assert cluster.lost > 0
    assert cluster.executed() == [1, 2, 3]
    assert len(trace.tasks) == 3


def test_unsigned_interest_for_an_uncomputed_result_executes_nothing(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    j = job(chain_tasks(2))
    specs = build_specs(j, {})
    # Install (authenticated) but never ask; then an outsider asks without the secret.
    dispatch = cluster.dispatch(j, placements({1: "n0", 2: "n0"}))
    dispatch.endpoints["n0"] = cluster.wait(cluster.connect_endpoint("n0"))
    cluster.wait(Deferred.fromCoroutine(dispatch._install_all()))
    outsider = Endpoint.attach(cluster.nodes["n0"].forwarder)
    prefix = specs[TaskId(2)].prefix
    wrong_key = HmacSha256Signer(KEY_NAME, b"x" * 32)
    for interest in (
        make_interest(prefix, must_be_fresh=True, app_parameters=b""),
        make_interest(prefix, must_be_fresh=True, app_parameters=b"", signer=wrong_key),
        make_interest(prefix, must_be_fresh=True, app_parameters=b"", signer=DigestSha256Signer()),
        make_interest(prefix, can_be_prefix=True, must_be_fresh=True),
    ):
        data = cluster.wait(outsider.express(interest))
        assert data.content_type == ContentType.NACK
    cluster.clock.advance(10)
    assert cluster.executed() == []
    assert cluster.nodes["n0"].service.counters["refused"] == 3


def test_results_survive_a_restart_through_the_disk_store(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    j = job(chain_tasks(2))
    where = placements({1: "n0", 2: "n0"})
    cluster.run(cluster.dispatch(j, where))
    again = make_cluster(tmp_path)  # same directories: a restarted cluster, empty content stores
    trace = again.run(again.dispatch(j, where, outdir=tmp_path / "again"))
    assert again.executed() == []
    assert trace.tasks[-1].where.startswith("cache hit")
    assert (tmp_path / "again" / "out/2.txt").read_bytes() == (tmp_path / "out" / "out/2.txt").read_bytes()


def test_bundles_are_signed_and_segmented(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    tasks = chain_tasks(1)
    j = job(tasks)
    cluster.run(cluster.dispatch(j, placements({1: "n0"})))
    spec = build_specs(j, {})[TaskId(1)]
    served = fired(cluster.nodes["n0"].service.store.get(spec.digest, spec.program))
    assert served is not None
    from sflow.icn.security import verify_data

    assert verify_data(served.segment(0), SECRET)
    assert not verify_data(served.segment(0), b"y" * 32)
    assert decode_bundle(served.content) == {"out/1.txt": (tmp_path / "out" / "out/1.txt").read_bytes()}


def test_an_input_from_another_node_is_held_and_served_there_without_a_file(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    j = job(chain_tasks(2))
    cluster.run(cluster.dispatch(j, placements({1: "n0", 2: "n1"})))
    specs = build_specs(j, {})
    first, second = specs[TaskId(1)], specs[TaskId(2)]
    # n1 holds the input it obtained from n0 (in memory: n0 has the file), and its own result on disk
    assert [r.digest for r in stored_records(tmp_path / "n1" / "store" / "results")] == [second.digest]
    assert not list((tmp_path / "n1" / "store" / "results").glob("*.bundle"))
    assert first.digest in cluster.nodes["n1"].service.store
    # anyone asking n1 for it by name gets it from n1, with n0 gone
    cluster.kill("n0")
    outsider = Endpoint.attach(cluster.nodes["n1"].forwarder)
    data = cluster.wait(outsider.express(make_interest(first.prefix, can_be_prefix=True, must_be_fresh=True)))
    served = fired(cluster.nodes["n0"].service.store.get(first.digest, first.program))
    assert data.content == served.segment(0).content


def test_an_input_is_asked_for_at_once_without_a_fetch(tmp_path: Path) -> None:
    # No cache between a node and its own producer can hold a result the node does not hold, and
    # another node is asked over its own face: its producer answers a compute request from its
    # store as a fetch would. Either way the node asks for the input to be computed straight away;
    # its own producer, directly, with no Interest.
    cluster = make_cluster(tmp_path, delays={1: 1.0, 2: 1.0})
    j = job(chain_tasks(3))
    specs = build_specs(j, {})
    fetches: dict[int, int] = {}
    computes: dict[int, int] = {}
    for node in cluster.nodes.values():
        original = node.service._on_fn

        def counting(interest, original=original):  # type: ignore[no-untyped-def]
            spec = next(s for s in specs.values() if s.prefix.is_prefix_of(interest.name))
            seen = fetches if len(interest.name) != 5 else computes  # a fetch by name, or a compute request
            seen[int(spec.task)] = seen.get(int(spec.task), 0) + 1
            return original(interest)

        node.service.endpoint.route(FN_PREFIX, counting, register=False)
    cluster.run(cluster.dispatch(j, placements({1: "n0", 2: "n0", 3: "n1"})))
    assert cluster.executed() == [1, 2, 3]
    assert fetches == {3: 1}  # by the delegator (a cache on its way may hold an END result)
    assert computes == {2: 1, 3: 1}  # 2 by n1, 3 by the delegator; 1 by n0 of itself, directly
    n0 = cluster.nodes["n0"].service
    assert n0.counters["compute_requests"] == 2 and not n0._here  # (1 by itself, 2 by n1)


def test_a_function_that_fails_on_the_node_of_its_consumer_fails_the_job_with_its_status_and_stderr(
        tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, fail={2})
    with pytest.raises(JobFailed) as failed:
        cluster.run(cluster.dispatch(job(chain_tasks(3)), placements({1: "n0", 2: "n0", 3: "n0"})))
    error = failed.value
    assert (error.task_id, error.node, error.exit_code) == (2, "n0", 3)
    assert error.stderr_tail == "task 2 says: no such thing\n"
    assert 3 not in cluster.executed()
    assert not cluster.nodes["n0"].service._here


def test_a_function_placed_here_whose_run_has_ended_is_not_run_for_a_request_of_that_run(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, n=1)
    j = job(chain_tasks(2))
    dispatch = cluster.dispatch(j, placements({1: "n0", 2: "n0"}))
    dispatch.endpoints["n0"] = fired(cluster.connect_endpoint("n0"))
    cluster.wait(Deferred.fromCoroutine(dispatch._install_all()))
    service = cluster.nodes["n0"].service
    first = build_specs(j, {})[TaskId(1)]
    signer = service._signer_for(service.function(first.digest))
    service.guard.end(dispatch.run_id, signer.run_key.not_after_ms)
    status = fired(service._request_here(first.digest, first.program, signer))
    assert status.state == UNKNOWN and "ended" in status.reason
    assert cluster.executed() == [] and service.counters["refused"] == 1


def test_two_consumers_of_one_function_are_aggregated_in_the_pit(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, delays={1: 2.0})
    j = job(fork_join_tasks())
    where = placements({1: "n0", 2: "n1", 3: "n2", 4: "n1"})
    dispatch = cluster.dispatch(j, where)
    d = dispatch.run()
    producer = cluster.nodes["n0"].service
    prefix = build_specs(j, {})[TaskId(1)].prefix
    seen: list[str] = []
    original = producer._on_compute

    def counting(interest, program, digest):  # type: ignore[no-untyped-def]
        seen.append(digest)
        return original(interest, program, digest)

    producer._on_compute = counting  # type: ignore[method-assign]
    trace = cluster.wait(d)
    assert cluster.executed() == [1, 2, 3, 4]
    # n1 and n2 each asked n0 for function 1; n0's forwarder passed one request to the producer.
    digest = str(prefix[3].value.decode())
    assert seen.count(digest) == 1
    assert cluster.nodes["n0"].forwarder.counters.n_in_interests >= 2
    assert len(trace.tasks) == 4


def test_the_result_store_is_bounded_and_keeps_the_recently_used(tmp_path: Path) -> None:
    from sflow.sfc.consumer import cluster_signer
    from sflow.sfc.store import ResultStore

    store = ResultStore(tmp_path, 250, cluster_signer(SECRET), 1000, blocking=inline)
    for name in ("a", "b", "c"):
        store.put(name * 64, "p", name.encode() * 100)
    assert "a" * 64 not in store and "b" * 64 in store and "c" * 64 in store
    assert fired(store.get("b" * 64, "p")) is not None  # b is now the most recent
    store.put("d" * 64, "p", b"d" * 100)
    assert sorted(d[0] for d in store._entries) == ["b", "d"]
    assert sorted(r.digest[0] for r in stored_records(tmp_path / "results")) == ["b", "d"]  # a and c are dead
    reopened = ResultStore(tmp_path, 250, cluster_signer(SECRET), 1000, blocking=inline)
    assert reopened.total == 200 and "d" * 64 in reopened
    assert fired(reopened.get("d" * 64, "p")).content == b"d" * 100


def test_a_small_result_comes_with_its_ready_status(tmp_path: Path) -> None:
    # A consumer that asked for a function to be computed gets the (small) result in the ready
    # status: the nodes fetch none of theirs. A large result is still fetched by its segments.
    cluster = make_cluster(tmp_path)
    tasks = chain_tasks(3)
    tasks.append({"task_id": 4, "workload": 1000, "cmd": "big " + "x" * 5000 + " $F^3 > ./out/4.txt",
                  "out_file_list": [{"path": "./out/4.txt", "size": 1.0, "dest_task_id": []}]})
    tasks[2]["out_file_list"][0]["dest_task_id"] = [4]
    j = job(tasks)
    fetches: dict[int, int] = {}
    for name, node in cluster.nodes.items():
        service = node.service
        original = service._on_fn

        def counting(interest, original=original):  # type: ignore[no-untyped-def]
            if len(interest.name) != 5:  # not a compute request: a fetch by name
                spec = next(s for s in build_specs(j, {}).values() if s.prefix.is_prefix_of(interest.name))
                fetches[int(spec.task)] = fetches.get(int(spec.task), 0) + 1
            return original(interest)

        service.endpoint.route(FN_PREFIX, counting, register=False)
    cluster.run(cluster.dispatch(j, placements({1: "n0", 2: "n1", 3: "n2", 4: "n0"})))
    assert cluster.executed() == [1, 2, 3, 4]
    assert {t: fetches.get(t, 0) for t in (1, 2, 3)} == {1: 0, 2: 0, 3: 0}
    # (by the delegator) "absent", then its segments: its result is larger than a status carries
    assert fetches[4] >= 2
    assert (tmp_path / "out" / "out/4.txt").exists()


def test_a_node_that_does_not_answer_the_install_is_named_and_the_run_closes_cleanly(tmp_path: Path) -> None:
    from sflow.errors import IcnError

    cluster = make_cluster(tmp_path)
    silent = cluster.nodes["n1"].service
    answer = silent._on_ctl
    silent.endpoint.route(CTL_PREFIX, lambda interest: None if interest.name[2].value == b"install" else answer(interest),
                          register=False)  # a node that hangs on the install
    dispatch = cluster.dispatch(job(chain_tasks(3)), placements({1: "n0", 2: "n1", 3: "n2"}))
    with pytest.raises(IcnError, match=r"^node n1 did not answer the installation of the job's functions: "
                                       r"Interest /sflow/ctl/install/params-sha256=[0-9a-f]{64} timed out"):
        cluster.wait(dispatch.run())
    connections = list(dispatch.endpoints.values())
    assert len(connections) == 3
    dispatch.close()  # closing them opens none again (it raised "dictionary changed size" when it did)
    cluster.clock.advance(1.0)
    assert all(e.closed.called for e in connections) and list(dispatch.endpoints.values()) == connections
    assert cluster.executed() == []


def test_nodes_that_do_not_answer_for_their_events_delay_the_report_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The delegator asks every node for its events at once: two nodes that stop answering cost
    the report one timeout (three Interest lifetimes: the request and two retries), not two; the
    node that answers gives all its events."""
    cluster = make_cluster(tmp_path)
    j = job(chain_tasks(3))
    dispatch = cluster.dispatch(j, placements({1: "n0", 2: "n1", 3: "n2"}))
    for node in cluster.nodes:
        dispatch.endpoints[node] = fired(cluster.connect_endpoint(node))
    cluster.wait(Deferred.fromCoroutine(dispatch._install_all()))
    first = bytes.fromhex(build_specs(j, {})[TaskId(1)].digest)
    started = cluster.wait(Deferred.fromCoroutine(dispatch._control(
        dispatch.endpoints["n0"], CTL_PREFIX.append("start", dispatch.run_id), msgpack.packb([first]))))
    assert started == {"ok": True, "started": 1}
    cluster.clock.advance(1.0)
    assert cluster.executed() == [1]
    cluster.mute("n1")
    cluster.mute("n2")
    start = cluster.clock.seconds()
    events = cluster.wait(Deferred.fromCoroutine(dispatch._events()))
    elapsed = cluster.clock.seconds() - start
    timeout = 3 * cluster.config.icn.interest_lifetime_ms / 1000.0
    assert timeout <= elapsed < 1.5 * timeout, elapsed
    assert [e["task"] for e in events["n0"] if e["kind"] == "executed"] == [1]
    assert events["n1"] == [] and events["n2"] == []
    assert "event=no_events node=n1" in caplog.text and "event=no_events node=n2" in caplog.text


def test_a_function_is_on_its_way_before_its_start_is_logged_and_its_consumers_answered_before_its_end(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A log line costs up to 0.1 ms on a busy CPU, and each function of a chain waited on two:
    the function is started, and the function waiting for its result is answered, before its
    lines are logged. Both lines are still there, in order."""
    import logging
    import time

    caplog.set_level(logging.INFO)
    cluster = make_cluster(tmp_path, delays={1: 1.0, 2: 1.0})
    n0 = cluster.nodes["n0"]

    def logged(event: str, task: int) -> bool:
        return any(f"event={event} " in r.getMessage() and f" task={task} " in r.getMessage() for r in caplog.records)

    seen: dict[str, bool] = {}
    run = n0.executor.run

    def starting(request):  # type: ignore[no-untyped-def]
        seen[f"start logged when task {request.task_id} was started"] = logged("function_start", request.task_id)
        return run(request)

    n0.executor.run = starting  # type: ignore[method-assign]
    # n0 answers the request held for task 1's result (from task 2 on n1): was task 1's end logged?
    answer_held = n0.service._answer_held

    answered: list[float] = []

    def answering(status, held, here):  # type: ignore[no-untyped-def]
        if held:
            seen["end logged when its consumer was answered"] = logged("function_end", 1)
            answered.append(time.time())
        return answer_held(status, held, here)

    n0.service._answer_held = answering  # type: ignore[method-assign]
    cluster.run(cluster.dispatch(job(chain_tasks(2)), placements({1: "n0", 2: "n1"})))
    assert seen == {"start logged when task 1 was started": False, "end logged when its consumer was answered": False}
    records = [r for r in caplog.records if " task=1 " in r.getMessage() and r.getMessage().startswith("event=function_")]
    assert [r.getMessage().split()[0] for r in records] == ["event=function_start", "event=function_end"]
    # the end's line bears the time of the end, not of its writing: before its consumer heard of it
    # (logs read across nodes keep the order of causes and effects)
    assert records[1].created <= answered[0]


def test_the_delegator_connects_to_every_node_at_once_and_names_the_first_it_cannot_reach(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    dispatch = cluster.dispatch(job(chain_tasks(3)), placements({1: "n0", 2: "n1", 3: "n2"}))
    asked: list[str] = []
    answers: dict[str, Deferred[Endpoint]] = {}

    def connect(node: str) -> Deferred[Endpoint]:
        asked.append(node)
        answers[node] = Deferred()
        return answers[node]

    dispatch.connect = connect
    running = dispatch.run()
    failed: list[Any] = []
    running.addErrback(failed.append)
    assert asked == ["n0", "n1", "n2"]  # all asked before any answered
    answers["n2"].errback(ConnectionRefusedError("n2 refused"))
    answers["n0"].callback(Endpoint.attach(cluster.nodes["n0"].forwarder))
    assert not failed  # the run waits for every answer
    answers["n1"].errback(ConnectionRefusedError("n1 refused"))
    cluster.clock.advance(1.0)
    assert len(failed) == 1
    assert "cannot reach the forwarder of node n1: n1 refused" in str(failed[0].value)  # first in order
    assert list(dispatch.endpoints) == ["n0"]  # kept, to be closed with the run


def test_a_start_asks_for_the_inputs_of_a_few_functions_at_a_time_and_of_the_others_as_they_get_theirs(
        tmp_path: Path) -> None:
    # A chain of 40 over two nodes: each function of n1 takes its input from n0. Were every started
    # function to ask for its input at once, n0 would be handed 20 requests at the start of the
    # run, all at the same moment, while the first function runs; the start asks for a few.
    cluster = make_cluster(tmp_path, n=2, delays={1: 5.0})
    j = job(chain_tasks(40))
    dispatch = cluster.dispatch(j, placements({t: f"n{(t - 1) % 2}" for t in range(1, 41)}))
    running = dispatch.run()
    for _ in range(100):  # one clock second: the first function is still running
        cluster.clock.advance(0.01)
    n0, n1 = cluster.nodes["n0"].service, cluster.nodes["n1"].service
    assert n1.counters["started"] == 20 and n0.counters["started"] == 20
    assert n0.counters["compute_requests"] == START_WINDOW  # n1 asks for 8 inputs, no more
    assert [len(unasked) for unasked in n1._unasked.values()] == [20 - START_WINDOW]
    assert n1.status()["start_unasked"] == 20 - START_WINDOW
    # A consumer that asks meanwhile is told why (a status's reason): the last of n1's functions,
    # asked for by the delegator, as END.
    last = build_specs(j, {})[TaskId(40)].digest
    assert n1._waiting[last].startswith("its inputs not yet asked for: a start asks for those of 8 ")
    assert build_specs(j, {})[TaskId(2)].digest not in n1._waiting  # asking: no such reason
    trace = cluster.wait(running)
    assert cluster.executed() == list(range(1, 41))
    assert trace.status == "ok"
    assert not n0._unasked and not n1._unasked
    assert n1.status()["start_unasked"] == 0


def test_one_runs_functions_never_wait_behind_anothers_to_ask_for_their_inputs(tmp_path: Path) -> None:
    # Run A's first function takes long: A's functions on n1 fill A's window, waiting. Run B,
    # started meanwhile on the same nodes, asks for its own inputs and ends first.
    cluster = make_cluster(tmp_path, n=2, delays={1: 50.0}, vcpus=2)
    where = placements({t: f"n{(t - 1) % 2}" for t in range(1, 31)})
    slow = cluster.dispatch(job(chain_tasks(30, prefix="slow")), where, outdir=tmp_path / "slow")
    slow_run = slow.run()
    cluster.clock.advance(1.0)
    n1 = cluster.nodes["n1"].service
    assert [len(unasked) for unasked in n1._unasked.values()] == [15 - START_WINDOW]
    quick_tasks = chain_tasks(30, prefix="quick")  # as task ids 101 to 130 (1 is the slow one)
    for t in quick_tasks:
        t["task_id"] += 100
        t["cmd"] = re.sub(r"\$F\^(\d+)", lambda m: f"$F^{int(m.group(1)) + 100}", t["cmd"])
        for f in t["out_file_list"]:
            f["dest_task_id"] = [d + 100 for d in f["dest_task_id"]]
    quick = cluster.dispatch(job(quick_tasks), placements({t + 100: f"n{(t - 1) % 2}" for t in range(1, 31)}),
                             outdir=tmp_path / "quick")
    quick_trace = cluster.wait(quick.run(), limit=40.0)
    assert quick_trace.status == "ok" and not slow_run.called  # B ended while A still waits
    assert cluster.wait(slow_run).status == "ok"
    assert len(cluster.executed()) == 60


def test_the_start_goes_before_ends_result_is_first_asked_for(tmp_path: Path) -> None:
    # What END's node said it holds at installation decides the start: no round trip to ask END's
    # node first whether it has the result.
    cluster = make_cluster(tmp_path)
    j = job(chain_tasks(3))
    end_prefix = build_specs(j, {})[TaskId(3)].prefix
    service = cluster.nodes["n2"].service
    seen: list[str] = []
    on_fn, start_run = service._on_fn, service._start_run

    def spy_fn(interest: Any) -> Any:
        if end_prefix.is_prefix_of(interest.name):
            seen.append("END asked for")
        return on_fn(interest)

    def spy_start(interest: Any, run_key: Any) -> Any:
        seen.append("start")
        return start_run(interest, run_key)

    service._on_fn, service._start_run = spy_fn, spy_start  # type: ignore[method-assign]
    service.endpoint.route(FN_PREFIX, spy_fn, register=False)
    trace = cluster.run(cluster.dispatch(j, placements({1: "n0", 2: "n1", 3: "n2"})))
    assert trace.status == "ok" and cluster.executed() == [1, 2, 3]
    assert seen[0] == "start" and "END asked for" in seen
