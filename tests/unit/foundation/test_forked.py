""":class:`sflow.forked.Pending`: text made in a forked child, and made here whenever the child
cannot make it."""

from __future__ import annotations

import os
import time

import pytest

from sflow import forked
from sflow.forked import Pending


def test_the_child_makes_the_text_and_is_reaped() -> None:
    parent = os.getpid()
    text = "é" * 300_000 + "end"  # more than a pipe holds, and not ASCII
    pending = Pending(lambda: text if os.getpid() != parent else "made here")
    assert pending.forked
    child = pending._pid
    assert pending.result() == text
    assert not pending.forked
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)  # reaped already


def test_a_child_that_fails_leaves_the_text_to_be_made_here() -> None:
    parent = os.getpid()

    def make() -> str:
        if os.getpid() != parent:
            raise RuntimeError("only in the child")
        return "made here"

    assert Pending(make).result() == "made here"


def test_without_a_fork_the_text_is_made_here(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(forked.os, "fork", no_fork)
    pending = Pending(lambda: "made here")
    assert not pending.forked and pending.result() == "made here"


def test_cancel_kills_and_reaps_the_child() -> None:
    parent = os.getpid()

    def slow() -> str:
        if os.getpid() != parent:
            time.sleep(3600)
        return ""

    pending = Pending(slow)
    child = pending._pid
    pending.cancel()  # reaps it: it must have been killed, or this would wait for an hour
    assert not pending.forked
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)
