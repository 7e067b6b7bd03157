"""SQLite persistence of runs and evaluations (WAL, committed in small batches).

Evaluations are buffered only until the event loop is next idle, then written
in one transaction: a burst of results costs one commit, and a finished
evaluation is on disk before the daemon does anything else.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    state TEXT NOT NULL,
    config_path TEXT NOT NULL,
    config_text TEXT NOT NULL,
    config_dir TEXT NOT NULL,
    overrides TEXT NOT NULL,
    cwd TEXT NOT NULL,
    env TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    seed INTEGER NOT NULL,
    planned INTEGER NOT NULL,
    parameters TEXT NOT NULL,
    software TEXT NOT NULL,
    mode TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    message TEXT
);
CREATE TABLE IF NOT EXISTS evaluations (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    sim_id INTEGER NOT NULL,
    x TEXT NOT NULL,
    f REAL,
    status TEXT NOT NULL,
    error TEXT,
    started REAL,
    ended REAL,
    worker INTEGER,
    PRIMARY KEY (run_id, sim_id)
) WITHOUT ROWID;
-- what an optimizer needs besides f (DFO-LS residuals, a gradient): replayed on resume
CREATE TABLE IF NOT EXISTS evaluation_values (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    sim_id INTEGER NOT NULL,
    vector TEXT NOT NULL,
    PRIMARY KEY (run_id, sim_id)
) WITHOUT ROWID;
"""

T = TypeVar("T")


def _rows(db: sqlite3.Connection, run_id: int) -> Iterator[tuple[Any, ...]]:
    query = f"SELECT {EVAL_COLUMNS} FROM evaluations WHERE run_id = ? ORDER BY sim_id"
    for sim_id, x, f, *rest in db.execute(query, (run_id,)):
        yield (sim_id, json.loads(x), math.nan if f is None else f, *rest)


RUN_FIELDS = ("state", "started", "ended", "message", "planned")
EVAL_COLUMNS = "sim_id, x, f, status, error, started, ended, worker"


class Store:
    def __init__(self, path: Path, schedule: Callable[[Callable[[], None]], Any]) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # survives a crashed process; one fsync per checkpoint
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)
        self._schedule = schedule
        self._pending: list[tuple[Any, ...]] = []
        self._pending_values: list[tuple[int, int, str]] = []
        self._listeners: list[Callable[[], None]] = []

    def close(self) -> None:
        self.flush()
        self.db.close()

    # -- runs --

    def create_run(self, **fields: Any) -> int:
        fields.setdefault("created", time.time())
        names = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        cursor = self.db.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", tuple(fields.values()))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def update_run(self, run_id: int, **fields: Any) -> None:
        assert set(fields) <= set(RUN_FIELDS), fields
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self.db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*fields.values(), run_id))

    def runs(self) -> list[sqlite3.Row]:
        self.db.row_factory = sqlite3.Row
        try:
            return self.db.execute("SELECT * FROM runs ORDER BY id").fetchall()
        finally:
            self.db.row_factory = None

    def interrupt_unfinished(self) -> int:
        """Runs left running or queued by a daemon that died are now interrupted."""
        cursor = self.db.execute(
            "UPDATE runs SET state = 'interrupted', message = 'the daemon stopped while this run was active' "
            "WHERE state IN ('queued', 'running')")
        return cursor.rowcount

    # -- evaluations --

    def add_evaluation(self, run_id: int, sim_id: int, x: list[float], f: float, status: str,
                       error: str | None, started: float | None, ended: float | None, worker: int | None,
                       values: list[float] | None = None) -> None:
        if not self._pending:
            self._schedule(self.flush)
        self._pending.append((run_id, sim_id, json.dumps(x), None if math.isnan(f) else f, status, error, started, ended, worker))
        if values is not None:
            self._pending_values.append((run_id, sim_id, json.dumps(values)))

    def on_flush(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        vectors, self._pending_values = self._pending_values, []
        with self.db:  # one transaction
            self.db.execute("BEGIN")
            self.db.executemany(f"INSERT OR REPLACE INTO evaluations (run_id, {EVAL_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", rows)
            self.db.executemany("INSERT OR REPLACE INTO evaluation_values (run_id, sim_id, vector) VALUES (?,?,?)", vectors)
        for listener in self._listeners:
            listener()

    def evaluations(self, run_id: int) -> Iterator[tuple[Any, ...]]:
        """(sim_id, x list, f, status, error, started, ended, worker) in sim_id order."""
        self.flush()
        return _rows(self.db, run_id)

    async def read(self, run_id: int, use: Callable[[Iterator[tuple[Any, ...]]], T]) -> T:
        """Apply `use` to a run's evaluations in a thread, on a connection of its own
        (WAL lets it read while the loop writes): a million rows never stall the daemon."""
        self.flush()

        def work() -> T:
            db = sqlite3.connect(self.path)
            try:
                return use(_rows(db, run_id))
            finally:
                db.close()

        return await asyncio.to_thread(work)

    def values(self, run_id: int) -> dict[int, list[float]]:
        """sim_id -> the vector stored with that evaluation (see add_evaluation)."""
        self.flush()
        rows = self.db.execute("SELECT sim_id, vector FROM evaluation_values WHERE run_id = ?", (run_id,))
        return {sim_id: json.loads(vector) for sim_id, vector in rows}

    def point(self, run_id: int, sim_id: int) -> list[float] | None:
        """One evaluation's x, by primary key (the best point of a run not in memory)."""
        self.flush()
        row = self.db.execute("SELECT x FROM evaluations WHERE run_id = ? AND sim_id = ?", (run_id, sim_id)).fetchone()
        return json.loads(row[0]) if row else None

    def finished_sim_ids(self, run_id: int) -> Iterator[int]:
        """Streamed (a million of them never sit in a set): read them before the next write."""
        self.flush()
        rows = self.db.execute(
            "SELECT sim_id FROM evaluations WHERE run_id = ? AND status != 'cancelled'", (run_id,))
        return (row[0] for row in rows)

    def counts(self, run_id: int) -> tuple[int, int, tuple[float, int] | None]:
        """(finished, failed, (best f, its sim_id) or None)."""
        self.flush()
        done, failed = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(status IN ('failed', 'timeout')), 0) FROM evaluations "
            "WHERE run_id = ? AND status != 'cancelled'", (run_id,)).fetchone()
        best = self.db.execute(
            "SELECT f, sim_id FROM evaluations WHERE run_id = ? AND status = 'ok' AND f IS NOT NULL "
            "ORDER BY f LIMIT 1", (run_id,)).fetchone()
        return done, failed, (best[0], best[1]) if best else None
