"""Result stores that share a directory (NFS homes): writers never collide on a temporary file, and
what one node wrote the other reads."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from sfc_harness import job

from sflow.sfc.consumer import cluster_signer
from sflow.sfc.names import Installed, build_specs
from sflow.sfc.store import ResultStore

SECRET = b"s" * 32
ROUNDS = 100


def _item() -> Installed:
    spec = build_specs(job([{"task_id": 1, "workload": 1, "cmd": "seq 3 > ./o.txt",
                             "out_file_list": [{"path": "./o.txt", "size": 0, "dest_task_id": []}]}]), {})
    return Installed(next(iter(spec.values())), None, 7, 1.0, (), "run-1", 0.0)


def _writer(root: str, start: Any) -> None:
    store = ResultStore(Path(root), 1 << 20, cluster_signer(SECRET), 1000)
    item = _item()
    start.wait()
    for i in range(ROUNDS):
        store.save_function(item)
        store.put(item.spec.digest, item.spec.program, b"result" * 10)


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
    store = ResultStore(tmp_path, 1 << 20, cluster_signer(SECRET), 1000)
    item = _item()
    assert [i.spec.digest for i in store.load_functions()] == [item.spec.digest]
    served = store.get(item.spec.digest, item.spec.program)
    assert served is not None and served.content == b"result" * 10
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
