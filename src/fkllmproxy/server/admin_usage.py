"""``POST /admin/usage/backup``: an online, consistent copy of the usage ledger.

The same copy as ``fkllm usage backup`` (observability/ledger_backup.py: SQLite's
backup API under a read snapshot, checked, fsynced, renamed into place), made in a
thread while the daemon keeps writing. A client names no path: the copy goes into
``[usage] backup_dir`` (default ``backups/`` beside the ledger) as
``usage-<UTC time>.sqlite3``, so the master key cannot be turned into a way to write
files anywhere the daemon may. Old copies are left for the operator to prune.
"""

from __future__ import annotations

import asyncio
import datetime
import os
from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, Response, post

from fkllmproxy.errors import Conflict, StorageError
from fkllmproxy.observability.ledger_backup import LedgerCopy, backup_ledger
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.observability.usage import LedgerError, backup_directory
from fkllmproxy.server.admin_config_source import counted
from fkllmproxy.server.exchange import ApiRequest
from fkllmproxy.server.gate import admit_master
from fkllmproxy.server.runtime import RuntimeHolder

__all__ = ["backup_into", "usage_backup"]

_encode = msgspec.json.Encoder().encode
_log = get_logger("admin")
_STAMP = "%Y%m%dT%H%M%S%fZ"


def backup_into(ledger: Path, directory: Path, now: datetime.datetime) -> LedgerCopy:
    """Copy ``ledger`` to ``directory/usage-<now>.sqlite3`` (the directory made, 0700);
    ``StorageError`` naming the reason when the disk refuses. Blocking."""
    target = directory / f"usage-{now.strftime(_STAMP)}.sqlite3"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if target.exists():  # two copies in one microsecond: never overwrite one
            target = directory / f"usage-{now.strftime(_STAMP)}-{os.getpid()}.sqlite3"
        return backup_ledger(ledger, target)
    except OSError as exc:
        reason = f"{exc.filename or directory}: {exc.strerror}"
    except LedgerError as exc:
        reason = str(exc)
    raise StorageError(f"The usage backup could not be made in {directory} ({reason}).")


@post("/admin/usage/backup", status_code=200)
async def usage_backup(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Copy the live ledger into the backup directory; where, how big, how many rows."""
    holder: RuntimeHolder = request.app.state.holder
    await admit_master(ApiRequest.of(request), holder.runtime)
    with counted(holder, "usage_backup"):
        ledger = holder.ledger
        if ledger is None:
            error = Conflict(
                "There is no usage ledger to back up: [usage] enabled = false "
                "(APP_USAGE__ENABLED=true turns it on)."
            )
            error.code = "usage_ledger_disabled"
            raise error
        directory = backup_directory(holder.runtime.config, ledger.path)
        now = datetime.datetime.now(datetime.UTC)
        try:
            copy = await asyncio.to_thread(backup_into, ledger.path, directory, now)
        except StorageError as exc:
            _log.warning("usage ledger backup failed", extra={"who": "master key",
                                                              "error": exc.message})  # fmt: skip
            raise
    _log.info(
        "usage ledger backed up over the admin API",
        extra={"who": "master key", "path": str(copy.path), "rows": copy.rows, "size": copy.size},
    )
    body = {
        "path": str(copy.path),
        "size": copy.size,
        "rows": copy.rows,
        "ledger": str(ledger.path),
        "created": now.isoformat(timespec="seconds"),
    }
    return Response(content=_encode(body), media_type="application/json")
