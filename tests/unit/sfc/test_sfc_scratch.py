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
    fresh = FreshDirectories(tmp_path / "sfc", 3, later, prepared.append)
    first = fresh.take()  # none ready yet: made on the spot, and two asked for behind it (3 in all)
    assert first.is_dir() and not any(first.iterdir()) and prepared == [first]
    assert len(later.calls) == 2 and not any(path.exists() for _, (path,) in later.calls)
    assert later.run_all() == 2
    second, third = fresh.take(), fresh.take()  # both were made ahead
    assert len({first, second, third}) == 3 and prepared == [first, second, third]
    assert all(p.is_dir() and p.name.startswith(f"scratch-{os.getpid()}-") for p in (second, third))
    # three in use: none more is made ahead; a fourth take makes one on the spot
    assert later.calls == []
    fourth = fresh.take()
    assert fourth not in (first, second, third) and later.calls == []


def test_a_starting_node_has_every_directory_kept_made_ahead(tmp_path: Path) -> None:
    later = _Later()
    fresh = FreshDirectories(tmp_path / "sfc", 3, later)
    fresh.fill()
    assert later.run_all() == 3
    made = sorted((tmp_path / "sfc").iterdir())
    assert len(made) == 3 and fresh.take() in made and later.calls == []


def test_a_directory_given_back_is_emptied_and_taken_again_instead_of_a_new_one(tmp_path: Path) -> None:
    later = _Later()
    prepared: list[Path] = []
    fresh = FreshDirectories(tmp_path / "sfc", 2, later, prepared.append)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the function's")
    used = fresh.take()
    later.run_all()  # one more made ahead
    (used / "input.txt").write_text("staged")
    (used / "out" / "deep").mkdir(parents=True)
    (used / "out" / "deep" / "result.bin").write_bytes(b"x")
    (used / "link").symlink_to(outside, target_is_directory=True)
    fresh.give_back(used)
    assert later.run_all() == 1  # emptied off the caller
    assert (outside / "keep.txt").read_text() == "not the function's"  # a link is removed, not followed
    ahead = fresh.take()
    again = fresh.take()
    assert again == used and list(again.iterdir()) == []
    assert ahead != used and len(prepared) == 2  # nothing made for the second use
    assert later.calls == []  # two in use, of two: nothing asked for


def test_a_directory_no_longer_as_made_is_removed_and_replaced(tmp_path: Path) -> None:
    later = _Later()
    fresh = FreshDirectories(tmp_path / "sfc", 2, later)
    changed, tagged = fresh.take(), fresh.take()
    changed.chmod(0o777)  # a function made its directory writable by everyone
    os.setxattr(tagged, "user.sflow-test", b"1")  # ... or gave it an attribute (an ACL is one)
    fresh.give_back(changed)
    fresh.give_back(tagged)
    later.run_all()
    assert not changed.exists() and not tagged.exists()
    fresh.take()  # made on the spot; one more made ahead for the second
    assert len(later.calls) == 1
    later.run_all()
    assert len(list((tmp_path / "sfc").iterdir())) == 2


def test_a_directory_a_function_replaced_by_a_link_empties_nothing_where_it_leads(tmp_path: Path) -> None:
    later = _Later()
    fresh = FreshDirectories(tmp_path / "sfc", 2, later)
    taken = fresh.take()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("kept")
    # run as the node's own user, a function can put a link in its directory's place
    taken.rmdir()
    taken.symlink_to(elsewhere, target_is_directory=True)
    fresh.give_back(taken)
    later.run_all()
    assert (elsewhere / "precious.txt").read_text() == "kept"
    assert not taken.is_symlink() and not taken.exists()  # the link is removed, not used again
    assert taken not in [fresh.take() for _ in range(2)]


def test_a_directory_given_back_beyond_the_number_kept_or_after_the_stop_is_removed(tmp_path: Path) -> None:
    later = _Later()
    fresh = FreshDirectories(tmp_path / "sfc", 1, later)
    first, burst = fresh.take(), fresh.take()  # a burst: the second made on the spot, beyond one
    fresh.give_back(first)
    fresh.give_back(burst)
    later.run_all()
    assert [first.exists(), burst.exists()] == [True, False]
    assert fresh.take() == first
    fresh.close()
    fresh.give_back(first)
    later.run_all()
    assert list((tmp_path / "sfc").iterdir()) == []


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
