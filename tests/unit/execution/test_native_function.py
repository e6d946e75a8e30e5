"""The native runner's bookkeeping on a fake reactor: when a function's result is reported (the
shell's exit and both pipes' end), the grace given to escaped processes that keep the pipes, the
kill sequence of the whole process group, and the script that holds, enters the directory and
runs the command. The real spawns are in tests/integration/execution/test_native.py."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from sflow.node.runners import Outcome
from sflow.node.runners import native
from sflow.node.runners.native import KILL_GRACE, _Function, spawn_script
from sflow.node.runners.spawner import pinned


class FakeReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.readers: list[Any] = []

    def callFromThread(self, f: Any, *args: Any, **kw: Any) -> None:
        f(*args, **kw)

    def addReader(self, reader: Any) -> None:
        self.readers.append(reader)

    def removeReader(self, reader: Any) -> None:
        if reader in self.readers:
            self.readers.remove(reader)

    def addSystemEventTrigger(self, *args: Any, **kw: Any) -> None:
        pass


@pytest.fixture
def signals(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(native.os, "killpg", lambda pgid, sig: sent.append((pgid, sig)))
    return sent


def _function(reactor: FakeReactor) -> tuple[_Function, list[int]]:
    ends = [os.pipe() for _ in range(3)]
    for r, _ in ends:
        os.set_blocking(r, False)  # as the runner's read ends are
    f = _Function(reactor, 4242, tail_bytes=8)
    f.watch(ends[0][0], ends[1][0], ends[2][0])
    writers = [w for _, w in ends]
    return f, writers


def _outcome(f: _Function) -> Outcome | None:
    if not f.done.called:
        return None
    result: Outcome = f.done.result
    return result


def test_result_after_exit_and_both_pipes_with_bounded_tails(signals: list[tuple[int, int]]) -> None:
    reactor = FakeReactor()
    f, (out_w, err_w, exit_w) = _function(reactor)
    out, err, _exit = reactor.readers
    os.write(out_w, b"0123456789\nabc\n")
    out.doRead()
    os.close(out_w)
    out.doRead()  # end of stdout
    f.exited(7 << 8)  # exit status 7
    assert _outcome(f) is None, "stderr is still open"
    assert signals == [(4242, signal.SIGKILL)]  # what the shell left in its group goes with it
    os.write(err_w, b"oops\n")
    err.doRead()
    os.close(err_w)
    err.doRead()
    outcome = _outcome(f)
    assert outcome is not None
    assert (outcome.exit_status, outcome.signal, outcome.stderr_tail) == (7, None, "oops\n")
    assert outcome.stdout_tail == "[11 earlier bytes not kept]\nabc\n"
    _exit.close()
    os.close(exit_w)
    assert reactor.readers == [] and reactor.getDelayedCalls() == []


def test_pipes_kept_by_escaped_processes_are_closed_after_a_grace(signals: list[tuple[int, int]]) -> None:
    reactor = FakeReactor()
    f, writers = _function(reactor)
    f.exited(signal.SIGTERM)  # killed by SIGTERM
    reactor.advance(KILL_GRACE - 0.1)
    assert _outcome(f) is None
    reactor.advance(0.1)
    outcome = _outcome(f)
    assert outcome is not None and (outcome.exit_status, outcome.signal) == (None, signal.SIGTERM)
    for w in writers:
        os.close(w)


def test_kill_terms_the_group_then_kills_it(signals: list[tuple[int, int]]) -> None:
    reactor = FakeReactor()
    f, writers = _function(reactor)
    f.kill()
    f.kill()  # once is enough
    assert signals == [(4242, signal.SIGTERM)]
    reactor.advance(KILL_GRACE)
    assert signals == [(4242, signal.SIGTERM), (4242, signal.SIGKILL)]
    for pipe in list(f.pipes):
        pipe.close()
    f.exited(signal.SIGKILL)
    assert _outcome(f) is not None and reactor.getDelayedCalls() == []
    f.kill()  # after the end: nothing more is signalled
    assert len(signals) == 3
    for w in writers:
        os.close(w)


def test_the_script_enters_the_directory_on_the_command_line() -> None:
    workdir = Path("/jobs/it's here")
    script = spawn_script("echo hi", workdir)
    assert script == "cd -- '/jobs/it'\"'\"'s here' || exit 126; echo hi" and "\n" not in script


def test_pinned_pins_the_calling_thread_for_the_block_only() -> None:
    mask = os.sched_getaffinity(0)
    cpu = max(mask)
    with pinned((cpu,)):
        assert os.sched_getaffinity(0) == {cpu}
        pid = os.posix_spawn("/bin/sleep", ["sleep", "30"], {})
    born = os.sched_getaffinity(pid)  # the child was born with the thread's mask, and keeps it
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert born == {cpu} and os.sched_getaffinity(0) == mask
    with pinned(None):
        assert os.sched_getaffinity(0) == mask
    with pytest.raises(OSError), pinned((cpu + 1000,)):
        raise AssertionError("a CPU that is not there pins nothing")  # pragma: no cover
    assert os.sched_getaffinity(0) == mask


def test_exit_reads_pipes_at_once_so_one_wake_up_suffices(signals: list[tuple[int, int]]) -> None:
    # The shell exited and its pipes hold their last bytes and end-of-file: the pidfd's event alone
    # gives the result (the pipes' own events are not waited for).
    reactor = FakeReactor()
    f, (out_w, err_w, exit_w) = _function(reactor)
    os.write(out_w, b"last\n")
    os.close(out_w)
    os.close(err_w)
    f.exited(0)
    outcome = _outcome(f)
    assert outcome is not None and (outcome.exit_status, outcome.stdout_tail) == (0, "last\n")
    assert reactor.getDelayedCalls() == []
    os.close(exit_w)
