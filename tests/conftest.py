"""Shared test fixtures: where the original's sample files live."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "reference" / "samples"


@pytest.fixture(scope="session")
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"the original's samples are not at {SAMPLES}")
    return SAMPLES


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
