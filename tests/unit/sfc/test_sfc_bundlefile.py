"""Bundles written from files and read back into files, a chunk at a time: the same bytes as the
in-memory encoding, whatever the sizes of paths, files and lists."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sflow.errors import DecodeError
from sflow.sfc.bundle import decode_bundle, encode_bundle
from sflow.sfc.bundlefile import Spool, extract_bundle, plain_file, write_bundle


@pytest.mark.parametrize("sizes", [[0], [3, 255, 256], [65535, 65536, 70000], [1] * 17])
def test_write_bundle_makes_the_bytes_encode_bundle_makes_and_extract_reads_them_back(
        tmp_path: Path, sizes: list[int]) -> None:
    files = {}
    made = []
    for i, size in enumerate(sizes):
        path = f"out/{'long-' * (i % 3) * 10}f{i}.bin"
        data = bytes((i + k) % 251 for k in range(size))
        files[path] = data
        source = tmp_path / f"src{i}"
        source.write_bytes(data)
        made.append((path, source))
    out = io.BytesIO()
    write_bundle(made, out.write)
    assert out.getvalue() == encode_bundle(files)
    assert decode_bundle(out.getvalue()) == files
    dest = tmp_path / "dest"
    wanted = set(list(files)[::2])
    found = extract_bundle(io.BytesIO(out.getvalue()), len(out.getvalue()),
                           lambda p: plain_file(dest / p) if p in wanted else None)
    assert found == sorted(files)
    assert {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == {
        p: files[p] for p in wanted}


def test_a_truncated_or_hostile_bundle_is_refused(tmp_path: Path) -> None:
    raw = encode_bundle({"a.txt": b"x" * 1000})
    with pytest.raises(DecodeError, match="truncated"):
        extract_bundle(io.BytesIO(raw[:-10]), len(raw) - 10, lambda p: plain_file(tmp_path / p))
    evil = encode_bundle({"../../etc/x": b"no"})
    with pytest.raises(DecodeError):
        extract_bundle(io.BytesIO(evil), len(evil), lambda p: plain_file(tmp_path / p))
    assert not (tmp_path.parent.parent / "etc" / "x").exists()


def test_a_spool_is_nothing_until_finished_and_knows_its_digest(tmp_path: Path) -> None:
    target = tmp_path / "r.bundle"
    spool = Spool(target, 4, lambda length, sha: b"H" + bytes([length]) + sha[:2])
    spool.write(b"abc")
    assert not target.exists()
    done = spool.finish()
    assert target.read_bytes()[4:] == b"abc" and target.read_bytes()[:2] == b"H\x03"
    assert (done.offset, done.length) == (4, 3)
    aborted = Spool(tmp_path / "gone.bundle")
    aborted.write(b"x")
    aborted.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.bundle"]
