"""``python -m bench.usage_ledger``: ``fkllm usage --since 30d`` over a million ledger rows.

Builds a usage ledger the way the daemon does — the file opened by ``UsageLedger``
(schema, WAL, ``auto_vacuum``), then the rows appended with the writer's own
``write_rows`` (raw rows plus the daily and budget rollups, one transaction per
10,000 rows) — of ``--rows`` requests spread evenly over ``--days`` days up to now,
over 50 keys, 8 models and 3 providers. Then it times, each the median of
``--repeat`` runs:

* ``fkllm usage --since 30d`` in process (``summarize``, what the command calls), for
  each ``--by``: the rollups of the whole days plus the raw rows of the day it cuts;
* the same totals by a scan of the raw rows, which is what ``fkllm usage`` did before
  it read the rollups (for comparison);
* the console's Usage page query (``server/ui/ledger.usage_lines``, rollups only)
  and its Keys page query (``key_activity``);
* the command itself, ``python -m fkllmproxy usage --db FILE --since 30d --json``, as a
  process (Python's start-up included), next to ``fkllm usage --help`` (start-up alone).

Last, ``retention_days = --prune-days`` (30) is applied as the writer applies it
(batches of 5,000 rows, then ``incremental_vacuum`` in steps): the longest pause
between two of the writer's flushes, the totals, and the file's size before and after.

The figures go to docs/performance.md by hand; nothing here is part of ``make test``.
"""

from __future__ import annotations

import argparse
import functools
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fkllmproxy.cli.usage import parse_since
from fkllmproxy.config.schema import PriceConfig
from fkllmproxy.observability.retention import cutoff, prune, reclaim
from fkllmproxy.observability.usage import (
    GROUPINGS,
    PriceTable,
    Row,
    UsageLedger,
    summarize,
    write_rows,
)
from fkllmproxy.server.ui.ledger import key_activity, usage_lines

__all__ = ["build_ledger", "main", "measure"]

DAY = 86_400.0
KEYS = [f"team-{i:02d}" for i in range(50)]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "gemini-pro",
          "gemini-flash", "llama-70b", "mistral-large"]  # fmt: skip
PROVIDERS = ["openai", "anthropic", "vertex"]
BATCH = 10_000
PRICES = PriceTable(
    [
        PriceConfig(model=m, input_per_mtok=1.0 + i, output_per_mtok=4.0 + i)
        for i, m in enumerate(MODELS)
    ]
)
_RAW_SCAN = (
    "SELECT {column} AS grp, COUNT(*), SUM(status >= 400), SUM(prompt_tokens),"
    " SUM(completion_tokens), SUM(cost_usd), AVG(latency_ms), SUM(energy_wh)"
    " FROM usage WHERE ts >= ? GROUP BY grp ORDER BY grp"
)


def _rows(first: int, count: int, total: int, days: float, now: float) -> list[Row]:
    """Rows ``first`` to ``first + count`` of ``total`` spread evenly over ``days`` to ``now``."""
    rng = random.Random(first)
    start, step = now - days * DAY, days * DAY / total
    rows: list[Row] = []
    for i in range(first, first + count):
        key, model = KEYS[rng.randrange(len(KEYS))], MODELS[rng.randrange(len(MODELS))]
        provider = PROVIDERS[rng.randrange(len(PROVIDERS))]
        prompt, completion = rng.randrange(50, 4000), rng.randrange(10, 1000)
        status = 200 if rng.random() > 0.02 else 502
        cost = PRICES.cost(provider, model, model, prompt, completion)
        rows.append(
            (start + i * step, f"req-{i}", key, model, provider, model, prompt, completion,
             rng.uniform(200.0, 3000.0), status, cost, 0, 0,
             (prompt * 0.05 + completion * 0.5) / 1000, key)
        )  # fmt: skip
    return rows


def build_ledger(path: Path, rows: int, days: float, now: float) -> float:
    """Write ``rows`` requests over ``days`` days up to ``now`` to a new ledger at
    ``path``; the seconds it took."""
    began = time.perf_counter()
    UsageLedger(path, flush_interval=0.01, prices=PRICES).close()  # the daemon's schema
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous=FULL")  # as the writer commits
    try:
        for first in range(0, rows, BATCH):
            write_rows(connection, _rows(first, min(BATCH, rows - first), rows, days, now))
    finally:
        connection.close()
    return time.perf_counter() - began


def _median_ms(action: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def _raw_scan(path: Path, by: str, since: float) -> list[Any]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return connection.execute(_RAW_SCAN.format(column=GROUPINGS[by]), (since,)).fetchall()
    finally:
        connection.close()


def measure(path: Path, repeat: int, now: float) -> dict[str, float]:
    """Milliseconds (medians) of each query over the ledger at ``path``."""
    since = parse_since("30d", now=now)
    figures: dict[str, float] = {}
    for by in GROUPINGS:
        figures[f"summarize_30d_by_{by}"] = _median_ms(
            functools.partial(summarize, path, by=by, since=since), repeat
        )
        figures[f"raw_scan_30d_by_{by}"] = _median_ms(
            functools.partial(_raw_scan, path, by, since), repeat
        )
        figures[f"console_usage_30d_by_{by}"] = _median_ms(
            functools.partial(usage_lines, path, by, since), repeat
        )
    figures["console_keys"] = _median_ms(lambda: key_activity(path), repeat)
    command = [sys.executable, "-m", "fkllmproxy", "usage", "--db", str(path), "--since", "30d"]
    figures["command_help"] = _median_ms(  # Python's and the CLI's start-up alone
        lambda: subprocess.run([*command[:4], "--help"], check=True, capture_output=True), repeat
    )
    figures["command_30d_json"] = _median_ms(
        lambda: subprocess.run([*command, "--json"], check=True, capture_output=True), repeat
    )
    return figures


def measure_prune(path: Path, retention_days: int, now: float) -> dict[str, float]:
    """Apply ``retention_days`` the way the writer does (batches, then reclaim): the
    longest gap between two of the writer's flushes, the totals, the file before/after."""
    connection = sqlite3.connect(path)
    gaps: list[float] = []
    mark = [time.perf_counter()]

    def between() -> None:  # where the writer would flush its queue
        moment = time.perf_counter()
        gaps.append(moment - mark[0])
        mark[0] = moment

    before = path.stat().st_size
    try:
        began = time.perf_counter()
        deleted = prune(connection, cutoff(now, retention_days), between, lambda: False)
        pruned = time.perf_counter()
        mark[0] = pruned
        reclaim(connection, between, lambda: False)
        reclaimed = time.perf_counter()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return {
        "prune_rows_deleted": float(deleted),
        "prune_total_ms": (pruned - began) * 1000,
        "reclaim_total_ms": (reclaimed - pruned) * 1000,
        "longest_writer_pause_ms": max(gaps, default=0.0) * 1000,
        "file_mb_before": before / 1e6,
        "file_mb_after": path.stat().st_size / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--path", type=Path, help="Keep the ledger here [a temporary file]")
    parser.add_argument(
        "--prune-days", type=int, default=30, help="Then prune to this retention (0: do not)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fkllm-ledger-bench-") as scratch:
        path = args.path or Path(scratch) / "usage.sqlite3"
        path.unlink(missing_ok=True)
        now = time.time()
        built = build_ledger(path, args.rows, args.days, now)
        connection = sqlite3.connect(path)
        raw = connection.execute("SELECT COUNT(*) FROM usage").fetchone()[0]
        daily = connection.execute("SELECT COUNT(*) FROM usage_daily").fetchone()[0]
        connection.close()
        size = path.stat().st_size / 1e6
        print(f"ledger: {raw:,} rows over {args.days:g} days, {daily:,} daily rollup rows,")
        print(f"        {size:,.0f} MB, built in {built:.1f} s ({path})")
        for name, ms in measure(path, args.repeat, now).items():
            print(f"{name:32} {ms:10.1f} ms")
        if args.prune_days:
            print(f"retention_days = {args.prune_days}:")
            for name, value in measure_prune(path, args.prune_days, now).items():
                print(f"{name:32} {value:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
