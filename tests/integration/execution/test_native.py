"""Native execution with real processes under the real reactor."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from pathlib import Path

import pytest

from sflow.node.execution import Executor
from sflow.node.runners.native import NativeRunner

from .conftest import pid_alive, reactor, request, run, wait, wait_until

Make = Callable[..., Executor]


def test_glob_pipe_and_declared_output(make_executor: Make, tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("beta\n")
    (tmp_path / "a.txt").write_text("alpha\n")
    result = run(
        make_executor(),
        request(tmp_path, "mkdir -p out && cat ./*.txt | sort -r > out/all.txt && echo $V^2", values={2: "v a l"},
                outputs=("./out/all.txt",)),
    )
    assert result.ok, result
    assert (result.reason, result.exit_status, result.where) == ("", 0, "native")
    assert result.stdout_tail == "v a l\n"
    assert (tmp_path / "out" / "all.txt").read_text() == "beta\nalpha\n"
    assert result.started <= result.finished


def test_files_from_predecessors_and_cwd(make_executor: Make, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x y.txt").write_text("data")
    result = run(make_executor(), request(tmp_path, "cp $F^4 copy.txt && pwd", files={4: "./in/x y.txt"}, outputs=("copy.txt",)))
    assert result.ok, result
    assert result.stdout_tail.strip() == str(tmp_path)
    assert (tmp_path / "copy.txt").read_text() == "data"


def test_sflow_settings_do_not_reach_functions(make_executor: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFLOW_FILE_SERVER_PASSWORD", "hunter2")
    monkeypatch.setenv("SOME_TOOL_HOME", "/opt/tool")
    result = run(make_executor(), request(tmp_path, "env"))
    assert result.ok
    assert "hunter2" not in result.stdout_tail and "SOME_TOOL_HOME=/opt/tool" in result.stdout_tail


def test_exit_status_and_stderr_tail(make_executor: Make, tmp_path: Path) -> None:
    result = run(make_executor(), request(tmp_path, "echo working; echo 'bad input' >&2; exit 3"))
    assert not result.ok
    assert (result.exit_status, result.reason) == (3, "exit status 3")
    assert result.stderr_tail == "bad input\n" and result.stdout_tail == "working\n"


def test_directories_of_declared_outputs_are_made(make_executor: Make, tmp_path: Path) -> None:
    result = run(make_executor(), request(tmp_path, "echo x > out/deep/a.txt", outputs=("./out/deep/a.txt",)))
    assert result.ok, result
    result = run(make_executor(), request(tmp_path, "true", outputs=("../elsewhere/a.txt",)))
    assert not result.ok and result.reason.startswith("declared output: ") and "escapes" in result.reason
    assert not (tmp_path.parent / "elsewhere").exists()


def test_missing_declared_output(make_executor: Make, tmp_path: Path) -> None:
    result = run(make_executor(), request(tmp_path, "mkdir -p out; touch out/a.txt", outputs=("out/a.txt", "out/b.txt")))
    assert not result.ok and result.exit_status == 0
    assert result.reason == "declared output out/b.txt was not produced"


def test_output_symlinked_out_of_the_job_directory(make_executor: Make, tmp_path: Path) -> None:
    job = tmp_path / "job"
    (tmp_path / "secret").write_text("not for successors")
    result = run(make_executor(), request(job, f"ln -s {tmp_path}/secret out/a.txt", outputs=("out/a.txt",)))
    assert not result.ok and "symlink" in result.reason


def test_command_errors_fail_the_function(make_executor: Make, tmp_path: Path) -> None:
    executor = make_executor()
    result = run(executor, request(tmp_path, "cat $F^9", task_id=5))
    assert not result.ok and result.where == ""
    assert result.reason.startswith("job 1 task 5 cmd: $F^9: no file arrived from predecessor 9")
    result = run(executor, request(tmp_path, "no-such-program-sflow x"))
    assert not result.ok
    assert result.reason == "program 'no-such-program-sflow' is not installed on this node and the task names no docker image"
    result = run(executor, request(tmp_path, "DUMMY x"))
    assert not result.ok and "names no docker image" in result.reason


def test_timeout_kills_the_whole_process_group(make_executor: Make, tmp_path: Path) -> None:
    # A background child that ignores SIGTERM, in a pipeline: SIGTERM then SIGKILL must reach it.
    cmd = "(trap '' TERM; exec sleep 300) & echo $! > bg.pid; sleep 300 | cat"
    result = run(make_executor(), request(tmp_path, cmd, timeout=0.5))
    assert not result.ok
    assert result.reason == "timeout after 0.5s" and result.exit_status is None
    assert result.finished - result.started < 10
    bg = int((tmp_path / "bg.pid").read_text())
    wait_until(lambda: not pid_alive(bg), timeout=10, what=f"background process {bg} to die")


def test_cancel_run(make_executor: Make, tmp_path: Path) -> None:
    executor = make_executor()
    pending = {
        (job, n): executor.run(request(tmp_path, f"echo $$ > {job}-{n}.pid; exec sleep 300", job_id=job, run=f"run-{job}", task_id=n))
        for job, n in ((7, 1), (7, 2), (8, 1))
    }
    pidfiles = [tmp_path / f"{job}-{n}.pid" for job, n in pending]
    wait_until(lambda: all(p.exists() and p.read_text().strip() for p in pidfiles), what="functions to start")
    pids = {key: int((tmp_path / f"{key[0]}-{key[1]}.pid").read_text()) for key in pending}
    executor.cancel_run("run-7")
    for key in ((7, 1), (7, 2)):
        result = wait(pending[key], 10)
        assert (result.ok, result.reason) == (False, "cancelled")
        wait_until(lambda: not pid_alive(pids[key]), what=f"{key} to die")
    assert not pending[(8, 1)].called and pid_alive(pids[(8, 1)])
    executor.cancel_run("run-8")
    assert wait(pending[(8, 1)], 10).reason == "cancelled"


def test_shutdown_stops_everything(make_executor: Make, tmp_path: Path) -> None:
    executor = make_executor()
    d = executor.run(request(tmp_path, "echo $$ > p.pid; exec sleep 300"))
    wait_until(lambda: (tmp_path / "p.pid").exists() and bool((tmp_path / "p.pid").read_text().strip()))
    pid = int((tmp_path / "p.pid").read_text())
    wait(executor.shutdown(), 10)
    assert d.called and not pid_alive(pid)
    after = run(executor, request(tmp_path, "true"))
    assert after.reason == "the node is shutting down"


def test_large_output_is_bounded(make_executor: Make, tmp_path: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cmd = "head -c 50000000 /dev/zero | tr '\\0' a; echo; echo END; head -c 20000000 /dev/zero | tr '\\0' e >&2"
    result = run(make_executor(), request(tmp_path, cmd), timeout=60)
    assert result.ok, result.reason
    assert result.stdout_tail.endswith("\nEND\n") and len(result.stdout_tail) < 20_000
    assert "earlier bytes not kept" in result.stdout_tail
    assert len(result.stderr_tail) < 20_000
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 40_000, f"the node grew by {grown_kb} KB while reading 70 MB of output"


def test_pinning_to_one_cpu(make_executor: Make, tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))  # one this process may use, whichever the machine gives it
    executor = make_executor()
    result = run(executor, request(tmp_path, "grep Cpus_allowed_list /proc/self/status | cat", cpus=(cpu,)))
    assert result.ok, result
    assert result.stdout_tail.split() == ["Cpus_allowed_list:", str(cpu)]
    unpinned = run(executor, request(tmp_path, "grep Cpus_allowed_list /proc/self/status"))
    assert unpinned.stdout_tail.split()[1] != str(cpu) or len(os.sched_getaffinity(0)) == 1


def test_pinning_to_an_unavailable_cpu(make_executor: Make, tmp_path: Path) -> None:
    cpu = max(os.sched_getaffinity(0)) + 1000
    result = run(make_executor(), request(tmp_path, "true", cpus=(cpu,)))
    assert not result.ok and result.reason.startswith(f"CPU {cpu} is not available on this node")


def test_the_function_sees_only_its_own_descriptors_and_default_signals(make_executor: Make, tmp_path: Path) -> None:
    # stdin is /dev/null, stdout and stderr are pipes; no descriptor of the node leaks, not even
    # one the node inherited without close-on-exec, pinned or not (the shell itself keeps a copy
    # of stdin on fd 10); SIGPIPE is back to its default, so a pipeline whose reader stops early
    # ends instead of hanging.
    leaked = os.open(os.devnull, os.O_WRONLY)  # stands for a descriptor the node inherited
    os.set_inheritable(leaked, True)
    cpus = (max(os.sched_getaffinity(0)),)
    try:
        results = [run(make_executor(), request(
            tmp_path,
            "for f in /proc/$$/fd/*; do echo ${f##*/}=$(readlink $f); done | tr '\\n' ' '; echo; "
            "read x && echo read:$x || echo eof; yes | head -n 1; grep -E '^Sig(Ign|Blk):' /proc/self/status",
            cpus=pin,
        )) for pin in (None, cpus)]
    finally:
        os.close(leaked)
    for result in results:
        assert result.ok, result
        fds, stdin, yes, blocked, ignored = result.stdout_tail.splitlines()
        # (an entry that no longer resolves was the directory the shell read for the glob)
        links = {fd: target for fd, target in (item.split("=", 1) for item in fds.split()) if target}
        assert links.keys() - {"10"} == {"0", "1", "2"}, fds
        assert links["0"] == links.get("10", os.devnull) == os.devnull, fds
        assert links["1"].startswith("pipe:") and links["2"].startswith("pipe:"), fds
        assert (stdin, yes) == ("eof", "y")
        # Signals 32 and 33 are glibc's own (thread cancellation, set*id); its posix_spawn leaves
        # them ignored and every program's glibc installs its handlers for them itself.
        glibc_internal = 0b11 << 31
        assert int(blocked.split()[1], 16) == 0, blocked
        assert int(ignored.split()[1], 16) & ~glibc_internal == 0, ignored


def test_cwd_and_environment(make_executor: Make, tmp_path: Path) -> None:
    odd = tmp_path / "a dir with 'quotes', $HOME and ;"
    result = run(make_executor(), request(odd, 'pwd; echo "$PWD"; echo "$SOME_TOOL_HOME"'))
    assert result.ok, result
    assert result.stdout_tail.splitlines() == [str(odd), str(odd), os.environ.get("SOME_TOOL_HOME", "")]
    # The shell's messages give the command's own line numbers.
    result = run(make_executor(), request(odd, "true\nno-such-program-sflow"))
    assert (result.exit_status, result.stderr_tail) == (127, "/bin/sh: 2: no-such-program-sflow: not found\n")
    # A job directory that is gone when the shell starts: exit 126 and the shell says why, pinned
    # or not, and the command does not run.
    runner = NativeRunner(reactor)
    for cpus in (None, (max(os.sched_getaffinity(0)),)):
        outcome = wait(runner.start(f"touch {tmp_path}/ran", tmp_path / "gone", cpus).done)
        assert outcome.exit_status == 126 and "can't cd to" in outcome.stderr_tail, outcome
        assert not (tmp_path / "ran").exists()


def test_pinned_function_and_what_it_starts_stay_pinned(make_executor: Make, tmp_path: Path) -> None:
    cpu = max(os.sched_getaffinity(0))
    cmd = "sh -c 'grep Cpus_allowed_list /proc/self/status' & wait; grep Cpus_allowed_list /proc/$$/status"
    result = run(make_executor(), request(tmp_path, cmd, cpus=(cpu,)))
    assert result.ok, result
    assert [line.split()[1] for line in result.stdout_tail.splitlines()] == [str(cpu), str(cpu)]


def test_killed_by_a_signal(make_executor: Make, tmp_path: Path) -> None:
    result = run(make_executor(), request(tmp_path, "echo before; kill -KILL $$"))
    assert not result.ok
    assert (result.exit_status, result.reason, result.stdout_tail) == (None, "killed by signal 9", "before\n")


def test_pinned_timeout_kills_the_whole_group(make_executor: Make, tmp_path: Path) -> None:
    cpu = max(os.sched_getaffinity(0))
    cmd = "(trap '' TERM; exec sleep 300) & echo $! > bg.pid; exec sleep 300"
    result = run(make_executor(), request(tmp_path, cmd, timeout=0.5, cpus=(cpu,)))
    assert (result.ok, result.reason) == (False, "timeout after 0.5s")
    bg = int((tmp_path / "bg.pid").read_text())
    wait_until(lambda: not pid_alive(bg), timeout=10, what=f"background process {bg} to die")
