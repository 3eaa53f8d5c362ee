"""Replacing the config file on disk: atomic, durable, backed up, one writer at a time.

A new version is written to a temporary file in the file's own directory (so the
rename cannot cross filesystems), flushed with fsync, given the old file's mode and
owner, and renamed over it; the directory is then fsynced so the rename itself
survives a power cut. A reader (the daemon's reload, ``check-config``) sees the old
file or the new one, never half of either.

Before the rename the version being replaced is kept beside it as
``config.toml.<UTC timestamp>.bak`` with the same mode (it holds the same secrets);
the newest ``[admin] config_backups`` of those are kept, older ones removed.
Writers (several workers, two operators) take an exclusive ``flock`` on a lock file
beside the config so that the check of the version read (``If-Match``) and the
rename are one step.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

__all__ = ["Backup", "backups", "exclusive", "read_backup", "replace_file", "staged"]

T = TypeVar("T")
_STAMP = "%Y%m%dT%H%M%S%fZ"


@dataclass(frozen=True)
class Backup:
    """One kept earlier version of the config file."""

    name: str
    size: int
    created: str  # ISO 8601, UTC


def _pattern(path: Path) -> re.Pattern[str]:
    return re.compile(re.escape(path.name) + r"\.(\d{8}T\d{12}Z)\.bak")


def backups(path: Path) -> list[Backup]:
    """The kept versions of ``path``, newest first."""
    pattern = _pattern(path)
    found = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        stamp = datetime.datetime.strptime(match.group(1), _STAMP).replace(tzinfo=datetime.UTC)
        try:
            size = (path.parent / name).stat().st_size
        except OSError:
            continue
        found.append(Backup(name, size, stamp.isoformat(timespec="seconds")))
    return sorted(found, key=lambda b: b.name, reverse=True)


def read_backup(path: Path, name: str) -> bytes | None:
    """The content of the backup called ``name``; ``None`` if there is no such backup
    (a name that is not one of ours, such as ``../x``, is never opened)."""
    if _pattern(path).fullmatch(name) is None:
        return None
    try:
        return (path.parent / name).read_bytes()
    except OSError:
        return None


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the writers' lock for ``path`` (a ``.<name>.lock`` file beside it)."""
    lock = path.parent / f".{path.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged(path: Path, content: bytes) -> Iterator[Path]:
    """``content`` in a fsynced temporary file beside ``path``, with its mode and owner;
    removed on leaving unless ``replace_file`` renamed it."""
    info = path.stat()
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fchmod(out.fileno(), info.st_mode & 0o7777)
            if (info.st_uid, info.st_gid) != (os.geteuid(), os.getegid()):
                with contextlib.suppress(PermissionError):
                    os.fchown(out.fileno(), info.st_uid, info.st_gid)
            os.fsync(out.fileno())
        yield temp
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(
    path: Path,
    temp: Path,
    keep: int,
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
) -> str:
    """Keep the current ``path`` as a backup, rename ``temp`` over it, prune old backups.

    Returns the backup's name.
    """
    info = path.stat()
    name = f"{path.name}.{now().strftime(_STAMP)}.bak"
    backup = path.parent / name
    fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(path.read_bytes())
        out.flush()
        os.fchmod(out.fileno(), info.st_mode & 0o7777)
        os.fsync(out.fileno())
    os.replace(temp, path)
    for old in backups(path)[keep:]:
        with contextlib.suppress(FileNotFoundError):
            (path.parent / old.name).unlink()
    _fsync_directory(path.parent)
    return name
