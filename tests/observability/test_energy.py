"""The energy estimate: coefficients per model, the ledger's column, the metrics, what a cache hit saved."""

from __future__ import annotations

import json
import sqlite3
import timeit
from pathlib import Path
from typing import Any

import httpx
import pytest

from fkllmproxy.config.schema import PriceConfig, UsageConfig
from fkllmproxy.observability.energy import JOULES_PER_WH, EnergyTable
from fkllmproxy.observability.usage import PriceTable, UsageLedger, summarize, summarize_days
from tests.conftest import MOCK_CONFIG, fkllm, prometheus_samples, sample_sum, wait_until

DEFAULTS = UsageConfig()


class TestEnergyTable:
    def test_defaults_apply_to_every_model(self) -> None:
        """Without [[pricing]] figures: 0.05 Wh per 1k prompt and 0.5 Wh per 1k completion tokens."""
        table = EnergyTable(DEFAULTS)
        assert table.estimate_wh("p", "m", "m", 1000, 1000) == pytest.approx(0.55)
        assert table.estimate_wh(None, None, None, 0, 0) == 0.0

    def test_a_pricing_entry_sets_its_models_coefficients(self) -> None:
        """Matched like prices: provider and upstream model, upstream model, client model."""
        prices = [
            PriceConfig(model="big", input_per_mtok=1, energy_wh_per_1k_prompt=1.0,
                        energy_wh_per_1k_completion=10.0),
            PriceConfig(model="big", provider="fast", input_per_mtok=1,
                        energy_wh_per_1k_completion=2.0),
            PriceConfig(model="alias", input_per_mtok=1, energy_wh_per_1k_prompt=3.0),
            PriceConfig(model="priced-only", input_per_mtok=1),
        ]  # fmt: skip
        table = EnergyTable(DEFAULTS, prices)
        assert table.estimate_wh("slow", "big", "x", 1000, 1000) == pytest.approx(11.0)
        # The provider's own entry; its prompt coefficient falls back to the default.
        assert table.estimate_wh("fast", "big", "x", 1000, 1000) == pytest.approx(2.05)
        assert table.estimate_wh("any", "unlisted", "alias", 1000, 1000) == pytest.approx(3.5)
        assert table.estimate_wh("any", "priced-only", None, 1000, 1000) == pytest.approx(0.55)

    def test_configured_defaults(self) -> None:
        """[usage] energy_wh_per_1k_* replace the built-in defaults; 0 estimates nothing."""
        usage = UsageConfig(energy_wh_per_1k_prompt=0.0, energy_wh_per_1k_completion=0.0)
        assert EnergyTable(usage).estimate_wh("p", "m", "m", 10_000, 10_000) == 0.0

    def test_an_estimate_costs_microseconds(self) -> None:
        """The request path pays a dict lookup and two multiplications (bounded loosely)."""
        prices = [PriceConfig(model=f"m{i}", input_per_mtok=1, energy_wh_per_1k_prompt=1.0)
                  for i in range(200)]  # fmt: skip
        table = EnergyTable(DEFAULTS, prices)
        runs = 20_000
        seconds = min(
            timeit.repeat(
                lambda: table.estimate_wh("p", "m7", "x", 900, 300), number=runs, repeat=3
            )
        )
        assert seconds / runs < 50e-6  # measured ~0.4 µs here; 100x headroom for a busy CI


def _record(ledger: UsageLedger, energy_wh: float | None) -> None:
    ledger.record(
        request_id="r", key_name="k", model="m", provider="p", upstream_model="u",
        prompt_tokens=1000, completion_tokens=100, latency_ms=1.0, status=200,
        energy_wh=energy_wh,
    )  # fmt: skip


class TestLedgerColumn:
    def test_recorded_and_summed_by_every_grouping(self, tmp_path: Path) -> None:
        """energy_wh is stored per row and summed the same from rows and daily rollups."""
        path = tmp_path / "usage.sqlite3"
        ledger = UsageLedger(path, flush_interval=0.01, prices=PriceTable([]))
        _record(ledger, 0.1)
        _record(ledger, 0.25)
        _record(ledger, None)  # a failed request: no estimate
        ledger.close()
        for by in ("key", "model", "provider", "day"):
            (line,) = summarize(path, by=by)
            assert line.energy_wh == pytest.approx(0.35)
            assert summarize_days(path, by=by) == summarize(path, by=by)

    def test_an_older_ledger_gets_the_column_on_open(self, tmp_path: Path) -> None:
        """A ledger (rows and rollups) from before the estimate keeps its rows and gains it."""
        path = tmp_path / "usage.sqlite3"
        ledger = UsageLedger(path, flush_interval=0.01, prices=PriceTable([]))
        _record(ledger, None)
        ledger.close()
        with sqlite3.connect(path) as db:  # back to the previous release's layout
            db.execute("ALTER TABLE usage DROP COLUMN energy_wh")
            db.execute("ALTER TABLE usage_daily DROP COLUMN energy_wh")
        ledger = UsageLedger(path, flush_interval=0.01, prices=PriceTable([]))
        _record(ledger, 2.0)
        ledger.close()
        (line,) = summarize_days(path, by="key")
        assert (line.requests, line.energy_wh) == (2, pytest.approx(2.0))
        (line,) = summarize(path, by="key")
        assert (line.requests, line.energy_wh) == (2, pytest.approx(2.0))


ENERGY_CONFIG = (
    MOCK_CONFIG.replace('targets = [{ provider = "mock", model = "mock-1" }]',
                        'targets = [{ provider = "mock", model = "mock-1" }]\ncache = true')
    + """
[cache]
enabled = true

[usage]
enabled = true
flush_interval_secs = 0.01

[[pricing]]
model = "mock-1"
input_per_mtok = 1.0
energy_wh_per_1k_prompt = 2.0
energy_wh_per_1k_completion = 20.0
"""
)  # fmt: skip


def _chat(daemon: Any, text: str, *, stream: bool = False) -> httpx.Response:
    body: dict[str, Any] = {"model": "mock", "messages": [{"role": "user", "content": text}]}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    response = httpx.post(daemon.url + "/v1/chat/completions", headers=daemon.headers(), json=body)
    response.raise_for_status()
    return response


def _energy(samples: dict[Any, float], name: str, **labels: str) -> float:
    return sample_sum(samples, name + "_sum", **labels)


class TestDaemon:
    def test_estimate_in_metrics_ledger_usage_and_saved_by_the_cache(
        self, start_daemon: Any, tmp_path: Path
    ) -> None:
        """One answer: its estimate in fkllm_energy_joules, the ledger and fkllm usage; the
        same request again is a cache hit whose avoided estimate is fkllm_energy_saved_joules."""
        ledger_path = tmp_path / "ledger.sqlite3"
        daemon = start_daemon(ENERGY_CONFIG, env={"APP_USAGE__PATH": str(ledger_path)})
        usage = _chat(daemon, "how much energy").json()["usage"]
        expected_wh = usage["prompt_tokens"] * 0.002 + usage["completion_tokens"] * 0.02
        streamed = _chat(daemon, "and streamed", stream=True)
        last = [line for line in streamed.text.splitlines() if '"usage"' in line][-1]
        stream_usage = json.loads(last[len("data: ") :])["usage"]
        stream_wh = stream_usage["prompt_tokens"] * 0.002 + stream_usage["completion_tokens"] * 0.02

        hit = httpx.post(
            daemon.url + "/v1/chat/completions",
            headers=daemon.headers(),
            json={"model": "mock", "messages": [{"role": "user", "content": "how much energy"}]},
        )
        assert hit.headers["x-fkllm-cache"] == "hit"
        assert _chat(daemon, "and streamed", stream=True).headers["x-fkllm-cache"] == "hit"

        samples = prometheus_samples(httpx.get(daemon.url + "/metrics/prometheus").text)
        joules = _energy(samples, "fkllm_energy_joules", provider="mock", model="mock")
        assert joules == pytest.approx((expected_wh + stream_wh) * JOULES_PER_WH)
        assert sample_sum(samples, "fkllm_energy_joules_count", model="mock") == 2
        saved = _energy(samples, "fkllm_energy_saved_joules", model="mock")
        assert saved == pytest.approx((expected_wh + stream_wh) * JOULES_PER_WH)
        assert sample_sum(samples, "fkllm_energy_saved_joules_count", model="mock") == 2

        def written() -> bool:
            with sqlite3.connect(ledger_path) as db:
                return db.execute("SELECT COUNT(*) FROM usage").fetchone()[0] == 4

        assert wait_until(written)
        with sqlite3.connect(ledger_path) as db:
            found = db.execute("SELECT provider, energy_wh FROM usage ORDER BY id").fetchall()
        assert found[0] == ("mock", pytest.approx(expected_wh))
        assert found[1] == ("mock", pytest.approx(stream_wh))
        assert [row[1] for row in found[2:]] == [None, None]  # hits: nothing spent upstream

        for by in ("key", "model", "provider", "day"):
            result = fkllm("usage", "--by", by, "--json", "--db", str(ledger_path))
            assert result.returncode == 0, result.stderr
            groups = json.loads(result.stdout)["groups"]
            total = sum(g["energy_wh"] or 0.0 for g in groups)
            assert total == pytest.approx(expected_wh + stream_wh), by
        table = fkllm("usage", "--by", "model", "--db", str(ledger_path))
        assert "Est. Wh" in table.stdout
        assert "an estimate" in table.stdout
        assert f"{expected_wh + stream_wh:,.3f}" in table.stdout
