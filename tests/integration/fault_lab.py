"""Faults injected into real node processes mid-job, in every chaining mode: the one place that
knows how to run a job, hit the node running a marked function (SIGKILL, SIGSTOP, SIGKILL and a
restart), and judge the outcome — byte-identical output, and how long after the node's death the
re-placed function started; the delegator killed (the nodes drop the job) and a full disk (a clear
error, nothing partial). Used by the fault tests and by ``benchmarks/faults.py``.

The job is a fork–join (1 → {2, 3, 4} → 5) whose function 2 sleeps for ``marker`` seconds, so
that its process is found by its command line and its node (the process's ancestor) is the one
hit."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

PY = sys.executable
#: a short heartbeat (0.5 s x 3) so that a silent node is noticed in about two seconds
FAST = {"SFLOW_NODE_HEARTBEAT_INTERVAL": "0.5", "SFLOW_NODE_HEARTBEAT_MISSES": "3"}
KILL, STOP, RESTART = "SIGKILL", "SIGSTOP", "restart"


def marker_job(marker: str, job_id: int = 41) -> dict[str, Any]:
    """1 → {2, 3, 4} → 5; function 2 runs ``sleep <marker>`` first; 3 sends 5 a value too, and 5
    has an END value (``joined``)."""
    return {"job_id": job_id, "task_list": [
        {"task_id": 1, "workload": 1, "cmd": "seq 1 20000 > x.txt",
         "out_file_list": [{"path": "x.txt", "size": 0.1, "dest_task_id": [2, 3, 4]}]},
        {"task_id": 2, "workload": 1, "cmd": f"sleep {marker} && sort -r $F^1 > a.txt",
         "out_file_list": [{"path": "a.txt", "size": 0.1, "dest_task_id": [5]}]},
        {"task_id": 3, "workload": 1, "cmd": "grep 7 $F^1 > b.txt",
         "out_file_list": [{"path": "b.txt", "size": 0.1, "dest_task_id": [5]}],
         "out_value": {"val": "seven", "size": 0, "dest_task_id": [5]}},
        {"task_id": 4, "workload": 1, "cmd": "tr 1 9 < $F^1 > c.txt",
         "out_file_list": [{"path": "c.txt", "size": 0.1, "dest_task_id": [5]}]},
        {"task_id": 5, "workload": 1, "cmd": "cat $F^2 $F^3 $F^4 | md5sum > out.txt && echo $V^3 >> out.txt",
         "out_file_list": [{"path": "out.txt", "size": 0.001, "dest_task_id": []}],
         "out_value": {"val": "joined", "size": 0, "dest_task_id": []}},
    ]}


def reference(base: Path) -> bytes:
    """``out.txt`` of :func:`marker_job` made by the shell, without sflow."""
    ref = base / "reference"
    ref.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sh", "-ec", "seq 1 20000 > x.txt; sort -r x.txt > a.txt; grep 7 x.txt > b.txt; "
                    "tr 1 9 < x.txt > c.txt; cat a.txt b.txt c.txt | md5sum > out.txt && echo seven >> out.txt"],
                   cwd=ref, check=True)
    return (ref / "out.txt").read_bytes()


def processes_with(marker: str) -> set[int]:
    """The processes whose command line contains ``marker`` (pytest's own excepted)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline:
            pids.add(int(entry.name))
    return pids


def parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def owner(pid: int, candidates: Sequence[int]) -> int | None:
    """Which of ``candidates`` (process ids) ``pid`` descends from: its index, or None."""
    seen: set[int] = set()
    current: int | None = pid
    while current and current not in seen:
        if current in candidates:
            return list(candidates).index(current)
        seen.add(current)
        current = parent(current)
    return None


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class NodeProcess(Protocol):
    proc: subprocess.Popen[str]
    address: str


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    #: the job finished and its result is byte-identical to the reference
    identical: bool
    #: index of the node hit
    victim: int
    #: seconds from the fault to the start of the marked function elsewhere (None: not seen)
    failover: float | None


def run_with_fault(argv: Sequence[str], nodes: Sequence[NodeProcess], marker: str, fault: str, result: Path,
                   expected: bytes, *, restart: Callable[[int], Any] | None = None,
                   env: Mapping[str, str] | None = None, timeout: float = 180.0) -> Outcome:
    """Run the delegator ``argv`` (a job from :func:`marker_job`); once function 2 runs, hit its
    node with ``fault``; wait for the delegator. ``restart(i)`` starts node ``i`` again (for
    :data:`RESTART`). A SIGSTOPped node is left stopped: the caller continues it."""
    delegator = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=dict(os.environ, **FAST, **(env or {})))
    try:
        wait_for(lambda: bool(processes_with(marker)) or delegator.poll() is not None, 60,
                 f"function 2 (sleep {marker}) to start")
        first = processes_with(marker)
        pids = [n.proc.pid for n in nodes]
        victim = next((i for p in first if (i := owner(p, pids)) is not None), None)
        if victim is None:
            raise AssertionError(f"no node runs function 2 (processes {sorted(first)}; delegator "
                                 f"{delegator.poll()})")
        hit = time.monotonic()
        os.kill(pids[victim], signal.SIGSTOP if fault == STOP else signal.SIGKILL)
        if fault != STOP:
            nodes[victim].proc.wait()
        starting = None
        if fault == RESTART:  # (in a thread: the re-placed function may start meanwhile)
            assert restart is not None, "a restart fault needs restart()"
            starting = threading.Thread(target=restart, args=(victim,))
            starting.start()
        failover = None
        while delegator.poll() is None:
            if processes_with(marker) - first:
                failover = time.monotonic() - hit
                break
            time.sleep(0.01)
        if starting is not None:
            starting.join(60)
        out, err = delegator.communicate(timeout=timeout)
    finally:
        if delegator.poll() is None:
            delegator.kill()
            delegator.wait()
    identical = delegator.returncode == 0 and result.exists() and result.read_bytes() == expected
    return Outcome(delegator.returncode, out, err, identical, victim, failover)


def kill_delegator_mid_job(argv: Sequence[str], workdirs: Sequence[Path], marker: str, bound: float,
                           env: Mapping[str, str] | None = None) -> float | None:
    """Start the delegator ``argv`` (a job from :func:`marker_job`), SIGKILL it once function 2
    runs; the seconds until no function of the job runs any more and every node's working
    directory is empty, or None when that takes longer than ``bound``."""
    delegator = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=dict(os.environ, **FAST, **(env or {})))
    try:
        wait_for(lambda: bool(processes_with(marker)), 60, f"function 2 (sleep {marker}) to start")
    finally:
        delegator.kill()
        delegator.communicate()
    killed = time.monotonic()

    def dropped() -> bool:
        return not processes_with(marker) and all(not any(w.iterdir()) for w in workdirs if w.exists())

    try:
        wait_for(dropped, bound, "the nodes to drop the orphaned job")
    except AssertionError:
        return None
    return time.monotonic() - killed


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (root only), unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


#: a job whose 3 MB intermediate file cannot fit on a node whose disk is a 1 MB tmpfs
FULL_DISK_JOB: dict[str, Any] = {"job_id": 32, "task_list": [
    {"task_id": 1, "workload": 1, "cmd": "head -c 3000000 /dev/zero > big.bin",
     "out_file_list": [{"path": "big.bin", "size": 3, "dest_task_id": [2]}]},
    {"task_id": 2, "workload": 1, "cmd": "wc -c < $F^1 > n.txt",
     "out_file_list": [{"path": "n.txt", "size": 0.001, "dest_task_id": []}]},
]}


@dataclass
class FullDisk:
    code: int
    stderr: str
    #: the error names the full disk
    clear: bool
    #: nothing partial kept: no result, no piece of the input on the full node
    clean: bool


def run_on_full_disk(argv: Sequence[str], result: Path, full: Path, timeout: float = 120.0) -> FullDisk:
    """Run :data:`FULL_DISK_JOB` (function 2 placed on the node whose disk is ``full``)."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **FAST))
    clear = done.returncode == 1 and "No space left on device" in done.stderr
    try:
        wait_for(lambda: not list(full.rglob("*big.bin*")), 10, "the partial input to be removed")
        clean = not result.exists()
    except AssertionError:
        clean = False
    return FullDisk(done.returncode, done.stderr, clear, clean)
