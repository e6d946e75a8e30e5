"""Small pure pieces of the execution layer: output tails, job paths, image tar names."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sflow.config import ImageRepositorySettings
from sflow.model.paths import UnsafePath
from sflow.node.execution import job_file
from sflow.node.fetch import FetchError, fetch_image_tar
from sflow.node.runners import Tail


def test_tail_keeps_everything_when_short() -> None:
    t = Tail(16)
    t.feed(b"abc\n")
    t.feed(b"def\n")
    assert t.text() == "abc\ndef\n" and t.total == 8


def test_tail_keeps_only_the_end_and_says_so() -> None:
    t = Tail(10)
    for _ in range(1000):
        t.feed(b"line\n")
    text = t.text()
    assert text == "[4990 earlier bytes not kept]\nline\nline\n"
    t.feed(b"abc")
    assert t.text() == "[4995 earlier bytes not kept]\nline\nabc"


@given(st.lists(st.binary(max_size=300), max_size=50), st.integers(1, 64))
def test_tail_memory_is_bounded(chunks: list[bytes], limit: int) -> None:
    t = Tail(limit)
    for c in chunks:
        t.feed(c)
        assert len(t._buf) <= 2 * limit + len(c)
    whole = b"".join(chunks)
    assert t.total == len(whole)
    if len(whole) <= limit:
        assert t.text() == whole.decode("utf-8", "replace")


def test_job_file_stays_inside(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    assert job_file(tmp_path, "./out/a.txt") == tmp_path / "out" / "a.txt"
    for bad in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(UnsafePath):
            job_file(tmp_path, bad)


def test_job_file_refuses_symlinks_out(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "escape").symlink_to(tmp_path)
    (job / "inside").symlink_to(job / "out", target_is_directory=True)
    with pytest.raises(UnsafePath, match="symlink"):
        job_file(job, "escape/x")
    assert job_file(job, "inside/x") == job / "inside" / "x"
    # a symlink deeper down, below real directories, is found too; a path not there yet is fine
    (job / "a" / "b").mkdir(parents=True)
    (job / "a" / "b" / "out").symlink_to(tmp_path)
    with pytest.raises(UnsafePath, match="symlink"):
        job_file(job, "a/b/out/x")
    assert job_file(job, "a/new/x") == job / "a" / "new" / "x"
    # only what is beneath the job directory counts: a symlink above it is not an escape
    (tmp_path / "linked-job").symlink_to(job, target_is_directory=True)
    assert job_file(tmp_path / "linked-job", "a/b/x") == tmp_path / "linked-job" / "a" / "b" / "x"


@pytest.mark.parametrize("name", ["", "../x.tar", "a/b.tar", ".."])
def test_image_tar_names_are_plain(name: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="plain file name"):
        fetch_image_tar(ImageRepositorySettings(kind="dir", path=str(tmp_path)), name)


def test_image_tar_missing_from_directory(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=r"image tar x.tar not found in repository directory"):
        fetch_image_tar(ImageRepositorySettings(kind="dir", path=str(tmp_path)), "x.tar")
    with pytest.raises(FetchError, match="not configured"):
        fetch_image_tar(ImageRepositorySettings(kind="dir", path=""), "x.tar")
    with pytest.raises(FetchError, match="has no tars"):
        fetch_image_tar(ImageRepositorySettings(kind="registry"), "x.tar")
