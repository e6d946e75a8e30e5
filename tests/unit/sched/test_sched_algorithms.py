"""Every scheduler on canonical DAGs, the original's samples and random DAGs and environments."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from sched_builders import CANONICAL, environments, jobs, make_env, make_job, two_dc_env
from sflow.errors import InputError, ScheduleError
from sflow.jsonio import environment_from_dict, load_environment, load_job
from sflow.model.infra import Environment
from sflow.model.schedule import Schedule
from sflow.model.workflow import Job, TaskId
from sflow.sched.costs import critical_path_lower_bound, sequential_time
from sflow.sched.problem import Problem
from sflow.sched.registry import ORIGINAL_SIX, get_scheduler, names
from sflow.sched.validate import find_violations, validate_schedule

ALL = names()


def run(name: str, env: Environment, job: Job, seed: int = 1) -> tuple[Problem, Schedule]:
    problem = Problem.from_env_job(env, job)
    schedule = get_scheduler(name, seed).schedule(problem)
    return problem, schedule


def check(problem: Problem, env: Environment, job: Job, schedule: Schedule) -> None:
    assert find_violations((env, job), schedule) == []
    assert find_violations(problem, schedule) == []
    bound = critical_path_lower_bound(problem)
    assert schedule.makespan >= bound - 1e-9 * max(1.0, bound)
    schedulable = {v.id for v in env.schedulable}
    assert {s.vcpu for s in schedule.slots.values()} <= schedulable


def test_registry_has_the_original_six_and_the_textbook_ones() -> None:
    for name in (*ORIGINAL_SIX, "cpop", "fastest", "round-robin", "heft-ready"):
        assert name in ALL
    with pytest.raises(InputError, match="unknown algorithm 'nope'"):
        get_scheduler("nope")


@pytest.mark.parametrize("shape", sorted(CANONICAL))
@pytest.mark.parametrize("name", ALL)
def test_canonical_dags(name: str, shape: str) -> None:
    workloads, edges = CANONICAL[shape]
    env = two_dc_env()
    job = make_job(workloads, edges)
    problem, schedule = run(name, env, job)
    check(problem, env, job, schedule)
    assert schedule.algorithm == name


@pytest.mark.parametrize("name", ALL)
def test_chain_on_one_fast_vcpu_is_sequential(name: str) -> None:
    env = make_env([[1000]])
    job = make_job([1000, 2000, 3000], {(1, 2): 10, (2, 3): 10})
    _, schedule = run(name, env, job)
    assert schedule.makespan == pytest.approx(6.0)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("job_file", ["job_ncl.json", "job_ffmpeg.json"])
def test_original_samples(name: str, job_file: str, samples: Path) -> None:
    env = load_environment(samples / "env_ncl.json")
    job = load_job(samples / job_file)
    problem, schedule = run(name, env, job)
    check(problem, env, job, schedule)


def test_fastest_equals_sequential_time() -> None:
    env = two_dc_env()
    job = make_job(*CANONICAL["diamond"])
    problem, schedule = run("fastest", env, job)
    assert schedule.makespan == pytest.approx(sequential_time(problem))
    assert len({s.vcpu for s in schedule.slots.values()}) == 1


def test_orphan_vcpus_are_never_used() -> None:
    # The orphan vCPU is 9000 MIPS, far faster than any VM's: a scheduler that looked at every vCPU
    # would pick it.
    env = two_dc_env()
    job = make_job(*CANONICAL["independent"])
    for name in ALL:
        _, schedule = run(name, env, job)
        assert "0^0^0^2^0" not in {s.vcpu for s in schedule.slots.values()}, name


def test_environment_without_schedulable_vcpu_is_a_schedule_error() -> None:
    env = make_env([[1000, 2000]], in_vm=[[False, False]])
    job = make_job([1000], {})
    with pytest.raises(ScheduleError, match="my-env.json"):
        Problem.from_env_job(env, job, name="my-env.json")


def test_hclustering_and_sfcuv_with_more_tasks_than_vcpus() -> None:
    env = make_env([[1000, 2000]])
    job = make_job([1000] * 12, {})  # 12 START tasks, 2 vCPUs: every vCPU gets taken
    for name in ("hclustering", "sf-cuv", "fws"):
        problem, schedule = run(name, env, job)
        check(problem, env, job, schedule)


def test_coordvnf_is_random_only_through_its_seed() -> None:
    env = make_env([[1000] * 4, [1000] * 4], host_bw=[10, 10])
    job = make_job([1000] * 16, {})
    a = run("coordvnf", env, job, seed=7)[1]
    b = run("coordvnf", env, job, seed=7)[1]
    assert a.slots == b.slots
    others = [run("coordvnf", env, job, seed=s)[1].slots for s in range(1, 6)]
    assert any(o != a.slots for o in others)


def test_coordvnf_keeps_a_chain_near_its_inputs() -> None:
    env = make_env([[1000, 1000], [1000, 1000], [1000, 1000]])
    job = make_job([1000] * 6, {(k, k + 1): 100 for k in range(1, 6)})
    _, schedule = run("coordvnf", env, job, seed=3)
    hosts = {env.host_of(s.vcpu).id for s in schedule.slots.values()}
    assert len(hosts) == 1


def test_transfers_are_free_on_a_host_and_charged_across_hosts_and_dcs() -> None:
    # Two tasks, the second needs 100 MB from the first; the only vCPUs are on different hosts.
    two_hosts = make_env([[1000], [1000]], host_bw=[50, 100])
    job = make_job([1000, 1000], {(1, 2): 100})
    problem, schedule = run("round-robin", two_hosts, job)
    assert schedule.slots[TaskId(2)].start == pytest.approx(1.0 + 100 / 50)  # the smaller host NIC
    two_dcs = make_env([[1000], [1000]], dc_of_host=[0, 1], host_bw=[125, 125], dc_bw=[10, 20])
    _, schedule = run("round-robin", two_dcs, job)
    assert schedule.slots[TaskId(2)].start == pytest.approx(1.0 + 100 / 10)  # the smallest DC link
    one_host = make_env([[1000, 1000]])
    _, schedule = run("round-robin", one_host, job)
    assert schedule.slots[TaskId(2)].start == pytest.approx(1.0)


def test_heft_uses_idle_gaps() -> None:
    # Task 3 (long) and 2 wait for data from 1; the short independent task 4 fits the gap.
    env = make_env([[1000], [1000]], host_bw=[1, 1])
    job = make_job([1000, 1000, 1000, 500], {(1, 2): 3, (1, 3): 3})
    problem, schedule = run("heft", env, job)
    check(problem, env, job, schedule)
    ready = run("heft-ready", env, job)[1]
    assert schedule.makespan <= ready.makespan


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=environments(), job=jobs())
def test_random_dags_and_environments(env: Environment, job: Job) -> None:
    problem = Problem.from_env_job(env, job)
    for name in ALL:
        schedule = get_scheduler(name, 5).schedule(problem)
        check(problem, env, job, schedule)
        again = get_scheduler(name, 5).schedule(Problem.from_env_job(env, job))
        assert again.slots == schedule.slots, f"{name} is not deterministic"


def test_every_schedule_lists_each_task_once() -> None:
    env = load_environment_dict_with_duplicates()
    job = make_job(*CANONICAL["fork"])
    for name in ALL:
        problem, schedule = run(name, env, job)
        assert sorted(schedule.slots) == sorted(t.id for t in job.tasks)
        validate_schedule((env, job), schedule)


def load_environment_dict_with_duplicates() -> Environment:
    """Two VMs sharing one address, as in the original's sample."""
    from sched_builders import env_dict

    d = env_dict([[1000, 2000], [1500]])
    d["dc_list"][0]["host_list"][1]["vm_list"][0]["ip"] = "10.0.0.1"
    return environment_from_dict(d, "<dup env>")
