"""The deploy wheel's build id: the content of the sources, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from sflow.cluster.package import build_id, source_root, wheel_from_file
from sflow.errors import ClusterError


def _tree(root: Path) -> Path:
    (root / "sflow" / "cluster").mkdir(parents=True)
    (root / "setup.cfg").write_text("[metadata]\nname = x\n")
    (root / "sflow" / "__init__.py").write_text("")
    (root / "sflow" / "cluster" / "ops.py").write_text("A = 1\n")
    return root


def test_the_build_id_follows_the_sources_only(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    first = build_id(root)
    (root / "sflow" / "__pycache__").mkdir()
    (root / "sflow" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (root / "notes.txt").write_text("not packaged")
    assert build_id(root) == first
    (root / "sflow" / "cluster" / "ops.py").write_text("A = 2\n")
    assert build_id(root) != first
    (root / "sflow" / "cluster" / "ops.py").write_text("A = 1\n")
    assert build_id(root) == first
    (root / "sflow" / "cluster" / "ops.py").rename(root / "sflow" / "cluster" / "ops2.py")
    assert build_id(root) != first


def test_this_checkout_is_a_source_root() -> None:
    assert (source_root() / "setup.cfg").is_file()


def test_a_given_wheel_must_be_a_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "sflow_engine-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x03\x04")
    assert wheel_from_file(wheel).build == wheel_from_file(wheel).build
    with pytest.raises(ClusterError, match="is not a wheel file"):
        wheel_from_file(tmp_path / "sflow.tar.gz")
