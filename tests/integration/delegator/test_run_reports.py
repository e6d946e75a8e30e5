"""What `sflow run` prints and draws, in auto and icn modes, with real local nodes: the table fits
80 columns with every column filled (the vCPU each node ran a function on in auto mode, the
schedule's prediction in icn mode), and `sflow gantt` says so when every result came from a cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
JOB = REPO / "jobs" / "fork-join.json"


def sflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFLOW_")}
    rc = cwd / "matplotlibrc"
    rc.write_text("svg.fonttype: none\n")  # chart text stays text, to be read back
    env.update(COLUMNS="80", SFLOW_SECURITY_SECRET_FILE=str(cwd / "absent.secret"), SFLOW_DELEGATOR_JOB_TIMEOUT="120",
               MATPLOTLIBRC=str(rc))
    done = subprocess.run([sys.executable, "-m", "sflow", *args], capture_output=True, text=True, timeout=180, env=env,
                          cwd=cwd, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    return done


def rows(stdout: str) -> dict[int, str]:
    """The table's rows by function (the table is what comes before the makespan line)."""
    lines = stdout.split("makespan:")[0].splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    return {int(line.split()[0]): line for line in lines if line.split() and line.split()[0].isdigit()}


def vcpu_ids(env_file: Path) -> set[str]:
    env = json.loads(env_file.read_text())
    return {v["vcpu_id"] for dc in env["dc_list"] for h in dc["host_list"] for vm in h["vm_list"] for v in vm["vcpu_list"]}


def test_auto_and_icn_runs_fill_their_columns_and_an_all_cached_chart_says_so(tmp_path: Path) -> None:
    out = tmp_path / "out"
    auto = sflow("run", str(JOB), "--mode", "auto", "-o", str(out), cwd=tmp_path)
    vcpus = vcpu_ids(out / "env.json")
    trace = json.loads((out / "trace.json").read_text())
    table = rows(auto.stdout)
    assert sorted(table) == [1, 2, 3, 4, 5, 6]
    for run in trace["tasks"]:
        assert run["where"] == "executed (native)" and run["vcpu"] in vcpus, run
        assert run["vcpu"] in table[run["task"]] and "executed (native)" in table[run["task"]]
    by_lane: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for run in trace["tasks"]:
        by_lane.setdefault((run["node"], run["vcpu"]), []).append((run["start"], run["finish"]))
    for spans in by_lane.values():  # one function at a time on a vCPU
        spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
    chart = tmp_path / "auto.svg"
    sflow("gantt", str(out / "trace.json"), "-o", str(chart), cwd=tmp_path)
    assert "function run (colour: its node)" in chart.read_text()

    # The same job again, in icn mode, on nodes with the same result stores: nothing runs, and
    # every row still shows what the schedule predicted.
    icn = sflow("run", str(JOB), "--mode", "icn", "-o", str(out), cwd=tmp_path)
    assert "executed" not in icn.stdout and "cache hit (result store)" in icn.stdout  # new nodes: their stores
    table = rows(icn.stdout)
    trace = json.loads((out / "trace.json").read_text())
    for run in trace["tasks"]:
        assert run["predicted_start"] is not None and run["predicted_finish"] is not None, run
        assert table[run["task"]].rstrip().endswith(f"{run['predicted_start']:.2f}–{run['predicted_finish']:.2f}")
    chart = tmp_path / "cached.svg"
    sflow("gantt", str(out / "trace.json"), "-o", str(chart), cwd=tmp_path)
    svg = chart.read_text()
    assert "every result came from a cache: no function ran" in svg and "6 (cached)" in svg
