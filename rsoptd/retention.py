"""Removing finished runs from the database: ``rsoptctl rm`` / ``prune`` and the retention setting.

Only the rows go: a run's directory (its files, history.npy) stays where it
is.  An active run is never removed.  SQLite reuses the freed pages, so a
database that is pruned stops growing.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from rsoptd.errors import Conflict
from rsoptd.logs import get_logger

if TYPE_CHECKING:
    from rsoptd.runs import Run
    from rsoptd.server import Daemon

log = get_logger()
PRUNE_EVERY = 3600.0  # seconds between automatic prunes when `retention` is set


def remove(daemon: Daemon, runs: list[Run]) -> dict[str, Any]:
    """Delete these runs' rows, all or none: an active run makes the whole request fail."""
    active = [run.id for run in runs if run.active]
    if active:
        raise Conflict(f"run {', '.join(map(str, active))} is still active; cancel it first (rsoptctl cancel)")
    store = daemon.ctx.store
    store.flush()
    ids = sorted({run.id for run in runs})
    evaluations = 0
    with store.db:
        store.db.execute("BEGIN")
        for run_id in ids:
            evaluations += store.db.execute("DELETE FROM evaluations WHERE run_id = ?", (run_id,)).rowcount
            store.db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    if ids:
        # a big delete leaves its pages in the WAL file, which SQLite reuses but never shrinks: fold
        # them into the database (whose freed pages new runs reuse) and truncate the WAL
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for run_id in ids:
        daemon.manager.runs.pop(run_id, None)
    if ids:
        log.info("runs removed", runs=ids, evaluations=evaluations)
    return {"removed": ids, "evaluations": evaluations, "run_dirs_kept": [run.record.run_dir for run in runs]}


def expired(daemon: Daemon, older_than: float, now: float | None = None) -> list[Run]:
    """Finished runs that ended (or, never started, were created) more than `older_than` seconds ago."""
    cutoff = (now or time.time()) - older_than
    return [run for run in daemon.manager.runs.values()
            if not run.active and (run.record.ended or run.record.created) <= cutoff]


def prune(daemon: Daemon, older_than: float, dry_run: bool = False) -> dict[str, Any]:
    runs = expired(daemon, older_than)
    if dry_run:
        return {"removed": [], "would_remove": [run.id for run in runs], "evaluations": 0,
                "run_dirs_kept": [run.record.run_dir for run in runs]}
    return remove(daemon, runs)


def schedule(daemon: Daemon) -> None:
    """(Re)start the automatic prune for the `retention` setting; nothing runs without it."""
    if daemon.retention_timer is not None:
        daemon.retention_timer.cancel()
        daemon.retention_timer = None
    retention = daemon.settings.retention
    if retention is None:
        return

    def tick() -> None:
        result = prune(daemon, retention)
        if result["removed"]:
            log.info("retention removed old runs", retention_seconds=retention, runs=result["removed"])
        daemon.retention_timer = asyncio.get_running_loop().call_later(PRUNE_EVERY, tick)

    tick()
