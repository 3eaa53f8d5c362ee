"""The usage ledger: queued off the request path, written in batches, flushed on close."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from fkllmproxy.config.schema import PriceConfig
from fkllmproxy.observability import retention, usage
from fkllmproxy.observability.metrics import process_metrics
from fkllmproxy.observability.usage import (
    LedgerError,
    PriceTable,
    UsageLedger,
    summarize,
    summarize_days,
)
from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.conftest import MOCK_CONFIG, fkllm, prometheus_samples, wait_until


def record(ledger: UsageLedger, **fields: object) -> None:
    base: dict[str, object] = {
        "request_id": "r",
        "key_name": "team-a",
        "model": "gpt",
        "provider": "primary",
        "upstream_model": "gpt-4o-mini",
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "latency_ms": 12.0,
        "status": 200,
    }
    base.update(fields)
    ledger.record(**base)  # type: ignore[arg-type]


def rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT key_name, model, provider, prompt_tokens, completion_tokens, status, cost_usd"
            " FROM usage ORDER BY id"
        ).fetchall()


class TestLedger:
    def test_close_writes_everything_queued(self, tmp_path: Path) -> None:
        """A long flush interval: nothing is lost because close flushes."""
        path = tmp_path / "usage.sqlite3"
        ledger = UsageLedger(path, flush_interval=3600, prices=PriceTable([]))
        for i in range(250):
            record(ledger, request_id=f"r{i}")
        ledger.close()
        assert len(rows(path)) == 250

    def test_cost_from_the_price_table(self, tmp_path: Path) -> None:
        path = tmp_path / "usage.sqlite3"
        prices = PriceTable(
            [PriceConfig(model="gpt-4o-mini", input_per_mtok=0.15, output_per_mtok=0.6)]
        )
        ledger = UsageLedger(path, flush_interval=3600, prices=prices)
        record(ledger)
        record(ledger, upstream_model="something-else", model="unpriced")
        ledger.close()
        (_, _, _, _, _, _, cost), (*_, unpriced) = rows(path)
        assert cost == pytest.approx((1000 * 0.15 + 500 * 0.6) / 1e6)
        assert unpriced is None

    def test_unwritable_path_is_a_clear_error(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(LedgerError, match="cannot open the usage ledger"):
            UsageLedger(blocker / "usage.sqlite3", 1.0, PriceTable([]))


class TestPriceTable:
    def test_most_specific_price_wins(self) -> None:
        table = PriceTable(
            [
                PriceConfig(model="m", input_per_mtok=1.0),
                PriceConfig(model="m", provider="cheap", input_per_mtok=0.5),
                PriceConfig(model="client-name", input_per_mtok=3.0),
            ]
        )
        assert table.cost("cheap", "m", None, 1_000_000, 0) == 0.5
        assert table.cost("other", "m", None, 1_000_000, 0) == 1.0
        assert table.cost("other", "x", "client-name", 1_000_000, 0) == 3.0
        assert table.cost("other", "x", "y", 1_000_000, 0) is None


class TestSummarize:
    def test_groups(self, tmp_path: Path) -> None:
        path = tmp_path / "usage.sqlite3"
        ledger = UsageLedger(path, flush_interval=3600, prices=PriceTable([]))
        record(ledger, key_name="a", model="m1")
        record(ledger, key_name="a", model="m2", status=502, prompt_tokens=0, completion_tokens=0)
        record(ledger, key_name="b", model="m1")
        ledger.close()
        by_key = {line.group: line for line in summarize(path, by="key")}
        assert by_key["a"].requests == 2 and by_key["a"].failed == 1
        assert by_key["a"].prompt_tokens == 1000
        assert by_key["b"].requests == 1
        by_model = {line.group: line.requests for line in summarize(path, by="model")}
        assert by_model == {"m1": 2, "m2": 1}
        assert len(summarize(path, by="day")) == 1
        assert summarize(path, by="key", since=4102444800.0) == []  # year 2100

    def test_missing_ledger(self, tmp_path: Path) -> None:
        with pytest.raises(LedgerError, match="no usage ledger"):
            summarize(tmp_path / "absent.sqlite3")


class TestThroughTheDaemon:
    def test_sigterm_loses_no_row(self, start_daemon: Any, tmp_path: Path) -> None:
        """Rows still queued at SIGTERM (hour-long flush interval) reach the file."""
        path = tmp_path / "usage.sqlite3"
        config = (
            MOCK_CONFIG
            + f'\n[usage]\nenabled = true\npath = "{path}"\nflush_interval_secs = 3600\n'
            + '\n[[pricing]]\nmodel = "mock-1"\ninput_per_mtok = 2.0\noutput_per_mtok = 4.0\n'
        )
        daemon = start_daemon(config)

        def one(i: int) -> int:
            return httpx.post(
                daemon.url + "/v1/chat/completions",
                headers=daemon.headers(),
                json={"model": "mock", "messages": [{"role": "user", "content": f"n {i}"}]},
            ).status_code

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(one, range(60)))
        assert statuses == [200] * 60
        refused = httpx.post(
            daemon.url + "/v1/chat/completions",
            headers=daemon.headers(),
            json={"model": "absent", "messages": [{"role": "user", "content": "x"}]},
        )
        assert refused.status_code == 404
        assert daemon.stop() == 0  # SIGTERM
        found = rows(path)
        assert len(found) == 61
        ok = [row for row in found if row[5] == 200]
        assert len(ok) == 60
        assert all(row[:3] == ("master", "mock", "mock") for row in ok)
        assert all(row[6] == pytest.approx((row[3] * 2.0 + row[4] * 4.0) / 1e6) for row in ok)
        assert [(*row[1:3], row[5]) for row in found if row[5] != 200] == [("absent", None, 404)]


class TestCachePricing:
    def test_cache_reads_and_writes_at_their_own_prices(self) -> None:
        """Cache tokens (part of the prompt count) are priced at their rates, when given."""
        table = PriceTable(
            [
                PriceConfig(
                    model="claude",
                    input_per_mtok=3.0,
                    output_per_mtok=15.0,
                    cache_read_per_million=0.3,
                    cache_write_per_million=3.75,
                )
            ]
        )
        # 1M prompt tokens of which 600k read from and 200k written to the cache.
        cost = table.cost(None, "claude", None, 1_000_000, 0, 600_000, 200_000)
        assert cost == pytest.approx(
            200_000 * 3.0 / 1e6 + 600_000 * 0.3 / 1e6 + 200_000 * 3.75 / 1e6
        )

    def test_without_cache_prices_cache_tokens_cost_the_input_price(self) -> None:
        """No cache prices: the old estimate, every prompt token at the input price."""
        table = PriceTable([PriceConfig(model="m", input_per_mtok=2.0)])
        assert table.cost(None, "m", None, 1_000_000, 0, 500_000, 100_000) == pytest.approx(2.0)

    def test_a_ledger_from_before_gets_the_cache_columns(self, tmp_path: Path) -> None:
        """A ledger file written before the cache columns existed is upgraded on open."""
        path = tmp_path / "old.sqlite3"
        with sqlite3.connect(path) as db:
            db.executescript(
                "CREATE TABLE usage (id INTEGER PRIMARY KEY, ts REAL NOT NULL,"
                " request_id TEXT NOT NULL, key_name TEXT, model TEXT, provider TEXT,"
                " upstream_model TEXT, prompt_tokens INTEGER NOT NULL,"
                " completion_tokens INTEGER NOT NULL, latency_ms REAL NOT NULL,"
                " status INTEGER NOT NULL, cost_usd REAL);"
            )
        ledger = UsageLedger(path, flush_interval=3600, prices=PriceTable([]))
        record(ledger, cache_read_tokens=7, cache_write_tokens=3)
        ledger.close()
        with sqlite3.connect(path) as db:
            found = db.execute("SELECT cache_read_tokens, cache_write_tokens FROM usage").fetchall()
        assert found == [(7, 3)]


class TestDailyRollups:
    def test_rollups_agree_with_the_rows(self, tmp_path: Path) -> None:
        """Every grouping read from usage_daily equals the same grouping of the raw rows."""
        path = tmp_path / "usage.sqlite3"
        prices = PriceTable([PriceConfig(model="gpt-4o-mini", input_per_mtok=1.0)])
        ledger = UsageLedger(path, flush_interval=0.01, prices=prices)
        for i in range(30):
            record(
                ledger,
                request_id=f"r{i}",
                key_name=None if i % 5 == 0 else f"team-{i % 3}",
                model="gpt" if i % 2 else "other",
                upstream_model="gpt-4o-mini" if i % 2 else "unpriced",
                status=502 if i % 7 == 0 else 200,
                latency_ms=float(i),
            )
        ledger.close()
        for by in ("key", "model", "provider", "day"):
            assert summarize_days(path, by=by) == summarize(path, by=by), by

    def test_an_older_ledger_is_rolled_up_when_opened(self, tmp_path: Path) -> None:
        """A file written before the rollups existed gets them, from its rows, once."""
        path = tmp_path / "usage.sqlite3"
        ledger = UsageLedger(path, flush_interval=0.01, prices=PriceTable([]))
        for i in range(5):
            record(ledger, request_id=f"r{i}")
        ledger.close()
        with sqlite3.connect(path) as db:
            db.execute("DROP TABLE usage_daily")
        UsageLedger(path, flush_interval=0.01, prices=PriceTable([])).close()
        UsageLedger(path, flush_interval=0.01, prices=PriceTable([])).close()  # not twice
        (line,) = summarize_days(path, by="key")
        assert (line.group, line.requests, line.prompt_tokens) == ("team-a", 5, 5000)

    def test_only_the_days_asked_for(self, tmp_path: Path) -> None:
        """``since_day`` keeps the UTC days from that date on."""
        path = tmp_path / "usage.sqlite3"
        UsageLedger(path, flush_interval=0.01, prices=PriceTable([])).close()
        with sqlite3.connect(path) as db:
            db.executemany(
                "INSERT INTO usage_daily VALUES (?, 'k', 'm', 'p', 1, 0, 1, 1, NULL, 5.0, 0, NULL)",
                [("2026-01-01",), ("2026-01-02",), ("2026-01-03",)],
            )
        lines = summarize_days(path, by="day", since_day="2026-01-02")
        assert [line.group for line in lines] == ["2026-01-02", "2026-01-03"]


def count_rows(path: Path) -> int:
    """Rows committed so far, read the way ``fkllm usage`` reads a live ledger."""
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT COUNT(*) FROM usage").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not created yet
        return 0
    finally:
        db.close()


class TestPromptWrites:
    def test_a_row_is_written_without_waiting_for_close(self, tmp_path: Path) -> None:
        """The first row queued wakes the writer: it is on disk while the ledger runs."""
        path = tmp_path / "usage.sqlite3"
        ledger = UsageLedger(path, flush_interval=0.01, prices=PriceTable([]))
        try:
            record(ledger)
            assert wait_until(lambda: count_rows(path) == 1, timeout=10)
            record(ledger, request_id="r2")
            record(ledger, request_id="r3")
            assert wait_until(lambda: count_rows(path) == 3, timeout=10)
        finally:
            ledger.close()

    def test_a_failing_write_keeps_its_rows_and_logs_once(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A write refused (the table gone read-only) is retried; the rows land after."""
        path = tmp_path / "usage.sqlite3"
        ledger = UsageLedger(path, flush_interval=0.01, prices=PriceTable([]))
        with sqlite3.connect(path) as db:  # make every insert fail until the trigger goes
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON usage BEGIN SELECT RAISE(ABORT, 'full'); END"
            )
        try:
            for i in range(3):
                record(ledger, request_id=f"r{i}")
            assert wait_until(lambda: "write failed" in caplog.text, timeout=10)
            with sqlite3.connect(path) as db:
                db.execute("DROP TRIGGER refuse")
            assert wait_until(lambda: count_rows(path) == 3, timeout=10)
        finally:
            ledger.close()
        assert caplog.text.count("write failed") == 1


class TestCrash:
    def test_sigkill_keeps_every_row_written_and_the_next_start_recovers(
        self, start_daemon: Any, tmp_path: Path
    ) -> None:
        """A real daemon, real traffic, a real SIGKILL: every row it wrote is there, the
        WAL is replayed, and a new daemon appends to the same file."""
        path = tmp_path / "usage.sqlite3"
        config = MOCK_CONFIG + f'\n[usage]\nenabled = true\npath = "{path}"\n'
        daemon = start_daemon(config)

        def one(i: int) -> int:
            return httpx.post(
                daemon.url + "/v1/chat/completions",
                headers=daemon.headers(),
                json={"model": "mock", "messages": [{"role": "user", "content": f"n {i}"}]},
            ).status_code

        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(one, range(300))) == [200] * 300
        # Written within flush_interval_secs of each answer: the bound is for a slow CI.
        assert wait_until(lambda: count_rows(path) == 300, timeout=10)
        daemon.signal(signal.SIGKILL)
        daemon.process.wait(10)
        assert count_rows(path) == 300

        again = start_daemon(config)
        assert one_more(again) == 200
        assert again.stop() == 0
        assert count_rows(path) == 301


def one_more(daemon: Any) -> int:
    return httpx.post(
        daemon.url + "/v1/chat/completions",
        headers=daemon.headers(),
        json={"model": "mock", "messages": [{"role": "user", "content": "again"}]},
    ).status_code


def dropped_total() -> float:
    """``fkllm_usage_rows_dropped_total`` as this process's metrics output shows it."""
    text = process_metrics().exposition().decode()
    return prometheus_samples(text).get(("fkllm_usage_rows_dropped_total", frozenset()), 0.0)


class TestOutage:
    def test_rows_past_the_queue_bound_are_dropped_and_counted(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Writes failing, the queue keeps the newest MAX_PENDING rows; the metric counts
        the rest."""
        monkeypatch.setattr(usage, "MAX_PENDING", 5)
        path = tmp_path / "usage.sqlite3"
        # An hour's flush interval: the writer, woken by the first row, waits until close,
        # so all twelve rows are queued before its one write (refused) and nothing races.
        # The daemon hands the ledger its metrics; so does this test.
        ledger = UsageLedger(
            path, flush_interval=3600, prices=PriceTable([]), metrics=process_metrics()
        )
        with sqlite3.connect(path) as db:
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON usage BEGIN SELECT RAISE(ABORT, 'full'); END"
            )
        before = dropped_total()
        try:
            for i in range(12):
                record(ledger, request_id=f"r{i}")
        finally:
            ledger.close()
        assert dropped_total() - before == 7
        assert count_rows(path) == 0  # nothing could be written


def _in_a_small_tmpfs(directory: Path) -> list[str]:
    """A ``RunningDaemon`` wrapper: the daemon gets a mount namespace of its own in which
    ``directory`` is a 1 MiB tmpfs (gone with the daemon), so the test can fill it."""
    mount = f'mount -t tmpfs -o size=1m fkllm-ledger "{directory}" && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", mount, "sh"]


def _fill(directory: Path) -> Path:
    """Write to ``directory`` until the disk is full; the file that filled it."""
    junk = directory / "fill"
    fd = os.open(junk, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return junk


def _ledger_requests(daemon: Any, path: Path) -> int:
    """The requests ``fkllm usage`` finds in ``path``, run in the daemon's mount namespace
    (SQLite resolves ``/proc/<pid>/root`` to the test's own root, so it cannot look in)."""
    command = ["nsenter", "--target", str(daemon.pid), "--mount", "--",
               sys.executable, "-m", "fkllmproxy", "usage", "--db", str(path), "--json"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return sum(group["requests"] for group in json.loads(done.stdout)["groups"])


class TestFullDisk:
    def test_requests_keep_answering_while_the_disk_is_full_and_rows_land_after(
        self, start_daemon: Any, tmp_path: Path
    ) -> None:
        """A real full disk under a real daemon: every request still gets 200, the failure
        is logged once, and when space returns every queued row is written."""
        directory = tmp_path / "ledger"
        directory.mkdir()
        wrapper = _in_a_small_tmpfs(directory)
        if subprocess.run([*wrapper, "true"], capture_output=True).returncode != 0:
            pytest.skip("needs unshare and mount (root, or CAP_SYS_ADMIN)")
        path = directory / "usage.sqlite3"
        config = MOCK_CONFIG + f'\n[usage]\nenabled = true\npath = "{path}"\n'
        daemon = start_daemon(config, wrapper=wrapper)
        statuses = [one_more(daemon) for _ in range(3)]
        assert wait_until(lambda: _ledger_requests(daemon, path) == 3, timeout=10)

        # The daemon's view of its tmpfs (in the test's namespace the directory is empty).
        junk = _fill(Path(f"/proc/{daemon.pid}/root") / directory.relative_to("/"))
        statuses += [one_more(daemon) for _ in range(20)]
        failed = "usage ledger write failed; rows stay queued and the write is retried"
        assert wait_until(lambda: failed in daemon.stdout_path.read_text(), timeout=10)
        assert _ledger_requests(daemon, path) == 3
        junk.unlink()
        assert wait_until(lambda: _ledger_requests(daemon, path) == 23, timeout=10)

        assert statuses == [200] * 23
        messages = [line.get("msg") for line in daemon.logs()]
        assert messages.count(failed) == 1
        assert "usage ledger writes again" in messages
        assert daemon.stop() == 0


DAY = 86_400.0
NOON = 1_767_268_800.0  # 2026-01-01 12:00 UTC


class Clock:
    """A clock the test moves (the ledger stamps rows and decides prunes by it)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def raw_days(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        found = db.execute(
            "SELECT date(ts, 'unixepoch'), COUNT(*) FROM usage GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return dict(found)


class TestRetention:
    def test_old_rows_go_their_rollups_stay(self, tmp_path: Path) -> None:
        """Rows older than retention_days are deleted by the writer; the day's rollup,
        and with it ``fkllm usage``, still counts them."""
        path = tmp_path / "usage.sqlite3"
        clock = Clock(NOON - 40 * DAY)
        ledger = UsageLedger(
            path, flush_interval=0.01, prices=PriceTable([]), retention_days=30, clock=clock
        )
        try:
            for i in range(4):
                record(ledger, request_id=f"old{i}")
            assert wait_until(lambda: count_rows(path) == 4, timeout=10)
            clock.now = NOON - 10 * DAY
            record(ledger, request_id="recent")
            clock.now = NOON  # the next round is an hour and more later: a prune is due
            record(ledger, request_id="today")
            assert wait_until(lambda: sum(raw_days(path).values()) == 2, timeout=10)
        finally:
            ledger.close()
        assert raw_days(path) == {"2025-12-22": 1, "2026-01-01": 1}
        by_day = {line.group: line.requests for line in summarize(path, by="day")}
        assert by_day == {"2025-11-22": 4, "2025-12-22": 1, "2026-01-01": 1}
        shown = fkllm("usage", "--db", str(path), "--by", "day", "--json")
        assert shown.returncode == 0, shown.stderr
        groups = {g["group"]: g["requests"] for g in json.loads(shown.stdout)["groups"]}
        assert groups == by_day
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # INCREMENTAL
            assert db.execute("PRAGMA freelist_count").fetchone() == (0,)  # space reclaimed

    def test_a_since_older_than_retention_counts_that_day_whole(self, tmp_path: Path) -> None:
        """Raw rows of a pruned day are gone: ``since`` within it gets the whole day."""
        path = tmp_path / "usage.sqlite3"
        clock = Clock(NOON - 40 * DAY)
        ledger = UsageLedger(
            path, flush_interval=0.01, prices=PriceTable([]), retention_days=30, clock=clock
        )
        try:
            record(ledger, request_id="morning")
            assert wait_until(lambda: count_rows(path) == 1, timeout=10)
            clock.now = NOON
            record(ledger, request_id="today")
            assert wait_until(lambda: count_rows(path) == 1 and "2026-01-01" in raw_days(path))
        finally:
            ledger.close()
        evening = NOON - 40 * DAY + 6 * 3600  # after the old row, the same day
        assert [line.requests for line in summarize(path, since=evening)] == [2]

    def test_zero_keeps_everything(self, tmp_path: Path) -> None:
        path = tmp_path / "usage.sqlite3"
        clock = Clock(NOON - 400 * DAY)
        ledger = UsageLedger(
            path, flush_interval=0.01, prices=PriceTable([]), retention_days=0, clock=clock
        )
        try:
            record(ledger, request_id="ancient")
            assert wait_until(lambda: count_rows(path) == 1, timeout=10)
            clock.now = NOON
            record(ledger, request_id="today")
            assert wait_until(lambda: count_rows(path) == 2, timeout=10)
        finally:
            ledger.close()
        assert len(raw_days(path)) == 2

    def test_a_big_prune_goes_in_batches_and_new_rows_keep_landing(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Batches of a few rows: every old row goes, every new one is written."""
        monkeypatch.setattr(retention, "PRUNE_BATCH", 3)
        path = tmp_path / "usage.sqlite3"
        clock = Clock(NOON - 100 * DAY)
        ledger = UsageLedger(
            path, flush_interval=0.01, prices=PriceTable([]), retention_days=7, clock=clock
        )
        try:
            for i in range(20):
                record(ledger, request_id=f"old{i}")
            assert wait_until(lambda: count_rows(path) == 20, timeout=10)
            clock.now = NOON
            for i in range(5):
                record(ledger, request_id=f"new{i}")
            assert wait_until(lambda: raw_days(path) == {"2026-01-01": 5}, timeout=10)
        finally:
            ledger.close()
        assert [line.requests for line in summarize(path, by="key")] == [25]

    def test_an_older_small_file_is_converted_to_incremental_vacuum(self, tmp_path: Path) -> None:
        path = tmp_path / "usage.sqlite3"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE unrelated (x)")
        assert_mode = "SELECT * FROM pragma_auto_vacuum"
        with sqlite3.connect(path) as db:
            assert db.execute(assert_mode).fetchone() == (0,)
        UsageLedger(path, flush_interval=0.01, prices=PriceTable([])).close()
        with sqlite3.connect(path) as db:
            assert db.execute(assert_mode).fetchone() == (2,)


class TestSummarizeOverDays:
    def test_a_since_inside_a_day_counts_only_the_rows_after_it(self, tmp_path: Path) -> None:
        """Rollups for whole days plus raw rows for the cut day equal the raw rows."""
        path = tmp_path / "usage.sqlite3"
        clock = Clock(NOON - 3 * DAY)
        ledger = UsageLedger(path, flush_interval=3600, prices=PriceTable([]), clock=clock)
        for i in range(24):  # one row every three hours over three days
            clock.now = NOON - 3 * DAY + i * 3 * 3600
            record(ledger, request_id=f"r{i}", key_name=f"k{i % 2}", latency_ms=float(i))
        ledger.close()
        for since in (NOON - 2 * DAY + 3600, NOON - 2 * DAY - 12 * 3600, NOON - DAY):
            with sqlite3.connect(path) as db:
                expected = dict(
                    db.execute(
                        "SELECT key_name, COUNT(*) FROM usage WHERE ts >= ? GROUP BY 1", (since,)
                    ).fetchall()
                )
            lines = summarize(path, by="key", since=since)
            assert {line.group: line.requests for line in lines} == expected, since
        (cut,) = summarize(path, by="day", since=NOON - 2 * DAY + 3600)[:1]
        assert (cut.group, cut.requests) == ("2025-12-30", 3)  # 15:00, 18:00, 21:00

    def test_a_ledger_no_daemon_rolled_up_yet_is_read_from_its_rows(self, tmp_path: Path) -> None:
        """``fkllm usage`` on a file from before the rollups (not opened by a daemon since)."""
        path = tmp_path / "usage.sqlite3"
        ledger = UsageLedger(path, flush_interval=3600, prices=PriceTable([]))
        for i in range(3):
            record(ledger, request_id=f"r{i}")
        ledger.close()
        with sqlite3.connect(path) as db:
            db.execute("DROP TABLE usage_daily")
        (line,) = summarize(path, by="key", since=NOON - DAY)
        assert (line.group, line.requests, line.prompt_tokens) == ("team-a", 3, 3000)


def test_the_row_names_the_target_that_answered(
    start_daemon: Any, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """A model whose two targets are on one provider: the first fails, the second answers,
    and the ledger row (and its price) names the second's model, not the first's."""
    path = tmp_path / "usage.sqlite3"
    config = f"""
[[providers]]
name = "up"
type = "openai"
base_url = "{fake_upstream.url}/v1"
api_key = "k"

[[models]]
name = "two-on-one"
targets = [
  {{ provider = "up", model = "fault-500" }},
  {{ provider = "up", model = "answers" }},
]

[[pricing]]
model = "fault-500"
input_per_mtok = 1000.0

[[pricing]]
model = "answers"
input_per_mtok = 1.0

[usage]
enabled = true
path = "{path}"
"""
    daemon = start_daemon(config)
    response = httpx.post(
        daemon.url + "/v1/chat/completions",
        headers=daemon.headers(),
        json={"model": "two-on-one", "messages": [{"role": "user", "content": "which?"}]},
    )
    assert response.status_code == 200, response.text
    asked = [r.json["model"] for r in fake_upstream.requests]
    assert asked[0] == "fault-500" and asked[-1] == "answers"
    assert wait_until(lambda: count_rows(path) == 1, timeout=10)
    with sqlite3.connect(path) as db:
        upstream_model, prompt, cost = db.execute(
            "SELECT upstream_model, prompt_tokens, cost_usd FROM usage"
        ).fetchone()
    assert upstream_model == "answers"
    assert cost == pytest.approx(prompt * 1.0 / 1e6)
