"""Job paths: the fast check of plain paths agrees with the general normalisation."""

from __future__ import annotations

import posixpath

from hypothesis import given
from hypothesis import strategies as st

from sflow.model.paths import UnsafePath, job_relative


def reference(path: str) -> str | None:
    """The rule, spelled out: relative, and still inside once normalised (None: refused)."""
    if not path or "\x00" in path or path.startswith(("/", "~")):
        return None
    norm = posixpath.normpath(path)
    return None if norm in (".", "..") or norm.startswith("../") else norm


@given(st.lists(st.sampled_from(["a", "b1", "x.y", "..", ".", "", "./", "/", "~", "-", "+", " ", "é", "..."]),
                max_size=8).map("".join))
def test_fast_path_agrees_with_the_rule(path: str) -> None:
    try:
        got: str | None = job_relative(path)
    except UnsafePath:
        got = None
    assert got == reference(path)
