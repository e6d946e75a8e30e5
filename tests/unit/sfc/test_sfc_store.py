"""Result stores that share a directory (NFS homes): writers never collide on a temporary file, and
what one node wrote the other reads."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path
from typing import Any

import msgpack
from sfc_harness import HeldRunner, fired, inline, job, stored_records

from sflow.sfc.consumer import cluster_signer
from sflow.sfc.names import Installed, build_specs, installed_to_wire
from sflow.sfc.store import ResultStore

SECRET = b"s" * 32
ROUNDS = 100


def _item() -> Installed:
    spec = build_specs(job([{"task_id": 1, "workload": 1, "cmd": "seq 3 > ./o.txt",
                             "out_file_list": [{"path": "./o.txt", "size": 0, "dest_task_id": []}]}]), {})
    return Installed(next(iter(spec.values())), None, 7, 1.0, (), "run-1", 0.0)


def _writer(root: str, start: Any) -> None:
    store = ResultStore(Path(root), 1 << 20, cluster_signer(SECRET), 1000, blocking=inline)
    item = _item()
    start.wait()
    for i in range(ROUNDS):
        assert fired(store.save_functions([item])) == []  # none failed
        store.put(item.spec.digest, item.spec.program, b"result" * 10)
        assert item.spec.digest in store  # a failed write forgets the result


def test_two_nodes_writing_the_same_records_in_one_directory_do_not_collide(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), start)) for _ in range(2)]
    for w in writers:
        w.start()
    start.set()
    for w in writers:
        w.join(60)
    # each exits 0 only if none of its writes failed (the same temporary name made one fail before)
    assert [w.exitcode for w in writers] == [0, 0]
    store = ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000, blocking=inline)
    item = _item()
    assert [i.spec.digest for i in store.load_functions()] == [item.spec.digest]
    served = fired(store.get(item.spec.digest, item.spec.program))
    assert served is not None and served.content == b"result" * 10
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".part"))]


def test_a_damaged_result_is_recomputed_after_a_restart_never_served(tmp_path: Path) -> None:
    from sfc_harness import chain_tasks, make_cluster

    from sflow.model.workflow import TaskId

    where = {TaskId(1): "n0", TaskId(2): "n1", TaskId(3): "n2"}
    first = make_cluster(tmp_path)
    first.run(first.dispatch(job(chain_tasks(3)), where, outdir=tmp_path / "one"))
    expected = (tmp_path / "one" / "out/3.txt").read_bytes()
    specs = build_specs(job(chain_tasks(3)), {})

    def pack(node: str, task: int) -> Path:
        """The pack holding ``task``'s result on ``node`` (each node's holds that result only)."""
        results = tmp_path / node / "store" / "results"
        assert [r.digest for r in stored_records(results)] == [specs[TaskId(task)].digest]
        (path,) = results.iterdir()
        return path

    # function 3's result: one bit of its bundle flipped (same size); function 1's: cut short
    end = pack("n2", 3)
    raw = bytearray(end.read_bytes())
    raw[-5] ^= 0x01
    end.write_bytes(bytes(raw))
    start = pack("n0", 1)
    start.write_bytes(start.read_bytes()[:-3])

    # restarted on the same stores: the pack cut short holds no sound record and is gone at open,
    # the flipped bit is found when the result is read
    again = make_cluster(tmp_path)
    assert not start.exists() and specs[TaskId(1)].digest not in again.nodes["n0"].service.store
    trace = again.run(again.dispatch(job(chain_tasks(3)), where, outdir=tmp_path / "two"))
    assert (tmp_path / "two" / "out/3.txt").read_bytes() == expected
    assert again.executed() == [3]  # function 3 again (its input 2 is in n1's store, intact); 1 not needed
    # Nothing was started ahead of the requests: n2 listed function 3's result as held when it was
    # installed (the flipped bit shows only when the file is read), so the requests from END did it
    assert {n: node.service.counters["started"] for n, node in again.nodes.items()} == {"n0": 0, "n1": 0, "n2": 0}
    assert {r.task: r.where.split(" (")[0] for r in trace.tasks}[3] == "executed"
    # the damaged record is dead (its pack, which held nothing else, is gone); the result is stored again
    assert not end.exists()
    assert [r.digest for r in stored_records(tmp_path / "n2" / "store" / "results")] == [specs[TaskId(3)].digest]
    assert fired(ResultStore(tmp_path / "n2" / "store", 1 << 30, cluster_signer(SECRET), 1000, blocking=inline).get(
        specs[TaskId(3)].digest, specs[TaskId(3)].program)).content is not None


def test_store_files_are_checked_and_written_durably(tmp_path: Path) -> None:
    from sflow.sfc.packs import HEAD_SIZE

    store = ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000, blocking=inline)
    store.put("a" * 64, "p", b"x" * 1000)
    (path,) = (tmp_path / "results").iterdir()
    assert path.stat().st_size == HEAD_SIZE + 64 + 1000
    path.write_bytes(path.read_bytes()[:HEAD_SIZE + 64] + b"y" * 1000)  # same length, other content
    reopened = ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000, blocking=inline)
    assert "a" * 64 in reopened and fired(reopened.get("a" * 64, "p")) is None
    # dropped, never served: the pack, which served nothing else, is removed
    assert "a" * 64 not in reopened and not path.exists() and reopened.total == 0
    # a result file of an older node: checked the same way (a file of another format is removed)
    older = tmp_path / "results" / f"{'b' * 64}.bundle"
    older.write_bytes(b"x" * 1000)
    assert len(ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000)) == 0 and not older.exists()


def test_a_result_obtained_from_another_node_is_held_in_memory_only(tmp_path: Path, monkeypatch: Any) -> None:
    import sflow.sfc.store as store_module

    monkeypatch.setattr(store_module, "COPIES_BYTES", 2500)
    store = ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000, blocking=inline)
    copies = {c * 64: c.encode() * 1000 for c in "abc"}
    for digest, content in copies.items():
        store.keep(digest, "p", content)
    # no file (its producer has it): held and served like a stored result while it is in memory
    assert not list((tmp_path / "results").iterdir()) and len(store) == 0 and store.total == 0
    assert "a" * 64 not in store  # the least recently used beyond the bound is forgotten
    assert fired(store.get("b" * 64, "p")).content == copies["b" * 64]
    store.keep("d" * 64, "p", b"d" * 1000)
    assert {d for d in ("b" * 64, "c" * 64, "d" * 64) if d in store} == {"b" * 64, "d" * 64}  # b was used last
    assert store.copies_bytes == 2000
    # made here after all: stored (with its file), the copy dropped
    store.put("d" * 64, "p", b"d" * 1000)
    assert store.copies_bytes == 1000 and [r.digest for r in stored_records(tmp_path / "results")] == ["d" * 64]
    store.keep("d" * 64, "p", b"d" * 1000)  # held already
    assert store.copies_bytes == 1000 and "d" * 64 in store
    # a node that restarts holds only what it stored
    reopened = ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000, blocking=inline)
    assert "d" * 64 in reopened and "b" * 64 not in reopened


def test_a_copy_is_made_into_segments_only_when_it_is_first_asked_for(tmp_path: Path, monkeypatch: Any) -> None:
    """Keeping an obtained input is on the way to its function's start: its segments (its name,
    version, first segment) are made when the result is asked of this node, once."""
    from sflow.icn.name import Component
    from sflow.icn.packet import make_interest
    from sflow.sfc.bundle import bundle_version
    from sflow.sfc.names import result_prefix

    store = ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000, blocking=inline)
    made: list[str] = []
    real = store._segmented
    monkeypatch.setattr(store, "_segmented", lambda digest, program, content: made.append(digest) or real(
        digest, program, content))
    content = b"e" * 3000
    store.keep("e" * 64, "prog", content)
    assert made == [] and "e" * 64 in store
    served = fired(store.get("e" * 64, "prog"))
    assert made == ["e" * 64] and served.content == content
    assert served.base == result_prefix("prog", "e" * 64).append(Component.version(bundle_version(content)))
    first = served.answer(make_interest(result_prefix("prog", "e" * 64), can_be_prefix=True))
    assert first is not None and first.content == content[:len(first.content)]
    assert fired(store.get("e" * 64, "prog")) is served and made == ["e" * 64]  # made once


def test_a_large_result_is_served_from_its_file_segment_by_segment_and_checked_first(tmp_path: Path) -> None:
    from sflow.icn.app import Uncached
    from sflow.icn.name import Component
    from sflow.icn.packet import make_interest
    from sflow.sfc.bundle import bundle_version
    from sflow.sfc.bundlefile import STREAM_THRESHOLD
    from sflow.sfc.names import result_prefix
    from sflow.sfc.store import BLOCK_SEGMENTS, FileSegments

    content = bytes(range(256)) * (STREAM_THRESHOLD // 256 + 1000)
    digest = "c" * 64
    store = ResultStore(tmp_path, 1 << 30, cluster_signer(SECRET), 1000, blocking=inline)
    spool = store.spool(digest)
    for i in range(0, len(content), 65536):
        spool.write(content[i:i + 65536])
    store.added(digest, spool.finish())

    # reopened: nothing in memory; the file is served, not loaded
    again = ResultStore(tmp_path, 1 << 30, cluster_signer(SECRET), 1000, blocking=inline)
    served = fired(again.get(digest, "p"))
    assert isinstance(served, FileSegments) and served.content is None
    assert served.base[-1].to_number() == bundle_version(content)

    def segment(index: int) -> bytes:
        got: list[Any] = []
        answer = served.answer(make_interest(served.base.append(Component.segment(index))))
        assert answer is not None
        answer.addCallback(got.append)
        (data,) = got
        assert isinstance(data, Uncached)  # not kept in content stores
        return bytes(data.data.content)

    size = served.segment_size
    assert segment(0) == content[:size]
    assert segment(BLOCK_SEGMENTS + 3) == content[(BLOCK_SEGMENTS + 3) * size:(BLOCK_SEGMENTS + 4) * size]
    assert segment(served.count - 1) == content[(served.count - 1) * size:]
    assert len(served._blocks) <= 2  # a bounded read-ahead, never the whole file
    assert result_prefix("p", digest).is_prefix_of(served.base)

    # a flipped bit: found before anything is served, removed, absent from then on
    path = tmp_path / "results" / f"{digest}.bundle"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(raw))
    third = ResultStore(tmp_path, 1 << 30, cluster_signer(SECRET), 1000, blocking=inline)
    damaged = fired(third.get(digest, "p"))
    assert damaged is not None
    got: list[Any] = []
    damaged.answer(make_interest(damaged.base.append(Component.segment(0)))).addCallback(got.append)  # type: ignore[union-attr]
    assert got == [None] and digest not in third and not path.exists()


def test_the_store_touches_the_disk_only_off_the_reactor_and_serves_a_new_result_meanwhile(tmp_path: Path) -> None:
    runner = HeldRunner()
    store = ResultStore(tmp_path, 250, cluster_signer(SECRET), 1000, blocking=runner)
    results = tmp_path / "results"
    store.put("a" * 64, "p", b"a" * 100)
    # served from memory at once, before its file is written
    assert not list(results.iterdir())
    assert fired(store.get("a" * 64, "p")).content == b"a" * 100
    store.put("b" * 64, "p", b"b" * 100)
    store.put("c" * 64, "p", b"c" * 100)  # over 250 bytes: a is evicted while its write is still held
    assert "a" * 64 not in store and not list(results.iterdir())
    # a, evicted while its record was being written, is marked dead once it is: a restarted store
    # does not take it back
    assert runner.release() == ["append", "append", "append", "bury"]
    assert sorted(r.digest[0] for r in stored_records(results)) == ["b", "c"]

    # a small result no longer in memory is read off the reactor, and checked
    again = ResultStore(tmp_path, 250, cluster_signer(SECRET), 1000, blocking=runner)
    got: list[Any] = []
    again.get("b" * 64, "p").addCallback(got.append)
    assert not got
    assert runner.release() == ["read"]
    assert got[0].content == b"b" * 100

    # installed functions are kept off the reactor too
    item = _item()
    saved = again.save_functions([item])
    assert not list((tmp_path / "functions").iterdir())
    runner.release()
    fired(saved)
    assert [i.spec.digest for i in again.load_functions()] == [item.spec.digest]


def test_a_result_whose_write_fails_is_forgotten_and_said_so(tmp_path: Path, caplog: Any) -> None:
    runner = HeldRunner()
    store = ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000, blocking=runner)
    store.put("a" * 64, "p", b"a" * 100)
    (tmp_path / "results").rename(tmp_path / "elsewhere")  # the write fails (as on a full disk)
    with caplog.at_level("WARNING"):
        runner.release()
    assert "a" * 64 not in store and store.total == 0
    assert fired(store.get("a" * 64, "p")) is None  # made again if asked, never served half-stored
    assert f"event=result_write_failed digest={'a' * 64}" in caplog.text


def test_detached_work_runs_off_the_reactor_and_its_failure_is_logged(tmp_path: Path, caplog: Any) -> None:
    runner = HeldRunner()
    store = ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000, blocking=runner)
    gone = tmp_path / "job"
    gone.mkdir()

    def broken() -> None:
        raise OSError("disk on fire")

    store.run_detached(shutil.rmtree, gone)
    store.run_detached(broken)
    assert gone.exists()  # nothing done on the calling thread
    assert runner.release() == ["rmtree", "broken"]
    assert not gone.exists()
    assert "event=store_task_failed call=broken error=disk on fire" in caplog.text


class _StoreThreads:
    """The default runners (:func:`store._store_threads`) on the real reactor, whose delayed
    calls, calls from threads and shutdown triggers are recorded rather than run."""

    def __init__(self, monkeypatch: Any) -> None:
        from twisted.internet import reactor

        from sflow.sfc import store as store_module

        self.handed_back: list[Any] = []
        monkeypatch.setattr(reactor, "callFromThread", lambda *a, **k: self.handed_back.append(a))
        self.later: list[Any] = []
        monkeypatch.setattr(reactor, "callLater", self._call_later)
        self.on_shutdown: list[Any] = []
        monkeypatch.setattr(reactor, "addSystemEventTrigger",
                            lambda phase, event, call: self.on_shutdown.append(call))
        self.blocking, self.unhurried, self.detached = store_module._store_threads()
        self.stopped = False

    def _call_later(self, delay: float, call: Any, *args: Any) -> Any:
        from twisted.internet.task import Clock

        self.later.append((delay, call, args))
        return Clock().callLater(delay, lambda: None)  # a DelayedCall that can be cancelled

    def fire(self, delay: float) -> None:
        """Run the one delayed call made, which must have been made for ``delay`` seconds."""
        assert [d for d, _, _ in self.later] == [delay]
        _, call, args = self.later.pop()
        call(*args)

    def shut_down(self) -> None:
        """What the reactor's shutdown runs, in the order added (the threads stop last)."""
        self.stopped = True
        for call in self.on_shutdown:
            call()


def test_detached_work_in_the_store_threads_wakes_no_reactor(monkeypatch: Any, caplog: Any) -> None:
    """The default runner: a call nobody waits on runs in a store thread and hands nothing back
    to the reactor; a failure there is logged with its traceback. It waits
    :data:`UNHURRIED_SECONDS`, then goes with what was asked meanwhile, in order, to one thread."""
    import threading

    from sflow.sfc.store import UNHURRIED_SECONDS

    threads = _StoreThreads(monkeypatch)
    ran = threading.Event()
    where: list[str] = []

    def work() -> None:
        where.append(threading.current_thread().name)
        ran.set()

    def broken() -> None:
        where.append("broken")
        raise OSError("disk on fire")

    try:
        threads.detached(broken)
        threads.detached(work)
        assert not ran.wait(0.2)
        threads.fire(UNHURRIED_SECONDS)  # one hand-over for both
        assert ran.wait(10)
    finally:
        threads.shut_down()  # joins the threads
    assert where[0] == "broken" and "sflow-store" in where[1] and len(where) == 2
    assert threads.handed_back == []
    assert "event=store_task_failed call=broken" in caplog.text and "disk on fire" in caplog.text


def test_unhurried_work_goes_to_one_thread_in_order_and_its_outcomes_come_back_together(monkeypatch: Any) -> None:
    import threading

    from sflow.sfc.store import UNHURRIED_SECONDS

    threads = _StoreThreads(monkeypatch)
    order: list[tuple[str, str]] = []

    def step(name: str) -> str:
        order.append((name, threading.current_thread().name))
        if name == "bad":
            raise OSError("no space left")
        return name.upper()

    done = threading.Event()
    try:
        first = threads.unhurried(step, "one")
        second = threads.unhurried(step, "bad")
        threads.detached(step, "three")
        third = threads.unhurried(step, "four")
        threads.detached(done.set)
        threads.fire(UNHURRIED_SECONDS)
        assert done.wait(10)
    finally:
        threads.shut_down()
    assert [name for name, _ in order] == ["one", "bad", "three", "four"]
    assert len({thread for _, thread in order}) == 1  # one thread woken for them all
    assert not first.called and not second.called  # (until the reactor runs what comes back)
    [(deliver, outcomes)] = threads.handed_back  # one call back to the reactor
    deliver(outcomes)
    assert fired(first) == "ONE" and fired(third) == "FOUR"
    failures: list[Any] = []
    second.addErrback(failures.append)
    assert failures[0].check(OSError) and "no space left" in failures[0].getErrorMessage()


def test_work_waited_on_goes_when_the_turn_ends_and_all_of_it_before_the_threads_stop(monkeypatch: Any) -> None:
    """What is waited on is handed over when the reactor's turn ends (the reactor answers what
    waits on it first), not after the unhurried delay; what is still to go when the reactor stops,
    of either kind, goes before the threads stop, and they finish it."""
    import threading

    from sflow.sfc.store import UNHURRIED_SECONDS

    threads = _StoreThreads(monkeypatch)
    ran: list[str] = []
    went = threading.Event()
    try:
        waited = threads.blocking(lambda: (ran.append("waited"), went.set()))
        assert [delay for delay, _, _ in threads.later] == [0]
        threads.later.pop()[1]()  # the turn ends
        assert went.wait(10) and not waited.called  # (its outcome comes back through the reactor)
        threads.blocking(ran.append, "at shutdown")
        threads.unhurried(ran.append, "unhurried")
        threads.detached(ran.append, "detached")
        assert sorted(delay for delay, _, _ in threads.later) == [0, UNHURRIED_SECONDS]
    finally:
        threads.shut_down()  # hand-overs, then the threads stop: they finish what they were given
    assert ran[0] == "waited" and sorted(ran[1:]) == ["at shutdown", "detached", "unhurried"]


def test_an_install_is_kept_in_one_file_and_functions_that_cannot_be_kept_are_named(tmp_path: Path) -> None:
    runner = HeldRunner()
    store = ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000, blocking=runner)
    items = []
    for task in (1, 2, 3):
        spec = build_specs(job([{"task_id": task, "workload": 1, "cmd": f"echo {task} > ./o.txt",
                                 "out_file_list": [{"path": "./o.txt", "size": 0, "dest_task_id": []}]}]), {})
        items.append(Installed(next(iter(spec.values())), None, 7, 1.0, (), "run-1", 0.0))
    functions = tmp_path / "functions"
    # they cannot be written: a file stands where their directory goes
    functions.rmdir()
    functions.write_bytes(b"")
    saved = store.save_functions(items)
    assert runner.release() == ["write_durably"]  # one hand-off, one file, for the whole install
    assert [(item.spec.task, "File exists" in why and str(functions) in why) for item, why in fired(saved)] == [
        (1, True), (2, True), (3, True)]
    functions.unlink()
    functions.mkdir()
    saved = store.save_functions(items)
    runner.release()
    assert fired(saved) == []
    [first] = list(functions.iterdir())
    # installed again (another run): the newer file keeps them all, the older one goes
    again = [Installed(i.spec, None, 7, 1.0, (), "run-2", 0.0) for i in items]
    store.save_functions(again)
    assert runner.release() == ["write_durably", "_remove"]
    [second] = list(functions.iterdir())
    assert second != first and second.name > first.name
    store.save_functions(again[:1])  # the second file still keeps the latest of functions 2 and 3
    runner.release()
    assert len(list(functions.iterdir())) == 2
    # a restarted node reads the latest of each, once
    reopened = ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000, blocking=inline)
    loaded = reopened.load_functions()
    assert sorted((i.spec.task, i.run) for i in loaded) == [(1, "run-2"), (2, "run-2"), (3, "run-2")]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]


def test_an_install_is_kept_as_it_was_received(tmp_path: Path) -> None:
    specs = build_specs(job([{"task_id": 1, "workload": 1, "cmd": "seq 3 > ./o.txt",
                              "out_file_list": [{"path": "./o.txt", "size": 0, "dest_task_id": []}]}]), {})
    item = Installed(next(iter(specs.values())), None, 7, 1.0, (), "run-1", 0.0)
    received = dict(installed_to_wire(item), later_field="kept as sent")  # (a newer delegator's)
    store = ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000, blocking=inline)
    assert fired(store.save_functions([item], [received])) == []
    [kept] = list((tmp_path / "functions").iterdir())
    assert msgpack.unpackb(kept.read_bytes(), raw=False) == [received]
    reopened = ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000, blocking=inline)
    assert reopened.load_functions() == [item]


def test_functions_kept_one_file_each_by_an_older_node_are_read_and_replaced(tmp_path: Path) -> None:
    item = _item()
    store = ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000, blocking=inline)
    legacy = tmp_path / "functions" / f"{item.spec.digest}.msgpack"
    legacy.write_bytes(msgpack.packb(installed_to_wire(item), use_bin_type=True))
    (tmp_path / "functions" / f"{'0' * 64}.msgpack").write_bytes(legacy.read_bytes())  # not its name: skipped
    assert [i.spec.digest for i in store.load_functions()] == [item.spec.digest]
    store.save_functions([Installed(item.spec, None, 7, 1.0, (), "run-2", 0.0)])
    assert not legacy.exists()  # the new file keeps its latest version
    assert [i.run for i in ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000).load_functions()] == ["run-2"]
