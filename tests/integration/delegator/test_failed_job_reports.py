"""A failed job, through `sflow run` with real local nodes, in every chaining mode: the error names
the function that failed (not the END function that waited for it), the node it ran on, its exit
status and the end of its stderr, once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# 1 → 2, 3 → 4; function 2 writes to stderr and exits 3.
FAILING_JOB = {"job_id": 7, "task_list": [
    {"task_id": 1, "workload": 100, "cmd": "echo a > ./a.txt",
     "out_file_list": [{"path": "./a.txt", "size": 0.001, "dest_task_id": [2, 3]}]},
    {"task_id": 2, "workload": 100, "cmd": "echo 'f2: first complaint' >&2; echo 'f2: the disk is on fire' >&2; exit 3",
     "out_file_list": [{"path": "./b.txt", "size": 0.001, "dest_task_id": [4]}]},
    {"task_id": 3, "workload": 100, "cmd": "cat $F^1 > ./c.txt",
     "out_file_list": [{"path": "./c.txt", "size": 0.001, "dest_task_id": [4]}]},
    {"task_id": 4, "workload": 100, "cmd": "cat $F^2 $F^3 > ./d.txt",
     "out_file_list": [{"path": "./d.txt", "size": 0.001, "dest_task_id": []}]},
]}

ERROR = re.compile(
    r"^sflow: error: function 2 failed on node (?P<node>127\.0\.0\.1:\d+): "
    r"the command exited with an error \(exit status 3\)\n"
    r"--- end of stderr ---\nf2: first complaint\nf2: the disk is on fire\n\Z"
)

# What a node's log says when function 2 failed there, per mode.
FAILED_HERE = {"ip": "event=function_failed job=7-", "icn": "task=2 ok=False", "auto": "task=2 ok=False"}


@pytest.mark.parametrize("mode", ["ip", "icn", "auto"])
def test_the_error_names_the_function_node_exit_status_and_stderr(mode: str, tmp_path: Path) -> None:
    job = tmp_path / "failing.json"
    job.write_text(json.dumps(FAILING_JOB))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFLOW_")}
    env.update(SFLOW_DELEGATOR_JOB_TIMEOUT="120", SFLOW_SECURITY_SECRET_FILE=str(tmp_path / "none.secret"))
    done = subprocess.run([sys.executable, "-m", "sflow", "run", str(job), "--mode", mode, "-o", str(out)],
                          capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    match = ERROR.match(done.stderr)
    assert match, done.stderr  # the whole of stderr: the error once, no log line repeating it
    # The node named is the one whose log shows function 2 failing.
    logs = {_listen(p): p.read_text() for p in (out / "nodes").glob("node-*.log")}
    assert match["node"] in logs, logs.keys()
    failed_on = [node for node, text in logs.items()
                 if any(FAILED_HERE[mode] in line and "task=2" in line for line in text.splitlines())]
    assert failed_on == [match["node"]], failed_on
    # The failed run's trace says so, and what failed where and why.
    trace = json.loads((out / "trace.json").read_text())
    assert trace["status"] == "failed" and "function 2 failed" in trace["error"]
    assert trace["failure"] == {"task": 2, "node": match["node"], "reason": "the command exited with an error",
                                "exit_status": 3, "stderr_tail": "f2: first complaint\nf2: the disk is on fire\n"}
    assert 1 in {r["task"] for r in trace["tasks"] if not r["where"].startswith("failed")}


def _listen(log: Path) -> str:
    found = re.search(r"event=node_ready listen=(\S+)", log.read_text())
    assert found, log.read_text()
    return found[1]
