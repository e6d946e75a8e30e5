"""Measured costs: which measurement a task takes, how hosts and links resolve, the costs file, and
every scheduler and the validator on problems built with them."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sched_builders import environments, jobs, make_env
from sflow.errors import InputError
from sflow.jsonio import costs_from_dict, costs_to_dict, job_from_dict, load_costs
from sflow.model.costs import CostModel, FunctionCosts, HostCosts, LinkCosts, MeasuredCosts, function_key
from sflow.model.infra import Environment, VcpuId
from sflow.model.workflow import Job, TaskId
from sflow.sched.problem import Problem
from sflow.sched.registry import get_scheduler, names
from sflow.sched.simulate import replay_schedule
from sflow.sched.validate import find_violations, validate_schedule

# make_env: host h has VM "vm{h}" at 10.0.0.{h+1} (no port), vCPUs "0^{h}^0^{k}^0".
ENV = make_env([[1000, 1000], [2000], [500]])
V0, V1, V2, V3 = (VcpuId(v) for v in ("0^0^0^0^0", "0^0^0^1^0", "0^1^0^0^0", "0^2^0^0^0"))


def job_with(cmds: list[str], job_id: int = 7, image: str | None = "img") -> Job:
    """A chain 1 → 2 → … whose task k runs ``cmds[k-1]`` and sends 10 MB (./o<k>) on."""
    tasks = []
    for k, cmd in enumerate(cmds, start=1):
        t: dict[str, object] = {"task_id": k, "workload": 1000 * k, "cmd": cmd}
        if image is not None:
            t["docker-imagename"] = image
        if k < len(cmds):
            t["out_file_list"] = [{"path": f"./o{k}", "size": 10, "dest_task_id": [k + 1]}]
        tasks.append(t)
    return job_from_dict({"job_id": job_id, "task_list": tasks}, "<job>")


def fn(job: Job, tid: int, seconds: dict[str, list[float]], outputs: dict[str, int] | None = None,
       keyed: bool = True) -> FunctionCosts:
    task = job.by_id[TaskId(tid)]
    return FunctionCosts(job.id, tid, function_key(task) if keyed else None, "x",
                         {h: tuple(v) for h, v in seconds.items()}, outputs or {})


def costs(functions: list[FunctionCosts], hosts: list[HostCosts] | None = None,
          links: list[LinkCosts] | None = None) -> MeasuredCosts:
    return MeasuredCosts(tuple(functions), tuple(hosts or ()), tuple(links or ()))


# -- which measurement ---------------------------------------------------------------------------


def test_function_key_ignores_predecessor_numbers_but_not_the_command_or_image() -> None:
    a = job_with(["gen", "wc $F^1 > ./out"])
    b = job_from_dict({"job_id": 9, "task_list": [
        {"task_id": 41, "workload": 1, "cmd": "gen", "docker-imagename": "img",
         "out_file_list": [{"path": "./o", "size": 1, "dest_task_id": [42]}]},
        {"task_id": 42, "workload": 1, "cmd": "wc $F^41 > ./out", "docker-imagename": "img"}]}, "<b>")
    assert function_key(a.by_id[TaskId(2)]) == function_key(b.by_id[TaskId(42)])
    assert function_key(a.by_id[TaskId(1)]) != function_key(a.by_id[TaskId(2)])
    other_image = job_with(["gen", "wc $F^1 > ./out"], image="other")
    assert function_key(a.by_id[TaskId(2)]) != function_key(other_image.by_id[TaskId(2)])
    assert len(function_key(a.by_id[TaskId(1)])) == 32


def test_same_job_renumbered_job_and_changed_function() -> None:
    job = job_with(["gen", "sort $F^1", "wc $F^2"])
    measured = costs([fn(job, 1, {"10.0.0.1:7070": [0.5]}), fn(job, 2, {"10.0.0.1:7070": [0.2, 0.4, 0.3]})])
    model = CostModel(ENV, job, measured)
    assert model.exec_time(TaskId(1), V0) == 0.5
    assert model.exec_time(TaskId(2), V1) == 0.3  # the median, on either vCPU of the VM
    assert not model.is_measured(TaskId(3))
    assert model.exec_time(TaskId(3), V0) == 3000 / 1000  # never measured: workload / MIPS

    renumbered = job_from_dict({"job_id": 8, "task_list": [
        {"task_id": 10, "workload": 1, "cmd": "sort $F^11", "docker-imagename": "img"},
        {"task_id": 11, "workload": 1, "cmd": "gen", "docker-imagename": "img",
         "out_file_list": [{"path": "./o1", "size": 10, "dest_task_id": [10]}]}]}, "<r>")
    model = CostModel(ENV, renumbered, measured)
    assert model.exec_time(TaskId(11), V0) == 0.5 and model.exec_time(TaskId(10), V0) == 0.3

    changed = job_with(["gen --fast", "sort $F^1", "wc $F^2"])
    model = CostModel(ENV, changed, measured)
    assert not model.is_measured(TaskId(1))  # same ids, other command: its old time is not used
    assert model.exec_time(TaskId(2), V0) == 0.3

    unkeyed = costs([fn(job, 1, {"10.0.0.1:7070": [0.9]}, keyed=False)])
    assert CostModel(ENV, changed, unkeyed).exec_time(TaskId(1), V0) == 0.9  # calibrated without the job


def test_hosts_by_address_by_vcpu_and_elsewhere_scaled_by_speed() -> None:
    job = job_with(["gen", "sort $F^1"])
    measured = costs(
        [fn(job, 1, {"10.0.0.2:7070": [2.0]}), fn(job, 2, {"127.0.0.1:40001": [4.0]})],
        hosts=[HostCosts("10.0.0.2:7070", ("0^1^0^0^0",)), HostCosts("127.0.0.1:40001", ("0^2^0^0^0",))],
    )
    model = CostModel(ENV, job, measured)
    assert model.hosts_of(V2) == {"10.0.0.2:7070"}  # VM without a port: any port of its address
    assert model.hosts_of(V3) == {"127.0.0.1:40001"}  # another address: by the vCPU it ran on
    assert model.hosts_of(V0) == frozenset()
    assert model.exec_time(TaskId(1), V2) == 2.0
    # Measured on host 1 (2000 MIPS) only: on a 1000-MIPS vCPU it takes twice as long.
    assert model.exec_time(TaskId(1), V0) == pytest.approx(4.0)
    assert model.exec_time(TaskId(1), V3) == pytest.approx(8.0)
    assert model.exec_time(TaskId(2), V3) == 4.0
    assert model.exec_time(TaskId(2), V2) == pytest.approx(1.0)  # 4 s at 500 MIPS → 1 s at 2000


def test_links_fitted_one_size_unmeasured_and_hand_off() -> None:
    job = job_with(["gen", "sort $F^1", "wc $F^2"])
    a, b, c = "10.0.0.1:7070", "10.0.0.2:7070", "10.0.0.3:7070"
    measured = costs(
        [fn(job, 1, {a: [1.0]}, {"o1": 2_000_000})],
        hosts=[HostCosts(a, ()), HostCosts(b, ()), HostCosts(c, ())],
        links=[
            LinkCosts(a, b, 4, 0.01, 50.0, 5.0, 0.11),  # fitted: 10 ms + MB / 50
            LinkCosts(b, a, 1, None, None, 2.0, 0.1),  # one size: env bandwidth, latency what remains
            LinkCosts(a, a, 3, 0.002, None, 0.0, 0.002),  # hand-off on node a
        ],
    )
    model = CostModel(ENV, job, measured)
    assert model.edge_mb(TaskId(1), TaskId(2)) == 2.0  # measured 2 000 000 bytes, not the declared 10 MB
    assert model.edge_mb(TaskId(2), TaskId(3)) == 10.0
    assert model.link(V0, V2) == (0.01, 1 / 50)
    env_spm = ENV.transfer_time(1.0, V2, V0)
    lat, spm = model.link(V2, V0)
    assert spm == env_spm and lat == pytest.approx(0.1 - 2.0 * env_spm)
    assert model.transfer_time(TaskId(1), TaskId(2), V2, V0) == pytest.approx(0.1)  # the measured size exactly
    assert model.link(V0, V1) == (0.002, 0.0)  # same VM: the hand-off
    assert model.link(V2, V2) == (0.0, 0.0)  # no hand-off measured there
    # Never measured, and no hand-off at its ends: the median latency of the measured pairs, the
    # slower bandwidth.
    lat, spm = model.link(V2, V3)
    assert spm == max(ENV.transfer_time(1.0, V2, V3), 1 / 50)
    assert lat == pytest.approx(sorted([0.01, 0.1 - 2.0 * ENV.transfer_time(1.0, V2, V3)])[0] / 2
                                + sorted([0.01, 0.1 - 2.0 * ENV.transfer_time(1.0, V2, V3)])[1] / 2)


# -- the problem, the schedulers and the validator ---------------------------------------------


def test_problem_arrays_come_from_the_model() -> None:
    job = job_with(["gen", "sort $F^1", "wc $F^2"])
    a, b = "10.0.0.1:7070", "10.0.0.2:7070"
    measured = costs([fn(job, 1, {a: [1.0]}, {"o1": 3_000_000}), fn(job, 2, {b: [0.25]})],
                     links=[LinkCosts(a, b, 2, 0.05, 100.0, 1.0, 0.06)])
    problem = Problem.from_env_job(ENV, job, costs=measured)
    model = CostModel(ENV, job, measured)
    for i, t in enumerate(problem.task_ids):
        for k, v in enumerate(problem.proc_ids):
            assert problem.exec_time[i, k] == model.exec_time(t, v)
    e = 0  # edge 1 → 2
    assert problem.comm(e, 0, 2) == pytest.approx(0.05 + 3.0 / 100)
    assert problem.comm(e, 0, 1) == 0.0  # same VM, no hand-off measured
    plain = Problem.from_env_job(ENV, job)
    assert not plain.latency.any() and plain.edge_data.tolist() == [10.0, 10.0]


@st.composite
def measured_costs(draw: st.DrawFn, env: Environment, job: Job) -> MeasuredCosts:
    addresses = [f"{vm.address.host}:7070" for vm in env.vms.values()] + ["192.0.2.9:7070"]
    functions = []
    for task in job.tasks:
        if draw(st.booleans()):
            hosts = draw(st.lists(st.sampled_from(addresses), min_size=1, max_size=3, unique=True))
            seconds = {h: draw(st.lists(st.floats(0, 50), min_size=1, max_size=3)) for h in hosts}
            outputs = {f.path[2:]: draw(st.integers(0, 10**9)) for f in task.out_files if draw(st.booleans())}
            functions.append(fn(job, int(task.id), seconds, outputs, keyed=draw(st.booleans())))
    links = []
    for src in addresses:
        for dst in addresses:
            if draw(st.booleans()):
                bw = draw(st.one_of(st.none(), st.floats(0.5, 1000)))
                lat = draw(st.one_of(st.none(), st.floats(0, 2))) if bw is None else draw(st.floats(0, 2))
                links.append(LinkCosts(src, dst, draw(st.integers(1, 5)), lat, bw, draw(st.floats(0, 100)),
                                       draw(st.floats(0, 10))))
    return costs(functions, [HostCosts(a, ()) for a in addresses], links)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_scheduler_is_valid_with_random_measured_costs(data: st.DataObject) -> None:
    env = data.draw(environments())
    job = data.draw(jobs(max_tasks=10))
    measured = data.draw(measured_costs(env, job))
    problem = Problem.from_env_job(env, job, costs=measured)
    assert all(math.isfinite(x) and x >= 0 for x in problem.exec_time.ravel())
    for name in names():
        schedule = get_scheduler(name).schedule(problem)
        assert find_violations((env, job), schedule, measured) == [], name
        assert find_violations(problem, schedule) == [], name
        replayed = replay_schedule(problem, schedule)
        assert find_violations((env, job), replayed, measured) == [], name


def test_validator_recomputes_with_the_costs() -> None:
    job = job_with(["gen", "sort $F^1"])
    measured = costs([fn(job, 1, {"10.0.0.1:7070": [0.5]}), fn(job, 2, {"10.0.0.1:7070": [0.5]})])
    schedule = get_scheduler("heft").schedule(Problem.from_env_job(ENV, job, costs=measured))
    validate_schedule((ENV, job), schedule, measured)
    violations = find_violations((ENV, job), schedule)  # the same schedule against workload / MIPS
    assert violations and {v.kind for v in violations} == {"duration"}


# -- the costs file ----------------------------------------------------------------------------


def test_costs_file_round_trip_and_errors(tmp_path: Path) -> None:
    job = job_with(["gen", "sort $F^1"])
    measured = dataclasses.replace(
        costs([fn(job, 1, {"h:1": [0.5, 0.25]}, {"o1": 12})],
              [HostCosts("h:1", ("v0",))], [LinkCosts("h:1", "h:2", 2, 0.1, 5.0, 1.0, 0.3),
                                            LinkCosts("h:2", "h:1", 1, None, None, 1.0, 0.3)]),
        runs=("job 7 run abc (ip)",),
    )
    path = tmp_path / "costs.json"
    path.write_text(json.dumps(costs_to_dict(measured)))
    assert load_costs(path) == measured

    def broken(change: dict[str, object], where: str, message: str) -> None:
        data = costs_to_dict(measured)
        for key, value in change.items():
            target, _, leaf = key.rpartition(".")
            holder: object = data
            for part in filter(None, target.split(".")):
                holder = holder[int(part)] if isinstance(holder, list) else holder[part]  # type: ignore[index]
            holder[int(leaf) if isinstance(holder, list) else leaf] = value  # type: ignore[index]
        with pytest.raises(InputError) as err:
            costs_from_dict(data, "c.json")
        assert f"c.json: {where}" in str(err.value) and message in str(err.value)

    broken({"format": "x"}, "$.format", "written by sflow calibrate")
    broken({"functions.0.seconds": {"h:1": [-1]}}, '$.functions[0].seconds["h:1"][0]', "non-negative")
    broken({"functions.0.seconds": {"h:1": []}}, '$.functions[0].seconds["h:1"]', "non-empty")
    broken({"functions.0.outputs": {"o1": 1.5}}, '$.functions[0].outputs["o1"]', "integer")
    broken({"links.0.bandwidth": 0}, "$.links[0].bandwidth", "positive")
    broken({"functions.0.job_id": "x"}, "$.functions[0].job_id", "integer")
    with pytest.raises(InputError, match="no such file"):
        load_costs(tmp_path / "missing.json")


def test_an_unmeasured_pair_costs_at_least_a_hand_off() -> None:
    job = job_with(["gen", "sort $F^1"])
    a = "10.0.0.1:7070"
    # One run on node a only: no transfer between nodes was seen, a hand-off of 5 ms was.
    measured = costs([fn(job, 1, {a: [1.0]})], hosts=[HostCosts(a, ())], links=[LinkCosts(a, a, 1, 0.005, None, 0.0, 0.005)])
    model = CostModel(ENV, job, measured)
    assert model.link(V0, V1) == (0.005, 0.0)
    lat, spm = model.link(V0, V2)
    assert lat == 0.005 and spm == ENV.transfer_time(1.0, V0, V2)
    # So HEFT keeps a chain on the node that ran it rather than crossing for free.
    schedule = get_scheduler("heft").schedule(Problem.from_env_job(make_env([[1000], [1000]]), job, costs=costs(
        [fn(job, 1, {"10.0.0.1:7070": [1.0]}), fn(job, 2, {"10.0.0.1:7070": [1.0]})],
        hosts=[HostCosts("10.0.0.1:7070", ())], links=[LinkCosts("10.0.0.1:7070", "10.0.0.1:7070", 1, 0.005, None, 0.0, 0.005)])))
    assert schedule.slots[TaskId(1)].vcpu == schedule.slots[TaskId(2)].vcpu
