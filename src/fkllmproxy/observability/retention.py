"""Keeping the usage ledger's size bounded: old raw rows go, the daily rollups stay.

``[usage] retention_days`` (default 90; 0 keeps everything) is applied by the ledger's
own writer thread (``observability/usage.py``), never by a request: once at start and
then every ``PRUNE_EVERY_SECS``. Rows from before the UTC day ``retention_days`` ago are
deleted ``PRUNE_BATCH`` at a time, one short transaction each, and the writer flushes
the rows queued meanwhile between two batches, so a prune of months never holds the
file for long. The freed pages are then handed back to the file system with
``PRAGMA incremental_vacuum``, also in steps.

The cut is on a UTC day boundary and recorded (``usage_meta.raw_since``): raw rows
from that moment on are complete, so a reader knows when it may use them for a part
of a day and when only the day's rollup is left.

Space is reclaimed only from files in ``auto_vacuum = INCREMENTAL`` mode: new ledgers
are created that way; an older file is converted when it is opened, with one
``VACUUM``, if it is under ``CONVERT_MAX_BYTES`` (well under a second). A bigger older
file keeps working and is pruned, its freed pages are reused by new rows, but the file
does not shrink until it is converted by hand (docs/operations.md says how).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from fkllmproxy.observability.logging import get_logger

__all__ = [
    "CONVERT_MAX_BYTES",
    "PRUNE_BATCH",
    "PRUNE_EVERY_SECS",
    "cutoff",
    "prepare",
    "prune",
    "raw_since",
    "reclaim",
]

PRUNE_EVERY_SECS = 3600.0
PRUNE_BATCH = 5_000  # rows per delete transaction: a few milliseconds each
VACUUM_STEP_PAGES = 2_000  # pages per incremental_vacuum step (8 MB at 4 KiB pages)
CONVERT_MAX_BYTES = 64 * 1024 * 1024
_INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
_DAY = 86_400

META_SCHEMA = "CREATE TABLE IF NOT EXISTS usage_meta (name TEXT PRIMARY KEY, value REAL NOT NULL)"
_DELETE = "DELETE FROM usage WHERE id IN (SELECT id FROM usage WHERE ts < ? ORDER BY ts LIMIT ?)"
_RAISE_SINCE = (
    "INSERT INTO usage_meta VALUES ('raw_since', ?)"
    " ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)"
)

_log = get_logger("usage")


def prepare(connection: sqlite3.Connection, path: Path) -> None:
    """Before the schema: new files get ``auto_vacuum = INCREMENTAL``; a small older
    file is converted with one ``VACUUM`` (a big one is left alone, see the module)."""
    mode = connection.execute("PRAGMA auto_vacuum").fetchone()[0]
    if mode == _INCREMENTAL:
        return
    tables = connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
    connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
    if not tables:
        return  # takes effect when the first table is created
    size = path.stat().st_size if path.exists() else 0
    if size > CONVERT_MAX_BYTES:
        _log.warning(
            "usage ledger does not shrink after a prune; see docs/operations.md to convert it",
            extra={"path": str(path), "bytes": size},
        )
        return
    try:
        connection.execute("VACUUM")
    except sqlite3.OperationalError as exc:  # another worker holds it: the next start
        _log.warning(
            "usage ledger not converted to incremental vacuum this time",
            extra={"path": str(path), "error": str(exc)},
        )


def cutoff(now: float, retention_days: int) -> float:
    """Midnight UTC of the day ``retention_days`` before ``now``: older rows go."""
    moment = now - retention_days * _DAY
    return moment - moment % _DAY


def prune(
    connection: sqlite3.Connection,
    before: float,
    between: Callable[[], None],
    stopping: Callable[[], bool],
) -> int:
    """Delete the raw rows from before ``before`` in batches, calling ``between`` after
    each (the writer flushes what was queued meanwhile); how many rows went."""
    with connection:
        connection.execute(META_SCHEMA)
        connection.execute(_RAISE_SINCE, (before,))
    deleted = 0
    while True:
        with connection:
            count = connection.execute(_DELETE, (before, PRUNE_BATCH)).rowcount
        deleted += count
        if count < PRUNE_BATCH or stopping():
            return deleted
        between()


def reclaim(
    connection: sqlite3.Connection, between: Callable[[], None], stopping: Callable[[], bool]
) -> int:
    """Give the free pages back to the file system in steps; how many pages went."""
    if connection.execute("PRAGMA auto_vacuum").fetchone()[0] != _INCREMENTAL:
        return 0
    freed = 0
    while not stopping():
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        if not free:
            break
        connection.execute(f"PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})").fetchall()
        freed += min(free, VACUUM_STEP_PAGES)
        between()
    return freed


def raw_since(connection: sqlite3.Connection) -> float:
    """From when on the raw rows are complete (0: nothing was ever pruned)."""
    try:
        row = connection.execute("SELECT value FROM usage_meta WHERE name = 'raw_since'").fetchone()
    except sqlite3.OperationalError:  # no usage_meta: never pruned
        return 0.0
    return float(row[0]) if row else 0.0
