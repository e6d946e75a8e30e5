"""The loop the README shows, with the real CLI and real nodes: run, calibrate, schedule again with
the measured costs (schedule, simulate, and run itself), compare."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sflow.cli import main
from sflow.delegator.trace import load_trace
from sflow.jsonio import load_costs, load_environment, load_job, load_mapping
from sflow.sched.problem import Problem
from sflow.sched.registry import get_scheduler
from sflow.sched.validate import find_violations

REPO = Path(__file__).resolve().parents[3]
JOB = REPO / "jobs" / "fork-join.json"


def sflow_run(*args: str) -> None:
    """``sflow run`` as a real process (it starts real nodes)."""
    done = subprocess.run([sys.executable, "-m", "sflow", "run", *args], capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def cli(capsys: pytest.CaptureFixture[str], *args: str, status: int = 0) -> str:
    assert main(list(args)) == status
    captured = capsys.readouterr()
    return captured.out if status == 0 else captured.err


def makespan_of(text: str) -> float:
    found = re.search(r"makespan:\s+([0-9.e+-]+) s", text)
    assert found, text
    return float(found.group(1))


def test_run_calibrate_schedule_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "run1"
    sflow_run(str(JOB), "-o", str(first), "-a", "heft", "--nodes", "3")
    trace = load_trace(first / "trace.json")
    assert trace.predicted_makespan == pytest.approx(11.5, rel=1e-3)  # workload / MIPS: the guess

    costs_file = tmp_path / "costs.json"
    out = cli(capsys, "calibrate", str(first / "trace.json"), "--job", str(JOB), "-o", str(costs_file))
    assert "1 trace(s): 6 functions (6 runs)" in out and str(costs_file) in out
    costs = load_costs(costs_file)
    measured = {(f.task_id, host): values for f in costs.functions for host, values in f.seconds.items()}
    for run in trace.tasks:
        assert measured[(run.task, run.node)] == (round(run.finish - run.start, 6),)
    assert {h.name for h in costs.hosts} == {r.node for r in trace.tasks}
    crossing = {(x.src_node, x.dst_node) for x in trace.transfers}
    assert crossing <= {(lk.src, lk.dst) for lk in costs.links}

    # Schedule again on the environment of that run: every function's time is measured now.
    env_file, job = first / "env.json", load_job(JOB)
    mapping = tmp_path / "mapping.json"
    out = cli(capsys, "schedule", str(env_file), str(JOB), "-a", "heft", "--costs", str(costs_file),
              "-o", str(mapping))
    assert "costs:     measured (6 of 6 functions)" in out
    env = load_environment(env_file)
    problem = Problem.from_env_job(env, job, costs=costs)
    expected = get_scheduler("heft").schedule(problem)
    assert makespan_of(out) == pytest.approx(expected.makespan, rel=1e-3)
    assert find_violations((env, job), load_mapping(mapping).schedule, costs) == []  # type: ignore[arg-type]

    simulated = cli(capsys, "simulate", str(env_file), str(mapping), "--costs", str(costs_file))
    assert makespan_of(simulated) == pytest.approx(expected.makespan, rel=1e-3)

    best = cli(capsys, "schedule", str(env_file), str(JOB), "-a", "best", "--budget-s", "0.3",
               "--costs", str(costs_file))
    assert makespan_of(best) <= makespan_of(out) * (1 + 1e-3)

    # A second run with the costs: new nodes on new ports, matched to the measured ones by vCPU id.
    second = tmp_path / "run2"
    sflow_run(str(JOB), "-o", str(second), "-a", "heft", "--nodes", "3", "--costs", str(costs_file))
    again = load_trace(second / "trace.json")
    env2 = load_environment(second / "env.json")
    assert {str(vm.address) for vm in env2.vms.values()}.isdisjoint({h.name for h in costs.hosts})
    predicted = get_scheduler("heft").schedule(Problem.from_env_job(env2, job, costs=costs)).makespan
    assert again.predicted_makespan == pytest.approx(predicted)
    assert again.predicted_makespan == pytest.approx(expected.makespan)


def test_bad_costs_files_are_input_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = str(REPO / "envs" / "local.json")
    bad = tmp_path / "costs.json"
    bad.write_text('{"format": "sflow-costs/1", "functions": [{"job_id": 1, "task_id": "x"}], "hosts": [], "links": []}')
    err = cli(capsys, "schedule", env, str(JOB), "--costs", str(bad), status=2)
    assert f"{bad}: $.functions[0].task_id" in err
    err = cli(capsys, "simulate", env, str(JOB), "--costs", str(tmp_path / "none.json"), status=2)
    assert "none.json: no such file" in err
    err = cli(capsys, "calibrate", str(tmp_path / "trace.json"), "-o", str(tmp_path / "c.json"), status=2)
    assert "trace.json: no such file" in err
    err = cli(capsys, "schedule", env, str(JOB), "-a", "best", "--budget-s", "-1", status=2)
    assert "--budget-s" in err
