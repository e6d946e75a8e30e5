"""Autonomous ICN-SFC against IP and static ICN chaining on three real hosts (issue 16).

Three hosts like a user's (network namespaces on a bridge, each with its own sshd, a non-root user
and the system python: tests/integration/cluster/netns.py; needs root), sflow deployed on them with
``sflow cluster deploy``; then for each mode ``sflow cluster start --mode M``, ``sflow delegate``
of jobs/fork-join-sleep.json (a source, six ``sleep 1`` functions, a sink; 2 vCPUs per host) and
``sflow cluster stop``, the result stores emptied between runs so that every run computes. ip and
icn use HEFT; auto places by itself (``cluster start --mode auto`` gives no settings but the
inventory).

Per mode (median of ``--repeat`` runs): the makespan (the delegator's, from its trace), the hosts
the six functions ran on, when the first function started after the dispatch began (trace time 0),
and the wall time of the whole ``sflow delegate`` command (scheduling, status queries, installing,
results). The floor is one round of ``sleep 1``. Targets: auto makespan <= 1.3 x static icn (heft);
first function within 0.5 s of the request.

    sudo .venv/bin/python benchmarks/auto_hosts.py [--repeat N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration" / "cluster"))

from cluster_lab import LabCluster, lab_environment  # noqa: E402
from netns import lab, missing_requirement, sflow_processes, wait_for  # noqa: E402

JOB = REPO / "jobs" / "fork-join-sleep.json"
MODES = ("ip", "icn", "auto")
MIDDLE = range(2, 8)
FLOOR = 1.0  # one round of `sleep 1`


def sflow(cluster: LabCluster, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "sflow", *args]
    if args[0] == "cluster":
        argv += ["--known-hosts", str(cluster.lab.known_hosts)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFLOW_")}
    done = subprocess.run(argv, cwd=cluster.work, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"sflow {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done


def one_run(cluster: LabCluster, env: Path, mode: str, index: int) -> dict[str, Any]:
    inventory = str(cluster.inventory)
    for host in cluster.hosts:  # every run computes: no result from an earlier one
        shutil.rmtree(host.home / ".cache" / "sflow" / "results", ignore_errors=True)
    sflow(cluster, "cluster", "start", inventory, "--mode", mode)
    try:
        if mode == "auto":
            wait_for(lambda: all((h.sflow_dir / "sflow-node.log").read_text().count("event=neighbour_found")
                                 >= 2 * (index + 1) for h in cluster.hosts), 30, "every node to hear its neighbours")
        out = cluster.work / f"out-{mode}-{index}"
        algorithm = ["-a", "heft"] if mode != "auto" else []
        began = time.monotonic()
        sflow(cluster, "delegate", str(env), str(JOB), "--mode", mode, *algorithm, "-o", str(out),
              "--secret-file", str(cluster.secret))
        wall = time.monotonic() - began
    finally:
        sflow(cluster, "cluster", "stop", inventory, "--grace", "5")
        wait_for(lambda: not sflow_processes(cluster.hosts), 15, "every node gone")
    trace = json.loads((out / "trace.json").read_text())
    # ip traces say how a function ran ("native"), icn and auto ones "executed (native)"
    executed = [t for t in trace["tasks"] if not t["where"].startswith(("cache hit", "not needed"))]
    return {
        "makespan": trace["makespan"],
        "hosts": len({t["node"] for t in executed if t["task"] in MIDDLE}),
        "first_start": min(t["start"] for t in executed),
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode (default 3); medians are printed")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    reason = missing_requirement()
    if reason:
        raise SystemExit(f"auto_hosts: cannot make the hosts here: {reason}")
    from sflow.secret import generate_secret

    root = Path(tempfile.mkdtemp(prefix="sflow-auto-hosts-"))
    os.chmod(root, 0o755)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    try:
        with lab(root, 3) as the_lab:
            work = root / "delegator"
            work.mkdir()
            secret = generate_secret(work / "cluster.secret")
            cluster = LabCluster(the_lab, work, secret, work / "hosts.toml")
            cluster.write_inventory("hosts.toml", cluster.hosts)
            env = work / "env.json"
            env.write_text(json.dumps(lab_environment(cluster.hosts)), encoding="utf-8")
            sflow(cluster, "cluster", "deploy", str(cluster.inventory), "--secret", str(secret))
            for index in range(args.repeat):
                for mode in MODES:  # interleaved, so that the machine's load hits every mode alike
                    runs[mode].append(one_run(cluster, env, mode, index))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    figures = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in runs.items()}
    ratio = figures["auto"]["makespan"] / figures["icn"]["makespan"]
    if args.json:
        print(json.dumps({"runs": runs, "median": figures, "auto_over_icn": ratio, "floor": FLOOR}, indent=1))
        return
    print(f"fork-join of six `sleep 1` (jobs/fork-join-sleep.json) on 3 hosts x 2 vCPUs, median of {args.repeat}")
    print(f"{'mode':<6}{'makespan':>10}{'hosts':>7}{'1st start':>11}{'delegate wall':>15}")
    for mode in MODES:
        f = figures[mode]
        print(f"{mode:<6}{f['makespan']:>9.3f}s{f['hosts']:>7.0f}{f['first_start']:>10.3f}s{f['wall']:>14.2f}s")
    print(f"floor: {FLOOR:.1f} s (one round of sleep 1)")
    print(f"auto / static icn (heft) makespan: {ratio:.2f} (target <= 1.3); first function in auto after "
          f"{figures['auto']['first_start']:.3f} s (target <= 0.5 s)")


if __name__ == "__main__":
    main()
