"""An online copy of the usage ledger while the daemon keeps writing to it.

Copying the file with ``cp`` can catch a page half written, or the main file without
the commits still in its WAL: a torn database. SQLite's online backup API
(``sqlite3.Connection.backup``) copies pages under a read transaction instead, so the
copy is the database as of one commit. The ledger is in WAL mode, where a reader never
blocks the writer; the copy is still made a few thousand pages per step, so that no
read transaction (and no WAL growth behind it) lasts long on a big ledger.

A step that sees the source changed by another connection makes SQLite start the copy
over. Under a steady stream of writes a stepped copy of a large file could restart
for ever, so after a few restarts the rest is copied in one step (one read snapshot:
in WAL mode that still does not block the writer).

The copy goes to a temporary file beside the destination, is checked with
``PRAGMA quick_check``, fsynced and renamed into place: the destination is the old
backup or the new one, never a partial copy.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fkllmproxy.observability.usage import LedgerError

__all__ = ["LedgerCopy", "backup_ledger"]

_PAGES_PER_STEP = 4096
_RESTARTS_BEFORE_ONE_STEP = 3
_BUSY_TIMEOUT_SECS = 10.0


@dataclass(frozen=True)
class LedgerCopy:
    """What a backup wrote: where, how many request rows, how many bytes."""

    path: Path
    rows: int
    size: int


def _copy(source: sqlite3.Connection, target: sqlite3.Connection, pages: int) -> None:
    restarts = [0, -1]  # restarts seen, pages remaining after the last step

    def progress(status: int, remaining: int, total: int) -> None:
        if restarts[1] >= 0 and remaining > restarts[1]:
            restarts[0] += 1
            if restarts[0] >= _RESTARTS_BEFORE_ONE_STEP:
                raise _Restarting
        restarts[1] = remaining

    try:
        source.backup(target, pages=pages, progress=progress)
    except _Restarting:
        source.backup(target, pages=-1)


class _Restarting(Exception):
    """The stepped copy keeps being restarted by new writes."""


def backup_ledger(source: Path, destination: Path, pages: int = _PAGES_PER_STEP) -> LedgerCopy:
    """Copy the ledger at ``source`` to ``destination`` consistently; ``LedgerError`` if
    there is no ledger there or the copy cannot be made."""
    if not source.is_file():
        raise LedgerError(f"no usage ledger at {source}")
    destination = destination.resolve()
    if destination == source.resolve():
        raise LedgerError("the backup cannot be written over the ledger itself")
    if destination.is_dir():
        destination = destination / source.name
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent
        )
    except OSError as exc:
        raise LedgerError(f"cannot write in {destination.parent}: {exc.strerror}") from None
    os.close(fd)
    temp = Path(name)
    try:
        reader = sqlite3.connect(source, timeout=_BUSY_TIMEOUT_SECS)
        target = sqlite3.connect(temp)
        try:
            _copy(reader, target, pages)
            # One self-contained file: a copy left in WAL mode grows -wal/-shm files
            # beside it as soon as anything opens it.
            target.execute("PRAGMA journal_mode=DELETE")
            check = target.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise LedgerError(f"the copy failed its integrity check: {check}")
            rows = target.execute("SELECT count(*) FROM usage").fetchone()[0]
        finally:
            target.close()
            reader.close()
        with open(temp, "rb") as copy:
            os.fsync(copy.fileno())
        os.replace(temp, destination)
        directory = os.open(destination.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot copy the usage ledger {source}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return LedgerCopy(destination, int(rows), destination.stat().st_size)
