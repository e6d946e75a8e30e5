"""Durable files: written whole or not at all; a batch syncs its directory once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sflow import durable
from sflow.durable import write_all_durably, write_durably


def _count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real(fd)

    monkeypatch.setattr(durable.os, "fsync", fsync)
    return synced


def test_a_batch_syncs_each_file_and_its_directory_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _count_fsyncs(monkeypatch)
    assert write_all_durably(tmp_path / "new", [("a", b"1"), ("b", b"22"), ("c", b"333")]) == []
    assert synced == ["file", "file", "file", "dir"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "new").iterdir()} == {"a": b"1", "b": b"22", "c": b"333"}
    synced.clear()
    write_durably(tmp_path / "one", b"x")
    assert synced == ["file", "dir"]  # a single file still syncs its own rename


def test_a_file_of_a_batch_that_cannot_be_written_is_named_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()  # nothing can be renamed over a directory
    failed: Any = write_all_durably(tmp_path, [("a", b"1"), ("b", b"2"), ("c", b"3")])
    assert [name for name, _ in failed] == ["b"] and "directory" in failed[0][1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]
    assert (tmp_path / "a").read_bytes() == b"1" and (tmp_path / "b").is_dir()
