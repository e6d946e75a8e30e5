"""`sflow experiment` through its real command line, with real local nodes: a small matrix recorded
run by run, resumed without re-running anything, repeated, reported and exported; an emulated
topology whose 100 ms links show in every measured transfer; faults recorded with what they did;
Ctrl-C that leaves no node behind and no half-recorded run; spec errors naming the key."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
JOB = REPO / "jobs" / "fork-join.json"

LINE = """
name = "line"
[defaults]
delay_ms = 100
[nodes.a]
[nodes.b]
[nodes.c]
[[links]]
between = ["a", "b"]
[[links]]
between = ["b", "c"]
"""


def environ(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFLOW_")}
    env["SFLOW_SECURITY_SECRET_FILE"] = str(tmp_path / "absent.secret")
    return env


def sflow(tmp_path: Path, *args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "sflow", *args], capture_output=True, text=True, timeout=600,
                          env=environ(tmp_path), cwd=tmp_path, check=False)
    assert done.returncode == status, done.stderr + done.stdout
    return done


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.headings = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs)["src"] or "")
        if tag in ("h1", "h2"):
            self.headings += 1


def test_a_matrix_is_recorded_resumed_repeated_reported_and_exported(tmp_path: Path) -> None:
    spec = tmp_path / "small.toml"
    spec.write_text(f'name = "small"\n[cluster]\nnodes = 2\nvcpus = 1\n[matrix]\njobs = ["{JOB}"]\n'
                    'modes = ["ip", "icn"]\nalgorithms = ["heft"]\ncache = ["cold", "warm"]\nrepetitions = 1\n'
                    "timeout_s = 120\n")
    out = tmp_path / "out"
    first = sflow(tmp_path, "experiment", "run", str(spec), "-o", str(out))
    assert "run 4 of 4: fork-join · icn · heft · warm · #1" in first.stderr
    db = out / "results.sqlite"
    runs = query(db, "SELECT run_id, status, makespan_s, predicted_s, started_at FROM runs ORDER BY run_id")
    assert [r[0] for r in runs] == ["fork-join/icn/heft/cold/1", "fork-join/icn/heft/warm/1",
                                    "fork-join/ip/heft/cold/1", "fork-join/ip/heft/warm/1"]
    assert all(r[1] == "ok" and r[2] > 0 and r[3] > 0 for r in runs), runs
    assert query(db, "SELECT COUNT(*) FROM functions") == [(24,)]
    # Warm ICN: the results were in the stores and caches, so nothing ran.
    warm = query(db, "SELECT outcome FROM functions WHERE run_id = 'fork-join/icn/heft/warm/1'")
    assert {o for (o,) in warm} <= {"cache hit", "not needed"} and ("cache hit",) in warm
    cold = query(db, "SELECT outcome FROM functions WHERE run_id = 'fork-join/icn/heft/cold/1'")
    assert {o for (o,) in cold} == {"executed"}
    assert query(db, "SELECT COUNT(*) FROM counters WHERE counter = 'fwd.n_in_interests' AND value > 0 "
                     "AND run_id LIKE '%icn%cold%'")[0][0] >= 1
    assert query(db, "SELECT COUNT(DISTINCT run_id) FROM samples") == [(4,)]
    session = query(db, "SELECT spec_sha256, sflow_version, python, cores, settings_json FROM sessions")
    assert len(session) == 1 and len(session[0][0]) == 64 and json.loads(session[0][4])["delegator"]["job_timeout"] == 120
    assert {k for (k,) in query(db, "SELECT kind FROM files")} == {"job", "env"}

    # Again: nothing is run again.
    again = sflow(tmp_path, "experiment", "run", str(spec), "-o", str(out))
    assert "nothing to run" in again.stderr and "0 runs ok" in again.stdout
    assert query(db, "SELECT run_id, status, makespan_s, predicted_s, started_at FROM runs ORDER BY run_id") == runs

    # --repeat 1: one more repetition of every cell.
    sflow(tmp_path, "experiment", "run", str(spec), "-o", str(out), "--repeat", "1")
    assert query(db, "SELECT repetition, COUNT(*) FROM runs GROUP BY repetition") == [(1, 4), (2, 4)]
    assert query(db, "SELECT COUNT(*) FROM sessions") == [(2,)]

    report = sflow(tmp_path, "experiment", "report", str(out))
    assert str(out / "report.html") in report.stdout
    page = Images()
    page.feed((out / "report.html").read_text())
    assert page.headings >= 4 and len(page.sources) >= 8  # 4 plots and a Gantt chart per cell
    for src in page.sources:
        image = out / src
        assert image.is_file() and image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src

    sflow(tmp_path, "experiment", "export", str(out))
    with (out / "csv" / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["status"] for r in rows} == {"ok"}
    assert (out / "csv" / "functions.csv").read_text().count("\n") == 1 + 48

    # The loop of issue 15: calibrate from the experiment's ip traces, then run with those costs:
    # the prediction comes closer to what the run measures.
    traces = [str(p) for p in sorted((out / "runs").glob("fork-join_ip_*/trace.json"))]
    sflow(tmp_path, "calibrate", *traces, "--job", str(JOB), "-o", str(tmp_path / "costs.json"))
    calibrated = tmp_path / "calibrated.toml"
    calibrated.write_text(f'costs = "costs.json"\n[cluster]\nnodes = 2\nvcpus = 1\n[matrix]\njobs = ["{JOB}"]\n'
                          'algorithms = ["heft"]\ntimeout_s = 120\n')
    sflow(tmp_path, "experiment", "run", str(calibrated), "-o", str(tmp_path / "calibrated"))
    ((real, predicted),) = query(tmp_path / "calibrated" / "results.sqlite", "SELECT makespan_s, predicted_s FROM runs")
    ((real0, predicted0),) = query(db, "SELECT makespan_s, predicted_s FROM runs WHERE run_id = 'fork-join/ip/heft/cold/1'")
    assert abs(predicted - real) / real < abs(predicted0 - real0) / real0, (predicted, real, predicted0, real0)
    assert ("costs",) in query(tmp_path / "calibrated" / "results.sqlite", "SELECT kind FROM files")


def test_emulated_links_delay_every_transfer_and_faults_are_recorded(tmp_path: Path) -> None:
    (tmp_path / "line.toml").write_text(LINE)
    spec = tmp_path / "links.toml"
    spec.write_text(f'[cluster]\ntopology = "line.toml"\n[matrix]\njobs = ["{JOB}"]\nmodes = ["ip", "icn"]\n'
                    'algorithms = ["round-robin"]\ntimeout_s = 60\n')
    sflow(tmp_path, "experiment", "run", str(spec), "-o", str(tmp_path / "links"))
    db = tmp_path / "links" / "results.sqlite"
    assert query(db, "SELECT status FROM runs") == [("ok",), ("ok",)]
    # Static ICN: what c needs from a is routed through b's forwarder (c never connects to a).
    logs = tmp_path / "links" / "runs" / "fork-join_icn_round-robin_cold_1" / "nodes"
    assert "event=transit_routes node=127.0.1.2" in (logs / "node-1.log").read_text()
    faces = [line for line in (logs / "node-2.log").read_text().splitlines() if "event=peer_face" in line]
    assert faces and all("peer=127.0.1.2:" in line for line in faces), faces
    hops = {frozenset("ab"): 1, frozenset("bc"): 1, frozenset("ac"): 2}
    transfers = query(db, "SELECT src_node, dst_node, start_s, finish_s FROM transfers")
    assert transfers
    for src, dst, start, finish in transfers:
        assert finish - start >= 0.1 * hops[frozenset((str(src), str(dst)))], (src, dst, start, finish)
    ip_links = query(db, "SELECT src, dst, bytes FROM link_bytes WHERE run_id LIKE '%/ip/%'")
    assert dict(((s, d), b) for s, d, b in ip_links)[("a", "b")] > 200_000
    assert all(p is not None for (p,) in query(db, "SELECT predicted_s FROM runs"))

    faults = tmp_path / "faults.toml"
    faults.write_text(f'[cluster]\ntopology = "line.toml"\n[matrix]\njobs = ["{JOB}"]\nmodes = ["ip"]\n'
                      'algorithms = ["round-robin"]\ntimeout_s = 30\n'
                      '[[fault]]\nwhen = "function 1 starts"\nkill = "c"\n'
                      '[[fault]]\nat_s = 0.01\nlink_down = ["a", "b"]\nduration_s = 0.2\n'
                      '[[fault]]\nat_s = 500\nstop = "b"\n')
    done = sflow(tmp_path, "experiment", "run", str(faults), "-o", str(tmp_path / "faults"))
    # the killed node's part is re-planned on the others (ip mode's recovery) and the run ends well
    assert "1 runs ok, 0 failed" in done.stdout, done.stdout + done.stderr
    db = tmp_path / "faults" / "results.sqlite"
    ((status, error),) = query(db, "SELECT status, error FROM runs")
    assert status == "ok" and not error
    trace = json.loads((tmp_path / "faults" / "runs" / "fork-join_ip_round-robin_cold_1" / "trace.json").read_text())
    assert [e["kind"] for e in trace["events"] if e["kind"] == "node_lost"] == ["node_lost"], trace["events"]
    rows = query(db, "SELECT idx, kind, target, applied_s, effect FROM faults ORDER BY idx")
    assert rows[0][1:3] == ("kill", "c") and rows[0][3] is not None and "SIGKILL to c" in str(rows[0][4])
    assert rows[1][1:3] == ("link_down", "a–b") and "link a–b down" in str(rows[1][4])
    assert rows[2][3] is None and "not applied" in str(rows[2][4])
    report = sflow(tmp_path, "experiment", "report", str(tmp_path / "faults"))
    assert "SIGKILL to c" in (tmp_path / "faults" / "report.html").read_text(), report.stdout


def test_ctrl_c_stops_the_nodes_and_records_nothing(tmp_path: Path) -> None:
    job = tmp_path / "slow.json"
    job.write_text(json.dumps({"job_id": 5, "task_list": [{"task_id": 1, "workload": 1000, "cmd": "sleep 60"}]}))
    spec = tmp_path / "slow.toml"
    spec.write_text(f'[cluster]\nnodes = 2\n[matrix]\njobs = ["{job}"]\n')
    out = tmp_path / "out"
    # Ctrl-C as at a terminal: SIGINT at its default in the command, even when this test runs in
    # a background job, which starts with SIGINT ignored (as sflow then leaves it, like any program)
    proc = subprocess.Popen([sys.executable, "-m", "sflow", "experiment", "run", str(spec), "-o", str(out)],
                            env=environ(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    logs = out / "runs" / "slow_ip_sf-cuv_cold_1" / "nodes"
    while not any("event=function_start" in p.read_text() for p in logs.glob("node-*.log")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "run the same command again to resume" in stderr
    left = []
    for entry in Path("/proc").iterdir():
        try:
            if str(out) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                left.append(entry.name)
        except OSError:
            continue
    assert not left, f"processes left behind: {left}"
    assert query(out / "results.sqlite", "SELECT COUNT(*) FROM runs") == [(0,)]


def test_a_bad_spec_names_the_key(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(f'[matrix]\njobs = ["{JOB}"]\nmodes = ["ip", "ndn"]\n')
    done = sflow(tmp_path, "experiment", "run", str(spec), "-o", str(tmp_path / "o"), status=2)
    assert f"sflow: error: {spec}: $.matrix.modes[1]: unknown mode 'ndn'" in done.stderr
