""":class:`sflow.forked.Pending`: text made in a forked child (prepared from the fork on, finished
with what is given later), and made here whenever the child cannot make it."""

from __future__ import annotations

import os
import time

import pytest

from sflow import forked
from sflow.forked import Pending


def test_the_child_makes_the_text_and_is_reaped() -> None:
    parent = os.getpid()
    text = "é" * 300_000  # more than a pipe holds, and not ASCII
    given = list(range(100_000))  # more than a pipe holds pickled: give() must not wait for the child

    def prepare() -> str:
        time.sleep(0.2)  # the child is still preparing when given is handed over
        return text if os.getpid() != parent else "made here"

    pending = Pending(prepare, lambda prepared, values: prepared + str(sum(values)))
    assert pending.forked
    child = pending._pid
    pending.give(given)
    assert pending.result() == (text + str(sum(given))).encode()
    assert not pending.forked
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)  # reaped already


def test_a_child_that_fails_leaves_the_text_to_be_made_here() -> None:
    parent = os.getpid()

    def finish(prepared: str, given: str) -> str:
        if os.getpid() != parent:
            raise RuntimeError("only in the child")
        return f"{prepared} here with {given}"

    pending = Pending(lambda: "made", finish)
    pending.give("this")
    assert pending.result() == b"made here with this"


def test_without_a_fork_the_text_is_made_here(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(forked.os, "fork", no_fork)
    pending = Pending(lambda: "made", lambda prepared, given: f"{prepared} {given}")
    assert not pending.forked
    pending.give("here")
    assert pending.result() == b"made here"


def test_cancel_kills_and_reaps_the_child() -> None:
    parent = os.getpid()

    def slow() -> str:
        if os.getpid() != parent:
            time.sleep(3600)
        return ""

    pending = Pending(slow, lambda prepared, given: prepared)
    child = pending._pid
    pending.give(None)
    pending.cancel()  # reaps it: it must have been killed, or this would wait for an hour
    assert not pending.forked
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)


def test_a_child_never_given_anything_ends_when_this_process_cancels_before_giving() -> None:
    parent = os.getpid()
    pending = Pending(lambda: "", lambda prepared, given: prepared if os.getpid() != parent else "here")
    child = pending._pid
    pending.cancel()  # the child waits for what is given; killed and reaped
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)


def test_a_child_that_dies_before_it_is_given_anything_leaves_the_text_to_be_made_here() -> None:
    parent = os.getpid()

    def prepare() -> str:
        if os.getpid() != parent:
            os._exit(3)  # dies while this process may be handing over what it is given
        return "made"

    pending = Pending(prepare, lambda prepared, given: f"{prepared} here with {len(given)}")
    time.sleep(0.1)
    pending.give(list(range(200_000)))  # the pipe's reader is gone: the send ends, nothing raised
    assert pending.result() == b"made here with 200000"
