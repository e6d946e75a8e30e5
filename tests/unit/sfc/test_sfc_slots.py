"""A node's vCPU slots in ICN chaining: at most one function per slot, the lowest free slot first,
the slot reported in the trace under the environment's vCPU name."""

from __future__ import annotations

from pathlib import Path

from sfc_harness import fork_join_tasks, job, make_cluster

from sflow.model.infra import VcpuId
from sflow.model.schedule import Schedule, Slot
from sflow.model.workflow import TaskId
from sflow.sfc.slots import VcpuSlots


def test_slots_are_given_lowest_first_and_passed_to_the_first_waiting() -> None:
    slots: VcpuSlots[str] = VcpuSlots(2)
    assert (slots.acquire("a"), slots.acquire("b"), slots.acquire("c"), slots.acquire("d")) == (0, 1, None, None)
    assert (slots.free, slots.waiting) == (0, 2)
    assert slots.release(1) == ("c", 1)
    assert slots.release(0) == ("d", 0)
    assert slots.release(0) is None and slots.release(1) is None
    assert slots.acquire("e") == 0 and slots.free == 1


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_functions_on_a_node_share_its_vcpus_and_the_trace_names_them(tmp_path: Path) -> None:
    # Functions 2 and 3 both run on n1; with one vCPU they run one after the other on it.
    one = make_cluster(tmp_path / "one", delays={2: 5.0, 3: 5.0})
    names = {"n1": ("0^1^0^0^0",)}
    trace = one.run(one.dispatch(job(fork_join_tasks()), {TaskId(1): "n0", TaskId(2): "n1", TaskId(3): "n1",
                                                         TaskId(4): "n2"}, vcpu_names=names))
    runs = {r.task: r for r in trace.tasks}
    assert runs[2].vcpu == runs[3].vcpu == "0^1^0^0^0"
    assert not _overlap((runs[2].start, runs[2].finish), (runs[3].start, runs[3].finish))
    assert runs[1].vcpu == "vCPU 0"  # n0 has no names from the environment: its slot number

    # With two vCPUs, they run side by side, one on each.
    two = make_cluster(tmp_path / "two", delays={2: 5.0, 3: 5.0}, vcpus=2)
    schedule = Schedule("test", {TaskId(t): Slot(TaskId(t), VcpuId("v"), float(t), float(t) + 1) for t in (1, 2, 3, 4)})
    trace = two.run(two.dispatch(job(fork_join_tasks()), {TaskId(1): "n0", TaskId(2): "n1", TaskId(3): "n1",
                                                         TaskId(4): "n2"}, schedule=schedule,
                                 vcpu_names={"n1": ("a", "b")}))
    runs = {r.task: r for r in trace.tasks}
    assert {runs[2].vcpu, runs[3].vcpu} == {"a", "b"}
    assert _overlap((runs[2].start, runs[2].finish), (runs[3].start, runs[3].finish))
    # The schedule's prediction is on every row (icn mode).
    assert all((r.predicted_start, r.predicted_finish) == (float(r.task), float(r.task) + 1) for r in trace.tasks)


def test_waiting_functions_take_free_slots_in_priority_order_then_arrival() -> None:
    slots: VcpuSlots[str] = VcpuSlots(1)
    assert slots.acquire("running", 9.0) == 0
    for key, priority in (("late", 5.0), ("first", 1.0), ("tie-a", 3.0), ("tie-b", 3.0)):
        assert slots.acquire(key, priority) is None
    order = []
    while (nxt := slots.release(0)) is not None:
        order.append(nxt[0])
    assert order == ["first", "tie-a", "tie-b", "late"]
    assert slots.busy == 0 and slots.free == 1


def test_a_node_with_more_work_than_vcpus_queues_it_in_schedule_order_and_says_so(tmp_path: Path) -> None:
    # Six functions on one node with two vCPUs: two run, four wait in the order of the schedule's
    # start times (here the reverse of their ids), and the node reports its queue.
    from sfc_harness import fan_tasks

    width = 6
    cluster = make_cluster(tmp_path, n=1, vcpus=2, delays={t: 1.0 for t in range(2, width + 2)})
    starts = {1: 0.0, 2: 1.0, 3: 1.0, 4: 6.0, 5: 5.0, 6: 4.0, 7: 3.0, 8: 9.0}
    schedule = Schedule("test", {TaskId(t): Slot(TaskId(t), VcpuId("v"), s, s + 1) for t, s in starts.items()})
    d = cluster.dispatch(job(fan_tasks(width)), {TaskId(t): "n0" for t in starts}, schedule=schedule).run()
    service = cluster.nodes["n0"].service
    seen = []
    for _ in range(50):
        cluster.clock.advance(0.01)
        seen.append((service.status()["running"], service.status()["queued"]))
    assert (2, 4) in seen  # two run, four wait, and the node says so (its hellos carry the same)
    assert service.advert().queue == 4 and service.advert().free == 0
    trace = cluster.wait(d)
    assert cluster.nodes["n0"].executor.tasks() == [1, 2, 3, 7, 6, 5, 4, 8]  # the order they started in
    runs = [r for r in trace.tasks if 2 <= r.task <= width + 1]
    for r in runs:  # never more than two at once
        assert sum(1 for o in runs if o.start <= r.start < o.finish) <= 2
