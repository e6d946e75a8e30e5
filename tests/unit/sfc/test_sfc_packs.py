"""Pack files of small results: records appended, read back checked, marked dead, found at open up
to the first one that is not sound; the store's packs made, filled, compacted and removed."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from sfc_harness import SECRET, HeldRunner, fired, inline, stored_records

from sflow.sfc import packs
from sflow.sfc.consumer import cluster_signer
from sflow.sfc.store import HEADER, MAGIC, ResultStore


def _put(pack: packs.Pack, digest: str, content: bytes) -> int:
    offset = pack.size
    pack.size += packs.record_size(digest, len(content))
    packs.append(pack, offset, digest, hashlib.sha256(content).digest(), content)
    return offset


def test_records_are_read_back_checked_and_a_dead_one_is_skipped(tmp_path: Path) -> None:
    pack = packs.new_pack(tmp_path)
    offsets = {d: _put(pack, d, d.encode() * 3) for d in ("a" * 64, "b" * 64, "c" * 64)}
    assert pack.named and pack.path.stat().st_size == pack.size
    assert packs.read(pack.path, offsets["b" * 64], "b" * 64) == b"b" * 192
    assert packs.read(pack.path, offsets["b" * 64], "c" * 64) is None  # not the record asked for
    packs.bury(pack.path, offsets["b" * 64])
    assert packs.read(pack.path, offsets["b" * 64], "b" * 64) is None
    records, size, problem = packs.scan(pack.path)
    assert [(r.digest, r.offset) for r in records] == [("a" * 64, 0), ("c" * 64, offsets["c" * 64])]
    assert size == pack.size and problem is None
    packs.bury(tmp_path / "gone.pack", 0)  # a pack removed meanwhile: nothing to do
    assert not (tmp_path / "gone.pack").exists()


@pytest.mark.parametrize("damage", ["header", "bundle", "cut"])
def test_damage_is_found_and_never_served(tmp_path: Path, damage: str) -> None:
    pack = packs.new_pack(tmp_path)
    first = _put(pack, "a" * 64, b"first")
    second = _put(pack, "b" * 64, b"second")
    _put(pack, "c" * 64, b"third")
    raw = bytearray(pack.path.read_bytes())
    if damage == "header":  # the second record's bundle length: its CRC no longer matches
        raw[second + 8] ^= 0x01
    elif damage == "bundle":
        raw[second + packs.HEAD_SIZE + 64 + 2] ^= 0x01
    else:  # a crash in the middle of the last append
        del raw[-3:]
    pack.path.write_bytes(bytes(raw))
    records, _, problem = packs.scan(pack.path)
    found = [r.digest[0] for r in records]
    if damage == "header":
        assert found == ["a"] and problem == f"no sound record at octet {second} of {len(raw)}"
        assert packs.read(pack.path, second, "b" * 64) is None
    elif damage == "bundle":  # the scan does not read bundles: found when it is read
        assert found == ["a", "b", "c"] and problem is None
        assert packs.read(pack.path, second, "b" * 64) is None
    else:
        assert found == ["a", "b"] and problem is not None
    assert packs.read(pack.path, first, "a" * 64) == b"first"


def _store(root: Path, max_bytes: int = 1 << 20, blocking: Any = inline) -> ResultStore:
    return ResultStore(root, max_bytes, cluster_signer(SECRET), 1000, blocking=blocking)


def test_a_full_pack_is_followed_by_a_new_one_and_a_restart_serves_every_live_record(tmp_path: Path,
                                                                                      monkeypatch: Any) -> None:
    monkeypatch.setattr(packs, "PACK_BYTES", 1000)
    store = _store(tmp_path, max_bytes=2000)
    contents = {f"{i:064x}": bytes([i]) * 300 for i in range(12)}
    for digest, content in contents.items():
        store.put(digest, "p", content)
    # each pack takes two records of 414 octets; over 2,000 octets the oldest are evicted, and a
    # pack none of whose records is served is removed
    live = list(contents)[-6:]
    assert [d for d in contents if d in store] == live and store.total == 1800
    assert sorted(r.digest for r in stored_records(tmp_path / "results")) == sorted(live)
    assert len(list((tmp_path / "results").iterdir())) == 3
    reopened = _store(tmp_path, max_bytes=2000)
    assert [d for d in contents if d in reopened] == live and reopened.total == 1800
    assert all(fired(reopened.get(d, "p")).content == contents[d] for d in live)


def test_a_pack_mostly_dead_is_compacted_and_a_read_under_way_finds_the_record_moved(tmp_path: Path,
                                                                                      monkeypatch: Any) -> None:
    monkeypatch.setattr(packs, "PACK_BYTES", 500)
    a, b, c, d = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)
    first = _store(tmp_path)
    first.put(a, "p", b"a" * 200)
    first.put(b, "p", b"b" * 50)
    first.put(c, "p", b"c" * 50)  # the first pack is full (478 octets): c starts a second
    (old,) = {path for path in (tmp_path / "results").iterdir() if [r.digest for r in packs.scan(path)[0]] == [a, b]}

    runner = HeldRunner()
    store = _store(tmp_path, max_bytes=300, blocking=runner)
    got: list[Any] = []
    store.get(b, "p").addCallback(got.append)  # a read of b from the first pack, held
    store.put(d, "p", b"d" * 60)  # over 300 octets: a is evicted; the first pack serves b's 164 of 478
    # b is written again to the pack being filled, then the first pack is removed; the read held
    # from before finds it gone, and reads b where it is now
    assert runner.release(hold=("read",)) == ["append", "bury", "read_many", "append", "bury", "_remove"]
    assert not old.exists() and not got
    assert runner.release() == ["read", "read"]
    assert got[0].content == b"b" * 50
    assert {r.digest for r in stored_records(tmp_path / "results")} == {b, c, d}
    assert [x for x in (a, b, c, d) if x in _store(tmp_path, max_bytes=300)] == [b, c, d]


def test_a_result_file_of_an_older_node_is_served_then_replaced_by_a_record(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    content = b"older" * 10
    older = results / f"{'e' * 64}.bundle"
    older.write_bytes(HEADER.pack(MAGIC, len(content), hashlib.sha256(content).digest()) + content)
    store = _store(tmp_path)
    assert fired(store.get("e" * 64, "p")).content == content
    store.put("e" * 64, "p", content)  # computed again (say, by another node's request)
    assert not older.exists() and [r.digest for r in stored_records(results)] == ["e" * 64]
    assert fired(_store(tmp_path).get("e" * 64, "p")).content == content


def test_a_failed_append_starts_a_new_pack_and_forgets_the_result(tmp_path: Path, caplog: Any) -> None:
    runner = HeldRunner()
    store = _store(tmp_path, blocking=runner)
    store.put("a" * 64, "p", b"a" * 100)
    (tmp_path / "results").rename(tmp_path / "elsewhere")  # the append fails (as on a full disk)
    with caplog.at_level("WARNING"):
        runner.release()
    assert "a" * 64 not in store and store.total == 0
    assert f"event=result_write_failed digest={'a' * 64} pack=" in caplog.text
    (tmp_path / "results").mkdir()
    store.put("b" * 64, "p", b"b" * 100)
    runner.release()
    assert [r.digest for r in stored_records(tmp_path / "results")] == ["b" * 64]


def _record(pack: packs.Pack, digest: str, content: bytes) -> packs.Append:
    offset = pack.size
    pack.size += packs.record_size(digest, len(content))
    return pack, offset, digest, hashlib.sha256(content).digest(), content


def test_appends_given_together_share_one_sync_per_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    synced: list[int] = []
    fdatasync = os.fdatasync
    monkeypatch.setattr(packs.os, "fdatasync", lambda fd: (synced.append(fd), fdatasync(fd))[1])
    first, second = packs.new_pack(tmp_path), packs.new_pack(tmp_path)
    records = [_record(first, "a" * 64, b"a" * 10), _record(second, "b" * 64, b"b" * 20),
               _record(first, "c" * 64, b"c" * 30)]
    assert packs.append_all(records) == [None, None, None]
    assert len(synced) == 2 and first.named and second.named
    assert [r.digest for r in packs.scan(first.path)[0]] == ["a" * 64, "c" * 64]
    assert packs.read(second.path, 0, "b" * 64) == b"b" * 20


def test_a_record_not_written_fails_alone_and_a_failed_sync_fails_its_pack(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    pwritev = os.pwritev

    def full(fd: int, buffers: list[bytes], offset: int) -> int:
        if buffers[1].startswith(b"b"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return pwritev(fd, buffers, offset)

    monkeypatch.setattr(packs.os, "pwritev", full)
    pack = packs.new_pack(tmp_path)
    a, b, c = (_record(pack, d * 64, d.encode() * 10) for d in "abc")
    outcomes = packs.append_all([a, b, c])
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], OSError) and outcomes[1].errno == errno.ENOSPC
    assert packs.read(pack.path, c[1], "c" * 64) == b"c" * 10

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(packs.os, "fdatasync", broken)
    other = packs.new_pack(tmp_path)
    outcomes = packs.append_all([_record(pack, "d" * 64, b"d"), _record(other, "e" * 64, b"e")])
    assert [o.errno if o else None for o in outcomes] == [errno.EIO, errno.EIO]
    with pytest.raises(OSError, match="Input/output error"):  # append: one record, its error raised
        packs.append(*_record(pack, "f" * 64, b"f"))


def test_a_store_thread_writes_appends_asked_one_after_another_together(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from twisted.internet.defer import Deferred

    from sflow.sfc.store import _run_batch

    groups: list[int] = []
    append_all = packs.append_all
    monkeypatch.setattr(packs, "append_all", lambda records: (groups.append(len(records)), append_all(records))[1])

    class Reactor:
        def callFromThread(self, call: Any, *args: Any) -> None:
            call(*args)

    pack = packs.new_pack(tmp_path)
    done = [Deferred() for _ in range(4)]
    order: list[str] = []
    batch = [(packs.append, _record(pack, "a" * 64, b"a"), done[0]),
             (packs.append, _record(pack, "b" * 64, b"b"), done[1]),
             (lambda: order.append("between") or "x", (), done[2]),
             (packs.append, _record(pack, "c" * 64, b"c"), done[3])]
    _run_batch(Reactor(), batch)
    assert groups == [2, 1] and order == ["between"]
    assert [fired(d) for d in done] == [None, None, "x", None]
    assert [r.digest for r in packs.scan(pack.path)[0]] == ["a" * 64, "b" * 64, "c" * 64]
