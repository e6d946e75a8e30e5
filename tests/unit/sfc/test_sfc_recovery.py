"""Recovery of lost nodes in ICN modes: the pure decisions (:class:`IcnRecovery`), and in-process
clusters where a node is killed or goes silent mid-job and the job still finishes with the same
result."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sfc_harness import Cluster, fan_tasks, fork_join_tasks, job, make_cluster
from twisted.internet.task import LoopingCall

from sflow.delegator.icn_recovery import Ask, IcnRecovery, Install
from sflow.delegator.plan import TaskPlacement
from sflow.delegator.recovery import Fail, Replanned
from sflow.model.infra import VcpuId
from sflow.model.workflow import Job, TaskId
from sflow.node.liveness import Heartbeat

T = TaskId
FORK = {T(1): "n0", T(2): "n1", T(3): "n2", T(4): "n0"}


def first_alive(job: Job, alive: frozenset[str]) -> Mapping[TaskId, TaskPlacement]:
    """A placer: everything on the first live node (by name)."""
    node = min(alive)
    return {t.id: TaskPlacement(node, VcpuId(f"{node}-v0"), 0) for t in job.tasks}


def test_static_recovery_places_the_lost_nodes_functions_again_and_reinstalls_their_consumers() -> None:
    j = job(fork_join_tasks())
    recovery = IcnRecovery(j, FORK, ["n0", "n1", "n2"], first_alive, static=True)
    actions = recovery.node_lost("n1", "gone", 3.0)
    replanned, *rest = actions
    assert isinstance(replanned, Replanned) and replanned.node == "n1" and set(replanned.placements) == {T(2)}
    assert replanned.placements[T(2)].node == "n0"
    # 2 runs on n0 now; 4 (on n0) takes its input from there: both installed on n0, nothing else
    assert rest == [Install("n0", (T(2), T(4)))]
    assert recovery.placements == {T(1): "n0", T(2): "n0", T(3): "n2", T(4): "n0"}
    assert recovery.node_lost("n1", "again", 4.0) == []  # known already
    # the END node lost: 1, 2 and 4 move (1 had finished there: its result went with it)
    actions = recovery.node_lost("n0", "gone too", 5.0)
    assert isinstance(actions[0], Replanned) and set(actions[0].placements) == {T(1), T(2), T(4)}
    assert Install("n2", (T(1), T(2), T(3), T(4))) in actions and Ask(T(4), "n2") in actions
    last = recovery.node_lost("n2", "all gone", 6.0)
    assert len(last) == 1 and isinstance(last[0], Fail) and "no node is left" in str(last[0].error)


def test_auto_recovery_only_asks_another_node_for_the_end_result() -> None:
    j = job(fork_join_tasks())
    recovery = IcnRecovery(j, {T(4): "n0"}, ["n0", "n1", "n2"], first_alive, static=False)
    assert recovery.node_lost("n2", "gone", 1.0) == []  # the nodes route around it themselves
    actions = recovery.node_lost("n0", "gone", 2.0)
    assert [type(a) for a in actions] == [Replanned, Ask] and actions[1] == Ask(T(4), "n1")


def _reference(tmp_path: Path, tasks: list[dict[str, Any]], where: dict[TaskId, str]) -> bytes:
    cluster = make_cluster(tmp_path / "ref")
    cluster.run(cluster.dispatch(job(tasks), where, outdir=tmp_path / "ref-out"))
    return (tmp_path / "ref-out" / "out/d.txt").read_bytes()


def _advance(cluster: Cluster, seconds: float) -> None:
    for _ in range(int(seconds / 0.01)):
        cluster.clock.advance(0.01)


def test_static_mode_a_node_killed_mid_job_is_replaced_and_the_job_finishes(tmp_path: Path) -> None:
    expected = _reference(tmp_path, fork_join_tasks(), FORK)
    cluster = make_cluster(tmp_path / "c", delays={2: 5.0, 3: 1.0})
    notices: list[str] = []
    d = cluster.dispatch(job(fork_join_tasks()), FORK, placer=first_alive, notice=notices.append).run()
    _advance(cluster, 1.5)
    assert cluster.nodes["n1"].executor.tasks() == [2]  # running there
    cluster.kill("n1")
    trace = cluster.wait(d)
    assert (tmp_path / "c" / "out" / "out/d.txt").read_bytes() == expected
    (lost,) = trace.events
    assert (lost.kind, lost.node, lost.tasks, lost.placements) == ("node_lost", "n1", (2,), {"2": ["n0", "n0-v0"]})
    assert notices and "node n1 lost" in notices[0] and "2 → n0" in notices[0]
    runs = {r.task: r for r in trace.tasks}
    assert runs[2].node == "n0" and runs[2].where.startswith("executed")
    assert cluster.nodes["n0"].executor.tasks().count(2) == 1 and cluster.nodes["n0"].executor.tasks().count(1) == 1
    # found lost about when it was killed, not at a deadline
    assert lost.time < 2.0


def test_static_mode_a_silent_node_is_lost_by_its_missing_answers(tmp_path: Path) -> None:
    expected = _reference(tmp_path, fork_join_tasks(), FORK)
    cluster = make_cluster(tmp_path / "c", delays={2: 8.0})
    d = cluster.dispatch(job(fork_join_tasks()), FORK, placer=first_alive, heartbeat=Heartbeat(0.5, 3)).run()
    _advance(cluster, 1.0)
    assert cluster.nodes["n1"].executor.tasks() == [2]
    cluster.mute("n1")  # its connections stay open; it answers nothing
    trace = cluster.wait(d, limit=30.0)
    assert (tmp_path / "c" / "out" / "out/d.txt").read_bytes() == expected
    (lost,) = trace.events
    assert lost.node == "n1" and "no answer for" in lost.detail
    assert lost.time <= 1.0 + 0.5 * (3 + 1) + 0.1  # within the heartbeat bound


def test_auto_mode_a_lost_end_node_is_replaced_by_another(tmp_path: Path) -> None:
    width = 4
    cluster = make_cluster(tmp_path, auto=True, vcpus=2, delays={t: 3.0 for t in range(2, width + 2)})
    loop = LoopingCall(cluster.hellos)
    loop.clock = cluster.clock
    loop.start(0.5)
    d = cluster.dispatch(job(fan_tasks(width)), {T(width + 2): "n0"}, mode="auto", nodes=list(cluster.nodes),
                         placer=first_alive).run()
    _advance(cluster, 1.0)
    cluster.kill("n0")
    trace = cluster.wait(d)
    loop.stop()
    assert (tmp_path / "out" / "out/sink.txt").exists()
    runs = {r.task: r for r in trace.tasks}
    assert runs[width + 2].node == "n1" and runs[width + 2].where.startswith("executed")
    assert [e.node for e in trace.events] == ["n0"]


def test_a_busy_node_whose_status_answers_are_late_is_alive_while_it_answers_other_requests(tmp_path: Path) -> None:
    from sflow.sfc.names import CTL_PREFIX

    # Its status answers never come (a node whose reactor answers them too late), but its held
    # answers to the delegator's compute request keep coming: any packet is a sign of life.
    cluster = make_cluster(tmp_path, lifetime_ms=1000, delays={1: 6.0})
    status = CTL_PREFIX.append("status")
    face = cluster.nodes["n1"].service.endpoint.face  # the node's application side
    deliver = face._deliver  # type: ignore[attr-defined]
    dropped: list[Any] = []

    def no_status(kind: str, packet: Any, lp: Any) -> None:
        if kind == "d" and status.is_prefix_of(packet.name):
            dropped.append(packet)
            return
        deliver(kind, packet, lp)

    face._deliver = no_status  # type: ignore[attr-defined]
    tasks = [{"task_id": 1, "workload": 1, "cmd": "echo one > ./o.txt",
              "out_file_list": [{"path": "./o.txt", "size": 0, "dest_task_id": []}]}]
    trace = cluster.run(cluster.dispatch(job(tasks), {T(1): "n1"}, placer=first_alive, heartbeat=Heartbeat(0.5, 3)),
                        limit=30.0)
    assert len(dropped) >= 6  # asked every 0.5 s, never answered
    assert not trace.events  # never declared lost, though silent on status for 6 s (limit 1.5 s)
    assert cluster.nodes["n1"].executor.tasks() == [1]
    assert trace.tasks[0].node == "n1" and trace.tasks[0].where.startswith("executed")
