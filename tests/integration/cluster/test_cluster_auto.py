"""Autonomous ICN-SFC (`--mode auto`) on three hosts like a user's (network namespaces with their own
sshd, a non-root user, the system python; see netns.py), started as a user would: `sflow cluster
deploy`, `sflow cluster start --mode auto` (no neighbour settings: the inventory gives them), then
`sflow delegate ENV JOB --mode auto`.

The job is jobs/fork-join-sleep.json (a source, six `sleep 1` functions, a sink; 2 vCPUs per host),
run in static ICN mode with HEFT first, for comparison. The module deploys once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cluster_lab import NODE_PORT, Cli, LabCluster, host_rows, lab_environment, stop_all
from netns import LabHost, host_processes, runs_sflow, sflow_processes, signal_processes, wait_for

from sflow.cluster.timeline import line_time

REPO = Path(__file__).resolve().parents[3]
JOB = REPO / "jobs" / "fork-join-sleep.json"
SINK = 8
MIDDLE = range(2, 8)
SUM = 21  # 1 + 2 + … + 6


def _env(lab_cluster: LabCluster) -> Path:
    path = lab_cluster.work / "env-auto.json"
    path.write_text(json.dumps(lab_environment(lab_cluster.hosts)), encoding="utf-8")
    return path


def _delegate(lab_cluster: LabCluster, cli: Cli, job: Path, mode: str, out: str, *extra: str) -> dict[str, Any]:
    """Run the job; its trace."""
    done = cli("delegate", str(_env(lab_cluster)), str(job), "--mode", mode, *extra, "-o", str(lab_cluster.work / out),
               "--secret-file", str(lab_cluster.secret), timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (lab_cluster.work / out / "out" / "sum.txt").read_text().strip() == str(SUM)
    trace: dict[str, Any] = json.loads((lab_cluster.work / out / "trace.json").read_text())
    return trace


def _variant(lab_cluster: LabCluster, name: str, *changes: tuple[str, str]) -> Path:
    """The job with each (old, new) replaced in its commands: other names, so no node has any of
    its results yet (a second run of the same job is answered from the nodes' result stores)."""
    job = json.loads(JOB.read_text())
    for task in job["task_list"]:
        for old, new in changes:
            task["cmd"] = task["cmd"].replace(old, new)
    path = lab_cluster.work / name
    path.write_text(json.dumps(job), encoding="utf-8")
    return path


def _node_of(address: str) -> str:
    return f"{address}:{NODE_PORT}"


def _log(host: LabHost) -> str:
    return (host.sflow_dir / "sflow-node.log").read_text(encoding="utf-8", errors="replace")


_END = re.compile(r"event=function_end node=(\S+) task=(\d+) ok=(\w+) seconds=([\d.]+)")


def _function_events(logs: dict[str, str]) -> list[tuple[datetime, str, str, int, bool]]:
    """(time, start|end, host, task, ok) of every function start and end in the logs, in time order
    (a node logs each function once, when it ends, with how long it ran)."""
    found = []
    for host, text in logs.items():
        for line in text.splitlines():
            match = _END.search(line)
            stamp = line_time(line)
            if match and stamp is not None:
                _, task, ok, seconds = match.groups()
                found.append((stamp - timedelta(seconds=float(seconds)), "start", host, int(task), True))
                found.append((stamp, "end", host, int(task), ok != "False"))
    return sorted(found)


def _check_inputs_existed(logs: dict[str, str]) -> None:
    """No function started before its inputs existed: each of the six after some run of the source
    ended, the sink after every one of the six (by the hosts' logs, one clock on one machine)."""
    events = _function_events(logs)
    ended: set[int] = set()
    for _, kind, host, task, ok in events:
        if kind == "end" and ok:
            ended.add(task)
        elif kind == "start":
            needs = {1} if task in MIDDLE else set(MIDDLE) if task == SINK else set()
            assert needs <= ended, f"function {task} started on {host} before {sorted(needs - ended)} ended"


def _hosts_used(trace: dict[str, Any]) -> set[str]:
    return {t["node"] for t in trace["tasks"] if t["task"] in MIDDLE and t["where"].startswith("executed")}


def test_auto_mode_on_three_hosts_spreads_the_work_and_routes_around_a_killed_host(
    lab_cluster: LabCluster, deployed: subprocess.CompletedProcess[str], cli: Cli
) -> None:
    inventory = str(lab_cluster.inventory)
    hosts = lab_cluster.hosts

    # Static ICN with HEFT, for comparison.
    started = cli("cluster", "start", inventory, "--mode", "icn", "--json")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        # `seq 1 1 6` prints what `seq 1 6` does, under another name
        static = _delegate(lab_cluster, cli, _variant(lab_cluster, "job-static.json", ("seq 1 6", "seq 1 1 6")), "icn",
                           "out-static", "-a", "heft")
    finally:
        stop_all(cli, lab_cluster)

    before = {h.address: len(_log(h)) for h in hosts}
    started = cli("cluster", "start", inventory, "--mode", "auto", "--json")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        rows = host_rows(started)
        for host in hosts:  # each node advertises its inventory address and knows two neighbours
            assert rows[host.address]["icn"] == f"{host.address}:6363", rows
            assert rows[host.address]["neighbours"] == "2", rows
        wait_for(lambda: all(_log(h).count("event=neighbour_found") >= 2 for h in hosts), 20,
                 "every node to hear its two neighbours")

        auto = _delegate(lab_cluster, cli, JOB, "auto", "out-auto")
        used = _hosts_used(auto)
        print(f"\nfork-join of six `sleep 1` on 3 hosts x 2 vCPUs: static icn (heft) makespan {static['makespan']:.2f} s "
              f"on {len(_hosts_used(static))} hosts; auto makespan {auto['makespan']:.2f} s on {len(used)} hosts")
        assert len(used) >= 2, auto["tasks"]
        logs = {h.address: _log(h)[before[h.address]:] for h in hosts}
        _check_inputs_existed(logs)
        for host in hosts:
            log = logs[host.address]
            me = f"{host.address}:6363"
            assert f"event=icn_node_ready mode=auto address={me}" in log, log[-3000:]
            # never work sent to itself over the network, never a wait for a deadline
            assert f"event=peer_face node={me} peer={me}" not in log
            assert "neighbour_unresponsive" not in log and "node=0.0.0.0" not in log, log[-3000:]
        # every placement is one INFO line saying where and why
        placed = [ln for log in logs.values() for ln in log.splitlines() if "event=placed" in ln]
        assert placed and all(" INFO " in ln and "why=" in ln and "free " in ln and "queue " in ln for ln in placed)
        assert sum(1 for ln in placed if f"for_task={SINK}" in ln) == len(MIDDLE), placed

        # The same job with longer functions (new names: nothing cached): a host running some of
        # them is killed; the node that placed them there places them again elsewhere.
        slow = _variant(lab_cluster, "job-slow.json", ("sleep 1", "sleep 4"), ("seq 1 6", "seq 6"))
        sizes = {h.address: len(_log(h)) for h in hosts}
        env = {k: v for k, v in os.environ.items() if not k.startswith("SFLOW_")}
        out = lab_cluster.work / "out-killed"
        run = subprocess.Popen(
            [sys.executable, "-m", "sflow", "delegate", str(_env(lab_cluster)), str(slow), "--mode", "auto", "-o", str(out),
             "--secret-file", str(lab_cluster.secret)],
            cwd=lab_cluster.work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

        def new(host: LabHost) -> str:
            return _log(host)[sizes[host.address]:]

        def placer() -> LabHost | None:
            return next((h for h in hosts if f"for_task={SINK}" in new(h)), None)

        def victim() -> LabHost | None:
            """A host other than the sink's that runs one of the six (its `sleep 4` is there)."""
            end = placer()
            busy = [h for h in hosts if h is not end and host_processes(h, lambda argv: argv[:2] == ["sleep", "4"])]
            return busy[0] if end is not None and busy else None

        wait_for(lambda: victim() is not None, 60, "a host other than the sink's to run one of the six")
        end, killed = placer(), victim()
        assert end is not None and killed is not None
        assert signal_processes(killed, signal.SIGKILL, runs_sflow)
        stdout, stderr = run.communicate(timeout=240)
        assert run.returncode == 0, stdout + stderr
        assert (out / "out" / "sum.txt").read_text().strip() == str(SUM)
        trace = json.loads((out / "trace.json").read_text())
        assert _node_of(killed.address) not in _hosts_used(trace), trace["tasks"]
        # the sink's node saw the host go and placed its functions again at once
        after = new(end)
        assert f"peer_face_closed node={end.address}:6363 peer={killed.address}:6363" in after, after[-3000:]
        assert f"neighbour_unresponsive node={end.address}:6363 neighbour={killed.address}:6363" in after
        print(f"with {killed.address} killed mid-run: makespan {trace['makespan']:.2f} s")
        _check_inputs_existed({h.address: new(h) for h in hosts if h is not killed})
    finally:
        stop_all(cli, lab_cluster)
    assert sflow_processes(lab_cluster.hosts) == []
