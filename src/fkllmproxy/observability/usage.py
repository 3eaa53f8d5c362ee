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
That bounds what an outage holds in memory: about 440 bytes a row, 88 MiB of RSS for
200,000 rows (measured), per worker.
With several workers each one writes to the same file; SQLite's WAL mode and a busy
timeout let them take turns.

Each flush also adds its rows to ``usage_daily``, one row per UTC day, key, model and
provider, in the same transaction: the console's pages read those rollups, so a page
view costs a few hundred rows however many months of requests the ledger holds. A
ledger written before the rollups existed is rolled up once, when the daemon opens it.
``usage_budget_daily`` sums the cost per UTC day and budget charged (``budget_name``:
the key's name, or ``group:<claim_value>`` for an OIDC group's budget), which is where
budgets start from after a restart.

Raw rows older than ``usage.retention_days`` are deleted by the same writer thread,
in batches between flushes, and the space is reclaimed (``observability/retention.py``);
the rollups stay. ``summarize`` reads the rollups for whole days and raw rows only for
the part of a day a ``since`` cuts, so ``fkllm usage`` costs the same over months.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fkllmproxy.config.schema import Config, PriceConfig
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.observability.metrics import Metrics
from fkllmproxy.observability.retention import (
    PRUNE_EVERY_SECS,
    cutoff,
    prepare,
    prune,
    raw_since,
    reclaim,
)

__all__ = [
    "GROUPINGS",
    "LedgerError",
    "PriceTable",
    "Row",
    "UsageLedger",
    "backup_directory",
    "ledger_path",
    "open_ledger",
    "spend_by_day",
    "summarize",
    "summarize_days",
    "write_rows",
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
    "budget_name": "TEXT",  # the budget the request was charged to; NULL: none
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
BUDGET_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage_budget_daily (
    day TEXT NOT NULL,                -- UTC date, YYYY-MM-DD
    budget_name TEXT NOT NULL,        -- a key's name, or group:<claim_value>
    requests INTEGER NOT NULL,
    cost_usd REAL NOT NULL,           -- priced requests only
    PRIMARY KEY (day, budget_name)
) WITHOUT ROWID
"""
_UPSERT_BUDGET = (
    "INSERT INTO usage_budget_daily VALUES (?, ?, ?, ?) ON CONFLICT (day, budget_name)"
    " DO UPDATE SET requests = requests + excluded.requests,"
    " cost_usd = cost_usd + excluded.cost_usd"
)
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
    " cache_read_tokens, cache_write_tokens, energy_wh, budget_name)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
MAX_PENDING = 200_000  # beyond this the writer is hopelessly behind: drop the oldest
_RETRY_SECS = 1.0  # after a failed write, how soon the next try comes
_BUSY_TIMEOUT_MS = 10_000
_PRUNE_CHECK_SECS = 60.0  # an idle writer looks this often whether a prune is due

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
    str | None,
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
        prepare(connection, path)  # auto_vacuum = INCREMENTAL, before the first table
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
        connection.execute(BUDGET_SCHEMA)
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


def _by_budget(batch: list[Row]) -> list[tuple[str, str, int, float]]:
    """A batch's priced, budgeted rows summed per UTC day and budget (for the upsert)."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for row in batch:
        budget, cost = row[14], row[10]
        if budget is None or cost is None:
            continue
        day = time.strftime("%Y-%m-%d", time.gmtime(row[0]))
        group = groups.setdefault((day, budget), [0, 0.0])
        group[0] += 1
        group[1] += cost
    return [(day, budget, count, cost) for (day, budget), (count, cost) in groups.items()]


def _daily(batch: list[Row]) -> list[tuple[Any, ...]]:
    """A batch of rows summed per UTC day, key, model and provider (for the upsert)."""
    groups: dict[tuple[str, str, str, str], list[Any]] = {}
    for row in batch:
        ts, _, key, model, provider, _, prompt, completion, latency, status, cost = row[:11]
        energy = row[13]
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


def write_rows(connection: sqlite3.Connection, batch: list[Row]) -> None:
    """Append ``batch`` and add it to the daily rollups, in one transaction (the
    writer's one write; ``bench/usage_ledger.py`` builds its ledgers with it too)."""
    with connection:
        connection.executemany(_INSERT, batch)
        connection.executemany(_UPSERT_DAILY, _daily(batch))
        connection.executemany(_UPSERT_BUDGET, _by_budget(batch))


class UsageLedger:
    """Queue of finished requests and the thread that writes them to SQLite in batches."""

    def __init__(
        self,
        path: Path,
        flush_interval: float,
        prices: PriceTable,
        *,
        retention_days: int = 0,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.path = path
        self._metrics = metrics  # where dropped rows are counted (none: not counted)
        self.prices = prices
        self._interval = flush_interval
        self._retention_days = retention_days
        self._clock = clock
        self._next_prune = 0.0  # the first round prunes
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
        budget_name: str | None = None,
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
                self._clock(),
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
                budget_name,
            )
        )
        if len(pending) == 1:
            self._wake.set()
        elif len(pending) > MAX_PENDING:
            pending.popleft()
            self._dropped += 1

    def _run(self) -> None:
        stop = self._stop
        self._maybe_prune()  # at start, then every PRUNE_EVERY_SECS
        while not stop.is_set():
            # Rows queued while this thread writes are left for the next round (the
            # queue was not empty, so nothing set the event): after a failure, or when
            # rows remain, come back without waiting to be woken.
            if self._failing or self._pending:
                idle: float | None = _RETRY_SECS
            else:
                idle = _PRUNE_CHECK_SECS if self._retention_days else None
            if self._wake.wait(idle):
                self._wake.clear()
                stop.wait(self._interval)  # let a burst share one commit; close cuts it short
            self._flush()
            self._maybe_prune()
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
            if self._metrics is not None:
                self._metrics.usage_rows_dropped(dropped)
        try:
            write_rows(self._connection, batch)
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

    def _maybe_prune(self) -> None:
        """Delete the rows retention lets go and reclaim their space, when it is time."""
        now = self._clock()
        if not self._retention_days or now < self._next_prune or self._stop.is_set():
            return
        self._next_prune = now + PRUNE_EVERY_SECS
        before = cutoff(now, self._retention_days)
        stopping = self._stop.is_set
        try:
            deleted = prune(self._connection, before, self._flush, stopping)
            pages = reclaim(self._connection, self._flush, stopping) if deleted else 0
        except sqlite3.Error as exc:  # a busy or full disk: the next prune, an hour on, retries
            _log.warning(
                "usage ledger prune failed", extra={"path": str(self.path), "error": str(exc)}
            )
            return
        if deleted:
            _log.info(
                "usage ledger pruned",
                extra={"path": str(self.path), "rows": deleted, "pages_freed": pages},
            )

    def close(self, timeout: float = 30.0) -> None:
        """Write everything still queued, then stop the writer (idempotent)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


def open_ledger(config: Config, metrics: Metrics | None = None) -> UsageLedger | None:
    """The ledger ``config`` asks for (``None`` when ``usage.enabled`` is false), counting
    the rows it has to drop in ``metrics``."""
    if not config.usage.enabled:
        return None
    return UsageLedger(
        ledger_path(config),
        config.usage.flush_interval_secs,
        PriceTable(config.pricing),
        retention_days=config.usage.retention_days,
        metrics=metrics,
    )


GROUPINGS: dict[str, str] = {
    "key": "COALESCE(key_name, '-')",
    "model": "COALESCE(model, '-')",
    "provider": "COALESCE(provider, '-')",
    "day": "date(ts, 'unixepoch')",
}
DAILY_GROUPINGS: dict[str, str] = {
    "key": "key_name",
    "model": "model",
    "provider": "provider",
    "day": "day",
}
Grouping = Literal["key", "model", "provider", "day"]
_DAY = 86_400


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


def _day(moment: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(moment))


def _open_read_only(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise LedgerError(f"no usage ledger at {path}")
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open the usage ledger {path}: {exc}") from None


# Each query yields: group, requests, failed, prompt, completion, cost, latency sum, Wh.
_RAW_SUMS = (
    "SELECT {column} AS grp, COUNT(*), SUM(status >= 400), SUM(prompt_tokens),"
    " SUM(completion_tokens), SUM(cost_usd), SUM(latency_ms), SUM(energy_wh)"
    " FROM usage WHERE ts >= ? AND ts < ? GROUP BY grp"
)
_DAILY_SUMS = (
    "SELECT {column} AS grp, SUM(requests), SUM(failed), SUM(prompt_tokens),"
    " SUM(completion_tokens), SUM(cost_usd), SUM(latency_ms_sum), SUM(energy_wh)"
    " FROM usage_daily WHERE day >= ? GROUP BY grp"
)


def _has_rollups(connection: sqlite3.Connection) -> bool:
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'usage_daily'"
    ).fetchone()
    return found is not None


def _sums(connection: sqlite3.Connection, by: str, since: float | None) -> list[Sequence[Any]]:
    """The per-group sums since ``since``: rollups for whole UTC days, raw rows for the
    part of the first day after ``since`` (when that day's raw rows are still there)."""
    raw = _RAW_SUMS.format(column=GROUPINGS[by])
    if not _has_rollups(connection):  # a ledger no daemon of this version opened yet
        return list(connection.execute(raw, (since or 0.0, float("inf"))))
    daily = _DAILY_SUMS.format(column=DAILY_GROUPINGS[by])
    if not since:
        return list(connection.execute(daily, ("",)))
    midnight = since - since % _DAY
    if since == midnight or since < raw_since(connection):
        # A whole day, or one whose raw rows retention removed: its rollup, whole.
        return list(connection.execute(daily, (_day(since),)))
    found = list(connection.execute(daily, (_day(midnight + _DAY),)))
    found.extend(connection.execute(raw, (since, midnight + _DAY)))
    return found


def _lines(sums: Iterable[Sequence[Any]]) -> list[UsageLine]:
    """Sums of the same group added up (rollups and raw rows), as lines sorted by group."""
    merged: dict[str, list[Any]] = {}
    for grp, *values in sums:
        into = merged.setdefault(str(grp), [0, 0, 0, 0, None, 0.0, None])
        for index, value in enumerate(values):
            if value is None:
                continue
            into[index] = value if into[index] is None else into[index] + value
    lines = []
    for grp in sorted(merged):
        requests, failed, prompt, completion, cost, latency, energy = merged[grp]
        lines.append(
            UsageLine(
                group=grp,
                requests=int(requests),
                failed=int(failed),
                prompt_tokens=int(prompt),
                completion_tokens=int(completion),
                cost_usd=None if cost is None else round(float(cost), 6),
                avg_latency_ms=round(float(latency) / requests, 3) if requests else None,
                energy_wh=None if energy is None else round(float(energy), 6),
            )
        )
    return lines


def summarize(path: Path, *, by: str = "key", since: float | None = None) -> list[UsageLine]:
    """Totals per key, model, provider or day (UTC) of the requests since ``since``.

    Whole days come from the daily rollups; the part of a day after ``since`` from the
    raw rows, unless retention removed them (``since`` older than ``retention_days``):
    then that first day is counted whole.
    """
    if by not in GROUPINGS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUPINGS)}")
    connection = _open_read_only(path)
    try:
        with connection:
            sums = _sums(connection, by, since)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot read the usage ledger {path}: {exc}") from None
    finally:
        connection.close()
    return _lines(sums)


def summarize_days(path: Path, *, by: str = "key", since_day: str = "") -> list[UsageLine]:
    """``summarize`` from the daily rollups only: totals per group of the UTC days from
    ``since_day`` (``YYYY-MM-DD``; empty: all), reading a row per day and group."""
    if by not in DAILY_GROUPINGS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(DAILY_GROUPINGS)}")
    connection = _open_read_only(path)
    query = _DAILY_SUMS.format(column=DAILY_GROUPINGS[by])
    try:
        with connection:
            sums = list(connection.execute(query, (since_day,)))
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot read the usage ledger {path}: {exc}") from None
    finally:
        connection.close()
    return _lines(sums)


def spend_by_day(
    path: Path, since_day: str, *, by_budget: bool = False
) -> dict[tuple[str, str], float]:
    """Cost per (key name, UTC day) from the daily rollups since ``since_day`` — or, with
    ``by_budget``, per (budget charged, UTC day): what budgets start from when the
    daemon starts (one query, before any request) and what ``fkllm keys list`` shows."""
    if not path.exists():
        return {}
    if by_budget:
        query = (
            "SELECT budget_name, day, SUM(cost_usd) FROM usage_budget_daily"
            " WHERE day >= ? GROUP BY budget_name, day"
        )
    else:
        query = (
            "SELECT key_name, day, SUM(cost_usd) FROM usage_daily"
            " WHERE day >= ? AND cost_usd IS NOT NULL GROUP BY key_name, day"
        )
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = connection.execute(query, (since_day,)).fetchall()
        except sqlite3.OperationalError as exc:
            if by_budget and "no such table" in str(exc):
                return {}  # a ledger from before budgets were recorded: none charged
            raise
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot read the usage ledger {path}: {exc}") from None
    return {(str(row[0]), str(row[1])): float(row[2]) for row in rows}
