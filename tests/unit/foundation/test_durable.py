"""Durable files: written whole or not at all, and their rename synced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sflow import durable
from sflow.durable import write_durably


def _count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real(fd)

    monkeypatch.setattr(durable.os, "fsync", fsync)
    return synced


def test_a_file_is_synced_and_so_is_its_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _count_fsyncs(monkeypatch)
    write_durably(tmp_path / "new" / "one", b"x")
    assert synced == ["file", "dir"]
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["one"]


def test_a_file_that_cannot_be_written_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()  # nothing can be renamed over a directory
    with pytest.raises(OSError, match="directory"):
        write_durably(tmp_path / "b", b"2")
    assert [p.name for p in tmp_path.iterdir()] == ["b"] and (tmp_path / "b").is_dir()
