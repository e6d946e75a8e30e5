"""Functions of a root node run as ``node.run_as`` (native) and in confined containers (Docker):
the executor with the real runners, real processes and the real engine. Needs root (CI is root)."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from sflow.config import load_config
from sflow.node.execution import Executor
from sflow.node.runners import spawner
from sflow.node.runners.native import NativeRunner

from .conftest import BUSYBOX, pid_alive, reactor, request, run, wait, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="functions change user only when the node is root")

Make = Callable[..., Executor]
FUNCTION_USER = "sflow-fn"


def test_native_functions_run_as_the_function_user_in_their_job_directory(make_executor: Make, tmp_path: Path) -> None:
    user = pwd.getpwnam(FUNCTION_USER)
    # The node's directories above the job directory are closed to the function user (as the
    # default one under /root is); the function starts in its own all the same.
    closed = tmp_path / "node-work"
    closed.mkdir(mode=0o700)
    job = closed / "job"
    (job / "out").mkdir(parents=True)  # made by the node (as root) before the function runs
    (job / "input.txt").write_text("from a predecessor\n")
    executor = make_executor()
    assert executor.function_user is not None and executor.function_user.name == FUNCTION_USER
    cmd = ("id -u; id -G; pwd; echo $HOME; cat input.txt; echo made > out/result.txt; "
           "cat ../../x 2>&1 | grep -c 'Permission denied'")
    for cpus in (None, (max(os.sched_getaffinity(0)),)):
        result = run(executor, request(job, cmd, outputs=("out/result.txt",), cpus=cpus))
        assert result.ok, result
        lines = result.stdout_tail.splitlines()
        assert lines == [str(user.pw_uid), str(user.pw_gid), str(job), user.pw_dir, "from a predecessor", "1"], lines
        assert (job / "out" / "result.txt").stat().st_uid == user.pw_uid
        assert job.stat().st_uid == (job / "out").stat().st_uid == user.pw_uid


def test_the_spawner_is_out_of_reach_and_a_node_survives_its_death(make_executor: Make, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Functions of a root node are started by a resident spawner that already runs as the
    # function user: their parent. The functions cannot read its descriptors (it is not
    # dumpable), run with no_new_privs and the user's primary group only, and start in the real
    # job directory (getcwd and $PWD), under a directory closed to them.
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    job = closed / "job"
    # A node in the C locale: the spawner's Python adds LC_CTYPE to its own environment, not to
    # the functions' (they get the node's, filtered).
    for name in ("LANG", "LC_ALL", "LC_CTYPE"):
        monkeypatch.delenv(name, raising=False)
    executor = make_executor()
    cmd = ("echo $PPID; ls /proc/$PPID/fd 2>&1 | grep -c 'Permission denied'; "
           "grep -E '^(NoNewPrivs|Groups):' /proc/self/status | tr -d '\t'; /bin/pwd; echo $PWD; "
           "echo ${LC_CTYPE-none}")
    spawner = 0
    for cpus in (None, (max(os.sched_getaffinity(0)),)):
        result = run(executor, request(job, cmd, cpus=cpus))
        assert result.ok, result
        ppid, denied, groups, nnp, cwd, logical, ctype = result.stdout_tail.splitlines()
        assert spawner in (0, int(ppid)) and pid_alive(int(ppid))
        spawner = int(ppid)
        # no supplementary group (uid and gid: the test above)
        assert denied == "1" and nnp == "NoNewPrivs:1" and groups.strip() == "Groups:", result.stdout_tail
        assert cwd == logical == str(job) and ctype == "none"
    # The spawner dies while a function runs (a function may kill it: the same user): that
    # function fails, saying so, and everything it started is killed; the next function gets a
    # new spawner.
    pending = executor.run(request(job, "echo started; (trap '' TERM; exec sleep 300) & echo $! > bg.pid; exec sleep 300",
                                   task_id=2))
    wait_until(lambda: (job / "bg.pid").exists() and bool((job / "bg.pid").read_text().strip()), what="function to start")
    background = int((job / "bg.pid").read_text())
    os.kill(spawner, signal.SIGKILL)
    lost = wait(pending, 20)
    assert not lost.ok and lost.reason.startswith(f"the function spawner (pid {spawner}) died (killed by signal 9)"), lost
    assert lost.stdout_tail == "started\n"
    wait_until(lambda: not pid_alive(background), what=f"the lost function's process {background} to be killed")
    after = run(executor, request(job, "echo $PPID", task_id=3))
    assert after.ok and int(after.stdout_tail) != spawner, after
    # When the node shuts down, the spawner kills what still runs and exits.
    running = executor.run(request(job, "echo $PPID > ppid; exec sleep 300", task_id=4))
    wait_until(lambda: (job / "ppid").exists() and bool((job / "ppid").read_text().strip()), what="function to start")
    wait(executor.shutdown(), 20)
    assert running.called
    wait_until(lambda: not pid_alive(int((job / "ppid").read_text())), what="the spawner to exit")


def test_many_functions_at_once_and_kills_through_the_spawner(make_executor: Make, tmp_path: Path) -> None:
    # Requests and reports cross one socket: 60 functions started at once all report their own
    # exit status and output; a function killed as soon as it was asked for (its request may not
    # have reached the spawner yet) is killed all the same.
    executor = make_executor()
    job = tmp_path / "job"
    pending = [executor.run(request(job, f"echo {n}; exit {n % 3}", task_id=n)) for n in range(60)]
    killed = executor.run(request(job, "echo $$ > k.pid; exec sleep 300", task_id=99, run="run-k"))
    executor.cancel_run("run-k")
    for n, d in enumerate(pending):
        result = wait(d, 60)
        assert (result.stdout_tail, result.exit_status) == (f"{n}\n", n % 3), result
    assert wait(killed, 20).reason == "cancelled"
    if (job / "k.pid").exists() and (job / "k.pid").read_text().strip():
        wait_until(lambda: not pid_alive(int((job / "k.pid").read_text())), what="the cancelled function to die")


def test_a_function_the_spawner_cannot_pin_never_runs(make_executor: Make, tmp_path: Path) -> None:
    user = make_executor().function_user
    assert user is not None
    job = tmp_path / "job"
    job.mkdir()
    os.chown(job, user.uid, user.gid)
    runner = NativeRunner(reactor, user=user)
    try:
        outcome = wait(runner.start("touch ran", job, (max(os.sched_getaffinity(0)) + 1000,)).done)
        assert outcome.exit_status is None and outcome.error == "cannot start /bin/sh: Invalid argument", outcome
        assert not (job / "ran").exists()
        assert wait(runner.start("touch ran", job, None).done).exit_status == 0 and (job / "ran").exists()
    finally:
        runner.close()


def test_the_spawner_refuses_to_run_as_root() -> None:
    source = Path(spawner.__file__).read_text()
    result = subprocess.run([sys.executable, "-I", "-S", "-c", source], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "refusing to run as root" in result.stderr, result


def test_containers_are_confined(engine: docker.DockerClient, make_executor: Make, tmp_path: Path) -> None:
    user = pwd.getpwnam(FUNCTION_USER)
    config = load_config(environ={"SFLOW_NODE_CONTAINER_NETWORK": "none", "SFLOW_NODE_CONTAINER_PIDS": "40",
                                  "SFLOW_NODE_CONTAINER_MEMORY_MB": "48",
                                  "SFLOW_NODE_CONTAINER_CAPABILITIES": "NET_BIND_SERVICE"})
    executor = make_executor(config)
    job = tmp_path / "job"
    cgroup = ("cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max; "
              "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    cmd = (f"cal > /dev/null; id -u; {cgroup}; grep -c : /proc/net/dev; "
           "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status | tr -d '\\t' | tr '\\n' ' '")
    result = run(executor, request(job, cmd, docker_image=BUSYBOX))
    assert result.ok, result
    uid, pids, memory, interfaces, status = result.stdout_tail.splitlines()
    assert int(uid) == user.pw_uid
    assert (int(pids), int(memory)) == (40, 48 * 1024 * 1024)
    assert int(interfaces) == 1  # network mode none: the loopback interface only
    fields = dict(item.split(":") for item in status.split())
    assert int(fields["CapEff"], 16) == 0  # a non-root user holds none of what the bounding set allows
    assert int(fields["CapBnd"], 16) == 1 << 10  # CAP_NET_BIND_SERVICE only
    assert fields["NoNewPrivs"] == "1"
    # A fork bomb stays within the pids limit; a function that takes more memory than its limit
    # is killed and its failure says why.
    bomb = run(executor, request(job, "cal > /dev/null; for i in $(seq 100); do sleep 2 & done; wait",
                                 docker_image=BUSYBOX))
    assert not bomb.ok and "can't fork" in bomb.stderr_tail, bomb
    hog = run(executor, request(job, "cal > /dev/null; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}",
                                docker_image=BUSYBOX))
    assert not hog.ok and "node.container_memory_mb" in hog.reason and "48 MiB" in hog.reason, hog
