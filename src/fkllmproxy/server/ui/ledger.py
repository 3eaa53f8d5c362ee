"""What the console reads from the usage ledger: spend per key, cost today, usage tables.

Read-only SQLite queries on the daily rollups of the file the daemon writes
(``observability.usage``: a row per UTC day, key, model and provider), so a page costs
the same on a ledger of months as on one of minutes; callers run them in a thread so a
slow disk never blocks the event loop. The ledger is off
by default (``[usage] enabled``); every function here answers "nothing" when it is off
or has no file yet, and the pages say so.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fkllmproxy.observability.usage import LedgerError, UsageLine, summarize_days

__all__ = ["KeyActivity", "cost_since", "key_activity", "start_of_day", "usage_csv", "usage_lines"]


@dataclass(frozen=True, slots=True)
class KeyActivity:
    requests: int
    cost_usd: float | None
    last_used: float | None


def start_of_day(now: float | None = None) -> float:
    """Midnight UTC of the day ``now`` falls in."""
    moment = time.time() if now is None else now
    return moment - moment % 86_400


def _read(path: Path | None, query: str, args: Sequence[Any]) -> list[Any]:
    if path is None or not path.exists():
        return []
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return []
    try:
        return list(connection.execute(query, args).fetchall())
    except sqlite3.Error:
        return []
    finally:
        connection.close()


def day_of(moment: float) -> str:
    """The UTC date of ``moment`` as the rollups spell it (``YYYY-MM-DD``)."""
    return time.strftime("%Y-%m-%d", time.gmtime(moment))


def cost_since(path: Path | None, since: float) -> tuple[float | None, int]:
    """Estimated cost and tokens of the requests on the UTC days from ``since``'s on."""
    rows = _read(
        path,
        "SELECT SUM(cost_usd), SUM(prompt_tokens + completion_tokens) FROM usage_daily"
        " WHERE day >= ?",
        (day_of(since),),
    )
    if not rows:
        return None, 0
    cost, tokens = rows[0]
    return (None if cost is None else round(float(cost), 6)), int(tokens or 0)


def key_activity(path: Path | None) -> dict[str, KeyActivity]:
    """Per key name: requests, estimated spend and the last time it was used (all time)."""
    rows = _read(
        path,
        "SELECT key_name, SUM(requests), SUM(cost_usd), MAX(last_ts) FROM usage_daily"
        " WHERE key_name != '-' GROUP BY key_name",
        (),
    )
    return {
        str(name): KeyActivity(
            requests=int(count),
            cost_usd=None if cost is None else round(float(cost), 6),
            last_used=last,
        )
        for name, count, cost, last in rows
    }


def usage_lines(path: Path | None, by: str, since: float) -> list[UsageLine]:
    """``fkllm usage`` totals per group over the UTC days from ``since``'s on (0: all);
    empty when there is no ledger (yet)."""
    if path is None:
        return []
    try:
        return summarize_days(path, by=by, since_day=day_of(since) if since else "")
    except LedgerError:
        return []


CSV_COLUMNS = (
    "group",
    "requests",
    "failed",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "avg_latency_ms",
    "energy_wh_estimate",
)


def usage_csv(lines: list[UsageLine], by: str) -> bytes:
    """The usage table as CSV, its first column named after the grouping."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow((by, *CSV_COLUMNS[1:]))
    for line in lines:
        writer.writerow(
            (
                _csv_safe(line.group),
                line.requests,
                line.failed,
                line.prompt_tokens,
                line.completion_tokens,
                "" if line.cost_usd is None else f"{line.cost_usd:.6f}",
                "" if line.avg_latency_ms is None else line.avg_latency_ms,
                "" if line.energy_wh is None else f"{line.energy_wh:.6f}",
            )
        )
    return out.getvalue().encode()


def _csv_safe(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (a model name is client input)."""
    if text != "-" and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text
