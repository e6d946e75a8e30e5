"""Functions' working directories made ahead of need (:mod:`sflow.sfc.scratch`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sflow.sfc.scratch import FreshDirectories


class _Later:
    """A detached runner that holds its calls until the test runs them (a store thread)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, tuple[Any, ...]]] = []

    def __call__(self, call: Any, *args: Any) -> None:
        self.calls.append((call, args))

    def run_all(self) -> int:
        calls, self.calls = self.calls, []
        for call, args in calls:
            call(*args)
        return len(calls)


def test_directories_are_made_ahead_off_the_caller_and_taken_new_and_empty(tmp_path: Path) -> None:
    later = _Later()
    prepared: list[Path] = []
    fresh = FreshDirectories(tmp_path / "sfc", 2, later, prepared.append)
    first = fresh.take()  # none ready yet: made on the spot, and two asked for behind it
    assert first.is_dir() and not any(first.iterdir()) and prepared == [first]
    assert len(later.calls) == 2 and not any(path.exists() for _, (path,) in later.calls)
    assert later.run_all() == 2
    second, third = fresh.take(), fresh.take()  # both were made ahead
    assert len({first, second, third}) == 3 and prepared == [first, second, third]
    assert all(p.is_dir() and p.name.startswith(f"scratch-{os.getpid()}-") for p in (second, third))
    # each take asked for one more; never more than two made ahead
    assert len(later.calls) == 2
    fresh.take()
    assert len(later.calls) == 2


def test_a_directory_left_by_a_dead_process_of_the_same_pid_lends_nothing(tmp_path: Path) -> None:
    later = _Later()
    fresh = FreshDirectories(tmp_path, 1, later)
    stale = tmp_path / f"scratch-{os.getpid()}-1"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "input.txt").write_text("old")
    taken = fresh.take()
    assert taken == stale and list(taken.iterdir()) == []


def test_unused_directories_are_removed_when_the_node_stops(tmp_path: Path) -> None:
    later = _Later()
    fresh = FreshDirectories(tmp_path, 3, later)
    used = fresh.take()
    later.run_all()
    held = later.calls[:]  # nothing asked: three are ready
    assert held == []
    making = FreshDirectories(tmp_path / "other", 1, later)
    making.take()  # asks for one more, still being made when the node stops
    fresh.close()
    making.close()
    later.run_all()  # made after the stop: removed at once
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([used.name, "other"])
    assert len(list((tmp_path / "other").iterdir())) == 1  # only the one taken
    fresh.take()  # still works (made on the spot), but asks for nothing more
    assert later.calls == []


def test_a_directory_that_cannot_be_handed_over_is_not_left_behind(tmp_path: Path) -> None:
    def refuse(path: Path) -> None:
        raise PermissionError(f"cannot hand {path.name} over")

    fresh = FreshDirectories(tmp_path, 1, _Later(), refuse)
    with pytest.raises(PermissionError, match="cannot hand scratch-"):
        fresh.take()
    assert list(tmp_path.iterdir()) == []
