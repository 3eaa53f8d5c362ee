"""The usage ledger: one SQLite row per completed model request, written off the request path.

A request only appends a tuple to an in-memory queue (``UsageLedger.record``: no I/O;
the first row into an empty queue also sets an event). A writer thread woken by that
event waits ``usage.flush_interval_secs`` (default 0.1 s) so the rows of a busy moment
share one transaction, then inserts them and commits with ``synchronous=FULL`` (the
WAL is fsynced: at most ten fsyncs a second at the default, none on the event loop).
So a row is on disk within ``flush_interval_secs`` plus one commit of its request
finishing, and that is all a SIGKILL, an OOM kill or a power loss can cost; SQLite
replays its WAL when the file is next opened. ``close`` (on shutdown, after the
drain) cuts the wait short and flushes, so a clean stop loses nothing.

A write that fails (disk full, a read-only file, a lock held too long) keeps the rows
queued and is retried every second; it is logged once, when it starts failing, and
once when writing works again. Rows beyond ``MAX_PENDING`` are dropped, oldest first,
and counted in ``fkllm_usage_rows_dropped_total``; requests never wait for the disk.
With several workers each one writes to the same file; SQLite's WAL mode and a busy
timeout let them take turns.

Each flush also adds its rows to ``usage_daily``, one row per UTC day, key, model and
provider, in the same transaction: the console's pages read those rollups, so a page
view costs a few hundred rows however many months of requests the ledger holds. A
ledger written before the rollups existed is rolled up once, when the daemon opens it.

Energy is an estimate too (``energy_wh``, see ``observability/energy.py``): the
request's tokens times its model's Wh per 1,000 prompt and completion tokens, worked
out by the middleware (a dict lookup and two multiplications) and passed in.

Cost is an estimate from the ``[[pricing]]`` table: USD per million prompt and
completion tokens (prompt-cache reads and writes at their own prices when the table
gives them), looked up by provider and upstream model, then upstream model, then the
model name the client sent; requests with no matching price get no cost.
"""

from __future__ import annotations

import collections
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fkllmproxy.config.schema import Config, PriceConfig
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.observability.metrics import process_metrics

__all__ = [
    "GROUPINGS",
    "LedgerError",
    "PriceTable",
    "UsageLedger",
    "backup_directory",
    "ledger_path",
    "open_ledger",
    "spend_by_day",
    "summarize",
    "summarize_days",
]

_log = get_logger("usage")

SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,                 -- when the request finished, Unix seconds (UTC)
    request_id TEXT NOT NULL,
    key_name TEXT,                    -- the client key's name (never the key)
    model TEXT,                       -- the model name the client sent
    provider TEXT,                    -- the provider that answered (last tried)
    upstream_model TEXT,
    prompt_tokens INTEGER NOT NULL,   -- all input tokens, cache reads and writes included
    completion_tokens INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    status INTEGER NOT NULL,          -- the HTTP status the client got
    cost_usd REAL                     -- estimate from [[pricing]]; NULL when unpriced
);
CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts);
"""
# Added after the first release: ledgers written before get them on open.
_ADDED_COLUMNS = {
    "cache_read_tokens": "INTEGER NOT NULL DEFAULT 0",  # prompt-cache reads (in prompt_tokens)
    "cache_write_tokens": "INTEGER NOT NULL DEFAULT 0",  # prompt-cache writes (in prompt_tokens)
    "energy_wh": "REAL",  # estimated Wh of the answer (observability/energy.py); NULL: none
}
_ADDED_DAILY_COLUMNS = {"energy_wh": "REAL"}
DAILY_SCHEMA = """
CREATE TABLE usage_daily (
    day TEXT NOT NULL,                -- UTC date, YYYY-MM-DD
    key_name TEXT NOT NULL,           -- '-' for requests without a key name
    model TEXT NOT NULL,              -- '-' when none
    provider TEXT NOT NULL,           -- '-' when none
    requests INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL,                    -- NULL while nothing in the group was priced
    latency_ms_sum REAL NOT NULL,
    last_ts REAL NOT NULL,
    energy_wh REAL,                   -- estimated Wh (NULL while nothing had an estimate)
    PRIMARY KEY (day, key_name, model, provider)
) WITHOUT ROWID;
INSERT INTO usage_daily
    SELECT date(ts, 'unixepoch'), COALESCE(key_name, '-'), COALESCE(model, '-'),
           COALESCE(provider, '-'), COUNT(*), SUM(status >= 400), SUM(prompt_tokens),
           SUM(completion_tokens), SUM(cost_usd), SUM(latency_ms), MAX(ts), SUM(energy_wh)
    FROM usage GROUP BY 1, 2, 3, 4;
"""
_UPSERT_DAILY = (
    "INSERT INTO usage_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (day, key_name, model, provider) DO UPDATE SET"
    " requests = requests + excluded.requests, failed = failed + excluded.failed,"
    " prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
    " completion_tokens = completion_tokens + excluded.completion_tokens,"
    " cost_usd = CASE WHEN excluded.cost_usd IS NULL THEN cost_usd"
    " ELSE COALESCE(cost_usd, 0) + excluded.cost_usd END,"
    " latency_ms_sum = latency_ms_sum + excluded.latency_ms_sum,"
    " last_ts = MAX(last_ts, excluded.last_ts),"
    " energy_wh = CASE WHEN excluded.energy_wh IS NULL THEN energy_wh"
    " ELSE COALESCE(energy_wh, 0) + excluded.energy_wh END"
)
_INSERT = (
    "INSERT INTO usage (ts, request_id, key_name, model, provider, upstream_model,"
    " prompt_tokens, completion_tokens, latency_ms, status, cost_usd,"
    " cache_read_tokens, cache_write_tokens, energy_wh)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
MAX_PENDING = 200_000  # beyond this the writer is hopelessly behind: drop the oldest
_RETRY_SECS = 1.0  # after a failed write, how soon the next try comes
_BUSY_TIMEOUT_MS = 10_000

Row = tuple[
    float,
    str,
    str | None,
    str | None,
    str | None,
    str | None,
    int,
    int,
    float,
    int,
    float | None,
    int,
    int,
    float | None,
]


class LedgerError(Exception):
    """Raised when the ledger file cannot be opened or created (path, permissions)."""


class PriceTable:
    """USD per million tokens, looked up the most specific way first."""

    def __init__(self, prices: Iterable[PriceConfig]) -> None:
        self._prices: dict[tuple[str | None, str], PriceConfig] = {}
        for price in prices:
            self._prices[(price.provider, price.model)] = price

    def find(
        self, provider: str | None, upstream_model: str | None, model: str | None
    ) -> PriceConfig | None:
        """The price that applies: provider and upstream model, upstream model, then the
        model name the client sent (with and without the provider)."""
        price = None
        if upstream_model is not None:
            price = self._prices.get((provider, upstream_model)) or self._prices.get(
                (None, upstream_model)
            )
        if price is None and model is not None:
            price = self._prices.get((provider, model)) or self._prices.get((None, model))
        return price

    def cost(
        self,
        provider: str | None,
        upstream_model: str | None,
        model: str | None,
        prompt_tokens: int,
        completion_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float | None:
        """USD for one request; the cache tokens are part of ``prompt_tokens``."""
        if not self._prices:
            return None
        price = self.find(provider, upstream_model, model)
        if price is None:
            return None
        total = prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok
        if cache_read_tokens and price.cache_read_per_million is not None:
            total += cache_read_tokens * (price.cache_read_per_million - price.input_per_mtok)
        if cache_write_tokens and price.cache_write_per_million is not None:
            total += cache_write_tokens * (price.cache_write_per_million - price.input_per_mtok)
        return max(total, 0.0) / 1_000_000


def ledger_path(config: Config) -> Path:
    """``usage.path``, else ``usage.sqlite3`` in the state directory."""
    if config.usage.path:
        return Path(config.usage.path)
    return Path(config.state.directory) / "usage.sqlite3"


def backup_directory(config: Config, ledger: Path) -> Path:
    """``usage.backup_dir``, else ``backups`` beside the ledger file ``ledger``."""
    if config.usage.backup_dir:
        return Path(config.usage.backup_dir)
    return ledger.parent / "backups"


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")  # a commit survives a power loss
        connection.executescript(SCHEMA)
        present = {row[1] for row in connection.execute("PRAGMA table_info(usage)")}
        for name, declaration in _ADDED_COLUMNS.items():
            if name not in present:
                connection.execute(f"ALTER TABLE usage ADD COLUMN {name} {declaration}")
        _add_rollups(connection)
        present = {row[1] for row in connection.execute("PRAGMA table_info(usage_daily)")}
        for name, declaration in _ADDED_DAILY_COLUMNS.items():
            if name not in present:
                connection.execute(f"ALTER TABLE usage_daily ADD COLUMN {name} {declaration}")
    except (OSError, sqlite3.Error) as exc:
        raise LedgerError(f"cannot open the usage ledger {path}: {exc}") from None
    return connection


def _add_rollups(connection: sqlite3.Connection) -> None:
    """Create ``usage_daily`` from the rows so far, once (workers take turns on the lock)."""
    exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'usage_daily'"
    if connection.execute(exists).fetchone():
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        if not connection.execute(exists).fetchone():
            for statement in DAILY_SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _daily(batch: list[Row]) -> list[tuple[Any, ...]]:
    """A batch of rows summed per UTC day, key, model and provider (for the upsert)."""
    groups: dict[tuple[str, str, str, str], list[Any]] = {}
    for ts, _, key, model, provider, _, prompt, completion, latency, status, cost, *rest in batch:
        energy = rest[2]
        day = time.strftime("%Y-%m-%d", time.gmtime(ts))
        group = groups.get((day, key or "-", model or "-", provider or "-"))
        if group is None:
            group = groups[(day, key or "-", model or "-", provider or "-")] = [
                0, 0, 0, 0, None, 0.0, ts, None,
            ]  # fmt: skip
        group[0] += 1
        group[1] += status >= 400
        group[2] += prompt
        group[3] += completion
        if cost is not None:
            group[4] = (group[4] or 0.0) + cost
        group[5] += latency
        group[6] = max(group[6], ts)
        if energy is not None:
            group[7] = (group[7] or 0.0) + energy
    return [(*names, *sums) for names, sums in groups.items()]


class UsageLedger:
    """Queue of finished requests and the thread that writes them to SQLite in batches."""

    def __init__(self, path: Path, flush_interval: float, prices: PriceTable) -> None:
        self.path = path
        self.prices = prices
        self._interval = flush_interval
        self._connection = _connect(path)  # fail at start, not in the thread
        self._pending: collections.deque[Row] = collections.deque()
        self._dropped = 0
        self._failing = False
        self._wake = threading.Event()  # set by the first row queued into an empty queue
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fkllm-usage", daemon=True)
        self._thread.start()

    def record(
        self,
        *,
        request_id: str,
        key_name: str | None,
        model: str | None,
        provider: str | None,
        upstream_model: str | None,
        prompt_tokens: int,
        completion_tokens: int,
        latency_ms: float,
        status: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        energy_wh: float | None = None,
    ) -> None:
        """Queue one finished request (cheap: called on the event loop)."""
        cost = self.prices.cost(
            provider,
            upstream_model,
            model,
            prompt_tokens,
            completion_tokens,
            cache_read_tokens,
            cache_write_tokens,
        )
        pending = self._pending
        pending.append(
            (
                time.time(),
                request_id,
                key_name,
                model,
                provider,
                upstream_model,
                prompt_tokens,
                completion_tokens,
                latency_ms,
                status,
                cost,
                cache_read_tokens,
                cache_write_tokens,
                energy_wh,
            )
        )
        if len(pending) == 1:
            self._wake.set()
        elif len(pending) > MAX_PENDING:
            pending.popleft()
            self._dropped += 1

    def _run(self) -> None:
        stop = self._stop
        while not stop.is_set():
            # Rows queued while this thread writes are left for the next round (the
            # queue was not empty, so nothing set the event): after a failure, or when
            # rows remain, come back without waiting to be woken.
            self._wake.wait(_RETRY_SECS if self._failing or self._pending else None)
            self._wake.clear()
            stop.wait(self._interval)  # let a burst share one commit; close cuts it short
            self._flush()
        self._flush()
        self._connection.close()

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        batch: list[Row] = []
        while pending:
            batch.append(pending.popleft())
        dropped, self._dropped = self._dropped, 0
        if dropped:
            _log.warning(
                "usage ledger fell behind; oldest records dropped", extra={"dropped": dropped}
            )
            process_metrics().usage_rows_dropped(dropped)
        try:
            with self._connection:
                self._connection.executemany(_INSERT, batch)
                self._connection.executemany(_UPSERT_DAILY, _daily(batch))
        except sqlite3.Error as exc:
            # Keep the rows for the next round: a locked or full disk may clear.
            pending.extendleft(reversed(batch))
            if not self._failing:
                self._failing = True
                _log.error(
                    "usage ledger write failed; rows stay queued and the write is retried",
                    extra={"path": str(self.path), "error": str(exc), "pending": len(pending)},
                )
            return
        if self._failing:
            self._failing = False
            _log.warning("usage ledger writes again", extra={"path": str(self.path)})

    def close(self, timeout: float = 30.0) -> None:
        """Write everything still queued, then stop the writer (idempotent)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


def open_ledger(config: Config) -> UsageLedger | None:
    """The ledger ``config`` asks for (``None`` when ``usage.enabled`` is false)."""
    if not config.usage.enabled:
        return None
    return UsageLedger(
        ledger_path(config), config.usage.flush_interval_secs, PriceTable(config.pricing)
    )


GROUPINGS: dict[str, str] = {
    "key": "COALESCE(key_name, '-')",
    "model": "COALESCE(model, '-')",
    "provider": "COALESCE(provider, '-')",
    "day": "date(ts, 'unixepoch')",
}
Grouping = Literal["key", "model", "provider", "day"]


@dataclass(frozen=True)
class UsageLine:
    group: str
    requests: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    avg_latency_ms: float | None
    energy_wh: float | None = None  # an estimate (observability/energy.py); None: none


def summarize(path: Path, *, by: str = "key", since: float | None = None) -> list[UsageLine]:
    """Totals per key, model, provider or day (UTC) of the rows since ``since``."""
    if by not in GROUPINGS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUPINGS)}")
    if not path.exists():
        raise LedgerError(f"no usage ledger at {path}")
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open the usage ledger {path}: {exc}") from None
    query = (
        f"SELECT {GROUPINGS[by]} AS grp, COUNT(*), SUM(status >= 400), SUM(prompt_tokens),"
        " SUM(completion_tokens), SUM(cost_usd), AVG(latency_ms), SUM(energy_wh)"
        " FROM usage WHERE ts >= ? GROUP BY grp ORDER BY grp"
    )
    try:
        with connection:
            rows: Sequence[Any] = connection.execute(query, (since or 0.0,)).fetchall()
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot read the usage ledger {path}: {exc}") from None
    finally:
        connection.close()
    return [
        UsageLine(
            group=str(row[0]),
            requests=int(row[1]),
            failed=int(row[2] or 0),
            prompt_tokens=int(row[3] or 0),
            completion_tokens=int(row[4] or 0),
            cost_usd=None if row[5] is None else round(float(row[5]), 6),
            avg_latency_ms=None if row[6] is None else round(float(row[6]), 3),
            energy_wh=None if row[7] is None else round(float(row[7]), 6),
        )
        for row in rows
    ]


DAILY_GROUPINGS: dict[str, str] = {
    "key": "key_name",
    "model": "model",
    "provider": "provider",
    "day": "day",
}


def spend_by_day(path: Path, since_day: str) -> dict[tuple[str, str], float]:
    """Cost per (key name, UTC day) from the daily rollups since ``since_day``: what
    budgets start from when the daemon starts (one query, before any request)."""
    if not path.exists():
        return {}
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = connection.execute(
                "SELECT key_name, day, SUM(cost_usd) FROM usage_daily"
                " WHERE day >= ? AND cost_usd IS NOT NULL GROUP BY key_name, day",
                (since_day,),
            ).fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot read the usage ledger {path}: {exc}") from None
    return {(str(row[0]), str(row[1])): float(row[2]) for row in rows}


def summarize_days(path: Path, *, by: str = "key", since_day: str = "") -> list[UsageLine]:
    """``summarize`` from the daily rollups: totals per group of the UTC days from
    ``since_day`` (``YYYY-MM-DD``; empty: all), reading a row per day and group."""
    if by not in DAILY_GROUPINGS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(DAILY_GROUPINGS)}")
    if not path.exists():
        raise LedgerError(f"no usage ledger at {path}")
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open the usage ledger {path}: {exc}") from None
    column = DAILY_GROUPINGS[by]
    query = (
        f"SELECT {column} AS grp, SUM(requests), SUM(failed), SUM(prompt_tokens),"
        " SUM(completion_tokens), SUM(cost_usd), SUM(latency_ms_sum) / SUM(requests),"
        " SUM(energy_wh) FROM usage_daily WHERE day >= ? GROUP BY grp ORDER BY grp"
    )
    try:
        with connection:
            rows: Sequence[Any] = connection.execute(query, (since_day,)).fetchall()
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot read the usage ledger {path}: {exc}") from None
    finally:
        connection.close()
    return [
        UsageLine(
            group=str(row[0]),
            requests=int(row[1]),
            failed=int(row[2] or 0),
            prompt_tokens=int(row[3] or 0),
            completion_tokens=int(row[4] or 0),
            cost_usd=None if row[5] is None else round(float(row[5]), 6),
            avg_latency_ms=None if row[6] is None else round(float(row[6]), 3),
            energy_wh=None if row[7] is None else round(float(row[7]), 6),
        )
        for row in rows
    ]
