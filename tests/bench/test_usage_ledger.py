"""The ledger benchmark's builder and timer, on a ledger of a few hundred rows."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from bench.usage_ledger import build_ledger, main

from fkllmproxy.observability.usage import summarize, summarize_days


def test_the_built_ledger_is_what_the_daemon_would_have_written(tmp_path: Path) -> None:
    """Rows over the days asked for, rollups that agree with them, budgets charged."""
    path = tmp_path / "usage.sqlite3"
    build_ledger(path, rows=600, days=3, now=time.time())
    with sqlite3.connect(path) as db:
        days = db.execute("SELECT COUNT(DISTINCT date(ts, 'unixepoch')) FROM usage").fetchone()
        charged = db.execute("SELECT SUM(requests) FROM usage_budget_daily").fetchone()
    assert days[0] in (3, 4)  # three days back from now: four dates unless now is midnight
    assert charged[0] == 600
    assert sum(line.requests for line in summarize(path, by="model")) == 600
    for by in ("key", "model", "provider", "day"):
        assert summarize_days(path, by=by) == summarize(path, by=by), by


def test_a_tiny_run_prints_every_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "usage.sqlite3"
    assert main(["--rows", "300", "--days", "2", "--repeat", "1", "--path", str(path)]) == 0
    out = capsys.readouterr().out
    assert "300 rows over 2 days" in out
    for name in ("summarize_30d_by_key", "console_usage_30d_by_day", "command_30d_json"):
        assert name in out
