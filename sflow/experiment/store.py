"""The results of an experiment: one SQLite file, ``OUTDIR/results.sqlite``.

Append-only: each invocation of ``sflow experiment run`` adds a row to ``sessions`` (what ran it:
the spec and its hash, sflow's version and commit, the settings, the host); each run is written
in one transaction (its row in ``runs`` and every row that belongs to it), so an interrupted
experiment never leaves half a run, and a run that is in ``runs`` is never run again. The schema
is :data:`SCHEMA`; the README documents it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    session_id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, argv TEXT NOT NULL,
    spec_path TEXT NOT NULL, spec_sha256 TEXT NOT NULL, spec_text TEXT NOT NULL,
    sflow_version TEXT NOT NULL, sflow_commit TEXT NOT NULL, settings_json TEXT NOT NULL,
    python TEXT NOT NULL, kernel TEXT NOT NULL, cpu_model TEXT NOT NULL, cores INTEGER NOT NULL,
    seed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, content TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, session_id INTEGER NOT NULL REFERENCES sessions,
    job TEXT NOT NULL, mode TEXT NOT NULL, algorithm TEXT NOT NULL, cache TEXT NOT NULL,
    repetition INTEGER NOT NULL, status TEXT NOT NULL, makespan_s REAL, predicted_s REAL, error TEXT NOT NULL,
    faults TEXT NOT NULL, started_at TEXT NOT NULL, wall_s REAL NOT NULL, setup_s REAL NOT NULL,
    teardown_s REAL NOT NULL, nodes INTEGER NOT NULL, topology TEXT NOT NULL, seed INTEGER NOT NULL,
    job_sha256 TEXT NOT NULL, env_sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS functions (
    run_id TEXT NOT NULL REFERENCES runs, task INTEGER NOT NULL, node TEXT NOT NULL, vcpu TEXT NOT NULL,
    start_s REAL, finish_s REAL, outcome TEXT NOT NULL, detail TEXT NOT NULL, cache_node TEXT NOT NULL,
    predicted_start_s REAL, predicted_finish_s REAL, exit_status INTEGER, cpu_s REAL, max_rss_kb INTEGER,
    PRIMARY KEY (run_id, task));
CREATE TABLE IF NOT EXISTS transfers (
    run_id TEXT NOT NULL REFERENCES runs, task INTEGER NOT NULL, path TEXT NOT NULL,
    src_node TEXT NOT NULL, dst_node TEXT NOT NULL, bytes INTEGER NOT NULL, start_s REAL NOT NULL,
    finish_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (
    run_id TEXT NOT NULL REFERENCES runs, node TEXT NOT NULL, counter TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (run_id, node, counter));
CREATE TABLE IF NOT EXISTS link_bytes (
    run_id TEXT NOT NULL REFERENCES runs, src TEXT NOT NULL, dst TEXT NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (run_id, src, dst));
CREATE TABLE IF NOT EXISTS samples (
    run_id TEXT NOT NULL REFERENCES runs, node TEXT NOT NULL, t_s REAL NOT NULL, cpu_percent REAL NOT NULL,
    rss_kb INTEGER NOT NULL, functions_cpu_percent REAL NOT NULL, functions_rss_kb INTEGER);
CREATE TABLE IF NOT EXISTS faults (
    run_id TEXT NOT NULL REFERENCES runs, idx INTEGER NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL,
    trigger TEXT NOT NULL, applied_s REAL, effect TEXT NOT NULL, PRIMARY KEY (run_id, idx));
"""

#: the tables, in the order ``export`` writes them
TABLES = ("sessions", "files", "runs", "functions", "transfers", "counters", "link_bytes", "samples", "faults")


@dataclass(frozen=True, slots=True)
class RunRecord:
    """Everything one run adds to the store, written at once."""

    run: Mapping[str, Any]
    functions: Sequence[Mapping[str, Any]] = ()
    transfers: Sequence[Mapping[str, Any]] = ()
    counters: Sequence[Mapping[str, Any]] = ()
    link_bytes: Sequence[Mapping[str, Any]] = ()
    samples: Sequence[Mapping[str, Any]] = ()
    faults: Sequence[Mapping[str, Any]] = ()
    #: (kind, name, content) of the job and environment files of the run
    files: Sequence[tuple[str, str, str]] = field(default=())


def file_sha(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


class ResultStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)  # transactions are explicit
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.db.close()

    def add_session(self, row: Mapping[str, Any]) -> int:
        cur = self.db.execute(_insert("sessions", row), tuple(row.values()))
        return int(cur.lastrowid or 0)

    def completed(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT run_id FROM runs")}

    def repetitions(self) -> dict[tuple[str, str, str, str], int]:
        """The highest repetition recorded per cell (job, mode, algorithm, cache)."""
        rows = self.db.execute("SELECT job, mode, algorithm, cache, MAX(repetition) FROM runs "
                               "GROUP BY job, mode, algorithm, cache")
        return {(r[0], r[1], r[2], r[3]): int(r[4]) for r in rows}

    def write_run(self, record: RunRecord) -> None:
        """One transaction: the run and all its rows, or nothing."""
        db = self.db
        db.execute("BEGIN")
        try:
            for kind, name, content in record.files:
                db.execute("INSERT OR IGNORE INTO files VALUES (?, ?, ?, ?)", (file_sha(content), kind, name, content))
            db.execute(_insert("runs", record.run), tuple(record.run.values()))
            for table, rows in (("functions", record.functions), ("transfers", record.transfers),
                                ("counters", record.counters), ("link_bytes", record.link_bytes),
                                ("samples", record.samples), ("faults", record.faults)):
                _insert_many(db, table, rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return list(self.db.execute(sql, tuple(params)))


def _insert(table: str, row: Mapping[str, Any]) -> str:
    return f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})"


def _insert_many(db: sqlite3.Connection, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        db.executemany(_insert(table, rows[0]), [tuple(r.values()) for r in rows])
