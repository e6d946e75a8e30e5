"""Fixtures of the scheduling CLI tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No sflow.toml or SFLOW_* from the developer's shell.
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("SFLOW_"):
            monkeypatch.delenv(key)
