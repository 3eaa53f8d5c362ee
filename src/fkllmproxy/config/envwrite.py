"""Changing values in an env file in place, safely: the half of ``envfile`` that writes.

``rotate-key`` is the one writer. The file holds every secret the daemon has, so a
crash, a full disk or two operators rotating at once must never leave it truncated,
half-written, world-readable or missing a line. Hence:

- one writer at a time: an exclusive ``flock`` on ``<file>.lock`` beside it (the env
  file itself is replaced by rename, so it cannot carry the lock);
- read, change only the lines named, keep every other line and comment byte for byte;
- write a temporary file in the same directory (mode 0600, the old file's owner),
  ``fsync`` it, ``rename`` it over the old one, then ``fsync`` the directory, so that
  after a crash the file is either wholly old or wholly new.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from fkllmproxy.config.envfile import parse_env_text
from fkllmproxy.errors import ConfigError

__all__ = ["locked_env_file", "update_env_text", "write_env_file"]

_ASSIGNMENT = re.compile(r"^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_]*)(\s*=)")


def update_env_text(text: str, changes: Mapping[str, str | None]) -> str:
    """``text`` with each named variable set (or, for ``None``, its lines removed).

    A variable already present keeps its place (and an ``export`` prefix); one that is
    not is appended at the end. Every line that assigns none of ``changes`` is kept as
    it was, comments and blank lines included. Values are written unquoted, so they
    must be plain tokens (hex keys are).
    """
    for name, value in changes.items():
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._~+/=:@-]+", value):
            raise ValueError(f"{name}: value must be a plain token to be written unquoted")
    seen: set[str] = set()
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    for line in lines:
        match = _ASSIGNMENT.match(line)
        if match is None or match.group(2) not in changes:
            out.append(line)
            continue
        name = match.group(2)
        value = changes[name]
        if value is None or name in seen:
            continue  # removed, or a duplicate of a line already rewritten
        seen.add(name)
        ending = "\n" if line.endswith("\n") else ""
        out.append(f"{match.group(1)}{name}{match.group(3)}{value}{ending}")
    missing = [(n, v) for n, v in changes.items() if v is not None and n not in seen]
    if missing and out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    out.extend(f"{name}={value}\n" for name, value in missing)
    return "".join(out)


@contextlib.contextmanager
def locked_env_file(path: Path) -> Iterator[tuple[str, os.stat_result | None]]:
    """Hold the writer's lock on ``path``; yields its current text and stat (or ``""``, None).

    Raises ``ConfigError`` with the reason when the file or its lock cannot be used.
    """
    lock_path = path.with_name(path.name + ".lock")
    try:
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError([f"cannot lock {path}: {lock_path}: {exc.strerror}"]) from None
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            info: os.stat_result | None = path.stat()
            raw = path.read_bytes()
        except FileNotFoundError:
            info, raw = None, b""
        except OSError as exc:
            raise ConfigError([f"env file {path}: cannot be read ({exc.strerror})"]) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError([f"env file {path}: not UTF-8 text; not changing it"]) from None
        parse_env_text(text, origin=f"env file {path}")  # refuse to rewrite a broken file
        yield text, info
    finally:
        os.close(lock_fd)  # closing the descriptor releases the flock


def write_env_file(path: Path, text: str, like: os.stat_result | None) -> None:
    """Replace ``path`` with ``text`` atomically and durably, mode 0600.

    ``like`` is the old file's stat: its owner and group are kept when we may set them
    (running as root), so a daemon that reads the file as its own user still can.
    """
    directory = path.parent
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ConfigError([f"cannot write beside {path}: {exc.strerror}"]) from None
    try:
        with os.fdopen(fd, "wb") as temp:
            os.fchmod(temp.fileno(), 0o600)
            if like is not None and os.geteuid() == 0:
                os.fchown(temp.fileno(), like.st_uid, like.st_gid)
            temp.write(text.encode("utf-8"))
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise ConfigError([f"cannot write {path}: {exc.strerror}"]) from None
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
