"""`sflow experiment run` on real hosts (``[cluster] hosts = …``): three hosts like a user's (see
netns.py), sflow deployed there with `sflow cluster deploy`, the nodes started and stopped for each
run by the experiment over SSH, a host crashed when a function starts; everything recorded."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from cluster_lab import Cli, LabCluster
from netns import sflow_processes

REPO = Path(__file__).resolve().parents[3]
JOB = REPO / "jobs" / "fork-join-sleep.json"
SUM = "21"  # 1 + 2 + … + 6


def test_an_experiment_runs_on_real_hosts_and_survives_a_crashed_host(
    lab_cluster: LabCluster, deployed: subprocess.CompletedProcess[str], cli: Cli
) -> None:
    hosts = [h.address for h in lab_cluster.hosts]
    victim = hosts[2]
    spec = lab_cluster.work / "hosts-experiment.toml"
    spec.write_text(f"""
name = "on-hosts"
[cluster]
hosts = "{lab_cluster.inventory}"
secret = "{lab_cluster.secret}"
[matrix]
jobs = ["{JOB}"]
modes = ["ip", "auto"]
algorithms = ["heft"]
timeout_s = 180
[settings.security]
known_hosts = "{lab_cluster.lab.known_hosts}"
[[fault]]
when = "function 3 starts"
kill = "{victim}"
""", encoding="utf-8")
    out = lab_cluster.work / "experiment-out"
    done = cli("experiment", "run", str(spec), "-o", str(out), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 runs ok, 0 failed" in done.stdout, done.stdout + done.stderr

    db = sqlite3.connect(out / "results.sqlite")
    db.row_factory = sqlite3.Row
    runs = {r["mode"]: r for r in db.execute("SELECT * FROM runs")}
    assert set(runs) == {"ip", "auto"}
    for mode, run in runs.items():
        assert run["status"] == "ok" and run["nodes"] == 3, dict(run)
        (fault,) = json.loads(run["faults"])
        assert fault["effect"].startswith(f"SIGKILL to {victim} (pid "), fault
        assert fault["applied_s"] is not None
        # the functions' rows name the hosts; the sink ran, on a host that was not crashed
        rows = db.execute("SELECT node, outcome FROM functions WHERE run_id = ? AND task = 8", (run["run_id"],)).fetchall()
        assert [r["outcome"] for r in rows] == ["executed"] and rows[0]["node"].split(":")[0] in hosts, mode
        nodes = {r["node"] for r in db.execute("SELECT node FROM functions WHERE run_id = ?", (run["run_id"],))}
        assert nodes <= {f"{h}:7070" for h in hosts} | set(hosts), nodes
        # resources were sampled over SSH on every host that lived long enough (two samples)
        sampled = {r["node"] for r in db.execute("SELECT DISTINCT node FROM samples WHERE run_id = ?", (run["run_id"],))}
        assert set(hosts) - {victim} <= sampled <= set(hosts), sampled
        rundir = out / "runs" / run["run_id"].replace("/", "_")
        (result,) = rundir.glob("out/**/sum.txt")
        assert result.read_text().strip() == SUM
        # the hosts' log lines of the run were brought back
        logs = "".join(p.read_text() for p in (rundir / "nodes").glob("node-*.log"))
        assert "event=function_start" in logs and "task=3" in logs

    # each run stopped its nodes: nothing of sflow is left on the hosts
    assert sflow_processes(lab_cluster.hosts) == []
    report = cli("experiment", "report", str(out))
    assert report.returncode == 0, report.stdout + report.stderr
