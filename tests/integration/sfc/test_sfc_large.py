"""A large result between two real nodes in icn mode: produced on one node, an input on the other
and an END result at the delegator; streamed (served from the store's file segment by segment,
written to files as it arrives), byte-identical, and never held whole by either node."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from sfc_cluster import delegate, start_node, stop, write_env, write_job, write_mapping

from sflow.secret import generate_secret

LINES = 2_600_000  # `seq 1 LINES`: about 20 MB


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in octets."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_large_result_is_streamed_between_nodes_and_to_the_delegator(tmp_path: Path) -> None:
    secret = generate_secret(tmp_path / "secret")
    nodes = [start_node(tmp_path, i, secret, "icn") for i in range(2)]
    try:
        job = {"job_id": 61, "task_list": [
            {"task_id": 1, "workload": 1, "cmd": f"seq 1 {LINES} > big.txt",
             "out_file_list": [{"path": "big.txt", "size": 20, "dest_task_id": [2]}]},
            {"task_id": 2, "workload": 1, "cmd": "cp $F^1 copy.txt && md5sum < $F^1 > sum.txt",
             "out_file_list": [{"path": "copy.txt", "size": 20, "dest_task_id": []},
                               {"path": "sum.txt", "size": 0.001, "dest_task_id": []}]},
        ]}
        mapping = write_mapping(tmp_path / "m.json", job, nodes, {1: 0, 2: 1})
        before = [peak_rss(n.proc.pid) for n in nodes]
        out = tmp_path / "out"
        trace = delegate(write_env(tmp_path / "env.json", nodes), write_job(tmp_path / "j.json", job), out, "icn",
                         "--mapping", str(mapping), "--secret-file", str(secret))
        after = [peak_rss(n.proc.pid) for n in nodes]
        expected = subprocess.run(["seq", "1", str(LINES)], capture_output=True, check=True).stdout
        size = len(expected)
        assert size > 19_000_000
        assert (out / "copy.txt").read_bytes() == expected
        assert (out / "sum.txt").read_text().split()[0] == hashlib.md5(expected).hexdigest()
        assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no spool left behind
        assert {t["task"] for t in trace["tasks"] if t["where"].startswith("executed")} == {1, 2}
        # Neither node held the result whole: the producer served it from its store's file, the
        # consumer wrote it into its store as it came (and both served/passed it as a file).
        growth = [a - b for a, b in zip(after, before)]
        print(f"peak RSS growth {growth}, makespan {trace['makespan']:.1f} s")
        assert max(growth) < size // 2, f"peak RSS grew by {growth} for a {size}-octet result"
        held = [p for p in (tmp_path / "results1" / "results").glob("*.bundle") if p.stat().st_size > size]
        assert held, "the consumer's store does not hold the input it received"
    finally:
        for node in nodes:
            stop(node)
