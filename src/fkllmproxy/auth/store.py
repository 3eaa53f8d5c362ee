"""The key store: client keys that operators manage with ``fkllm keys``, in SQLite.

An alternative to writing ``[[auth.keys]]`` blocks by hand. The store keeps what the
config would: a name, the key's SHA-256 (never the key, which is shown once at
creation), allowed models and an optional own rate limit. It lives in
``<state.directory>/keys.sqlite3``; the daemon merges its keys with ``[[auth.keys]]``
at start and on every reload, so ``fkllm keys create`` followed by
``systemctl reload fkllmproxy`` lets a new key in without a restart.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from fkllmproxy.auth.keys import key_digest
from fkllmproxy.config.schema import ClientKey, Config, KeyRateLimit
from fkllmproxy.errors import ConfigError

__all__ = ["KEY_PREFIX", "KeyStore", "StoredKey", "store_keys", "store_path"]

STORE_FILE = "keys.sqlite3"
KEY_PREFIX = "sk-fkllm-"
# Added with budgets: a store written before gets them on open.
_ADDED_COLUMNS = {
    "budget_usd": "REAL",
    "budget_period": "TEXT NOT NULL DEFAULT 'month'",
    "tokens_per_minute": "INTEGER",
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    name TEXT PRIMARY KEY,
    key_sha256 TEXT NOT NULL UNIQUE,
    models TEXT NOT NULL DEFAULT '[]',
    capacity INTEGER,
    refill_per_second REAL,
    created_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class StoredKey:
    """One row of the store, as ``fkllm keys list`` shows it (no secret in it)."""

    name: str
    key_sha256: str
    models: list[str]
    capacity: int | None
    refill_per_second: float | None
    created_at: float
    budget_usd: float | None = None
    budget_period: str = "month"
    tokens_per_minute: int | None = None

    def as_client_key(self) -> ClientKey:
        limit = (
            KeyRateLimit(capacity=self.capacity, refill_per_second=self.refill_per_second)
            if self.capacity and self.refill_per_second
            else None
        )
        return ClientKey(
            name=self.name,
            key_sha256=self.key_sha256,
            models=self.models,
            rate_limit=limit,
            budget_usd=self.budget_usd,
            budget_period=self.budget_period,  # type: ignore[arg-type]  # checked at create
            tokens_per_minute=self.tokens_per_minute,
        )


def store_path(directory: str | Path) -> Path:
    return Path(directory) / STORE_FILE


def _exists(path: Path) -> bool:
    """Whether the store exists; a directory the process may not search is a config error
    naming it (``Path.exists`` raises ``PermissionError`` there rather than saying no)."""
    try:
        return path.exists()
    except OSError as exc:
        raise ConfigError([f"key store {path}: cannot be read ({exc.strerror})"]) from None


class KeyStore:
    """The SQLite file of client keys. Opened per use: the CLI and the daemon share it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _connect(self, *, create: bool) -> Iterator[sqlite3.Connection]:
        if not create and not _exists(self.path):
            raise FileNotFoundError(self.path)
        fresh = not _exists(self.path)
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError([f"key store {self.path}: cannot be opened ({exc})"]) from None
        try:
            if fresh:
                self._restrict()
            with connection:
                connection.execute(_SCHEMA)
                present = {row[1] for row in connection.execute("PRAGMA table_info(keys)")}
                for column, declaration in _ADDED_COLUMNS.items():
                    if column not in present:
                        connection.execute(f"ALTER TABLE keys ADD COLUMN {column} {declaration}")
                yield connection
        except sqlite3.Error as exc:
            raise ConfigError([f"key store {self.path}: {exc}"]) from None
        finally:
            connection.close()

    def _restrict(self) -> None:
        """Mode 0600, owned like its directory (the daemon's StateDirectory) when root."""
        os.chmod(self.path, 0o600)
        if os.geteuid() == 0:
            owner = self.path.parent.stat()
            os.chown(self.path, owner.st_uid, owner.st_gid)

    def create(
        self,
        name: str,
        models: list[str],
        rate_limit: KeyRateLimit | None = None,
        *,
        budget_usd: float | None = None,
        budget_period: str = "month",
        tokens_per_minute: int | None = None,
    ) -> str:
        """Make a new key called ``name``; returns the key itself (never stored)."""
        try:  # the same name rules as [[auth.keys]]
            msgspec.convert({"name": name, "key_sha256": "0" * 64}, ClientKey)
        except msgspec.ValidationError:
            raise ConfigError(
                [f"key name {name!r}: use 1 to 128 letters, digits and . _ : / @ + -"]
            ) from None
        try:  # and the same budget rules
            msgspec.convert(
                {
                    "name": name,
                    "key_sha256": "0" * 64,
                    "budget_usd": budget_usd,
                    "budget_period": budget_period,
                    "tokens_per_minute": tokens_per_minute,
                },
                ClientKey,
            )
        except msgspec.ValidationError as exc:
            raise ConfigError([f"key {name!r}: {exc}"]) from None
        key = KEY_PREFIX + secrets.token_hex(32)
        digest = key_digest(key).hex()
        with self._connect(create=True) as db:
            try:
                db.execute(
                    "INSERT INTO keys (name, key_sha256, models, capacity, refill_per_second,"
                    " created_at, budget_usd, budget_period, tokens_per_minute)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        digest,
                        msgspec.json.encode(models).decode(),
                        rate_limit.capacity if rate_limit else None,
                        rate_limit.refill_per_second if rate_limit else None,
                        time.time(),
                        budget_usd,
                        budget_period,
                        tokens_per_minute,
                    ),
                )
            except sqlite3.IntegrityError:
                raise ConfigError([f"a key named {name!r} already exists"]) from None
        return key

    def list(self) -> list[StoredKey]:
        """Every stored key, oldest first; an absent store has none."""
        try:
            with self._connect(create=False) as db:
                rows = db.execute(
                    "SELECT name, key_sha256, models, capacity, refill_per_second, created_at,"
                    " budget_usd, budget_period, tokens_per_minute"
                    " FROM keys ORDER BY created_at, name"
                ).fetchall()
        except FileNotFoundError:
            return []
        return [
            StoredKey(
                name=row[0],
                key_sha256=row[1],
                models=msgspec.json.decode(row[2], type=list[str]),
                capacity=row[3],
                refill_per_second=row[4],
                created_at=row[5],
                budget_usd=row[6],
                budget_period=row[7] or "month",
                tokens_per_minute=row[8],
            )
            for row in rows
        ]

    def revoke(self, name: str) -> bool:
        """Delete the key called ``name``; ``False`` if there was none."""
        try:
            with self._connect(create=False) as db:
                deleted = db.execute("DELETE FROM keys WHERE name = ?", (name,)).rowcount
        except FileNotFoundError:
            return False
        return deleted > 0


def store_keys(config: Config) -> list[ClientKey]:
    """The key store's keys for ``config`` (none if the store does not exist).

    A stored name that ``[[auth.keys]]`` also uses is left out: the config file wins.
    """
    path = store_path(config.state.directory)
    if not _exists(path):
        return []
    configured = {key.name for key in config.auth.keys}
    return [k.as_client_key() for k in KeyStore(path).list() if k.name not in configured]
