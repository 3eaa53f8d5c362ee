"""What the console reads from the usage ledger: spend per key, cost today, CSV."""

from __future__ import annotations

from pathlib import Path

from fkllmproxy.config.schema import PriceConfig
from fkllmproxy.observability.usage import PriceTable, UsageLedger, UsageLine
from fkllmproxy.server.ui import ledger


def _ledger(path: Path) -> UsageLedger:
    prices = PriceTable([PriceConfig(model="m-1", input_per_mtok=1.0, output_per_mtok=2.0)])
    book = UsageLedger(path, 0.05, prices)
    for key, tokens in (("team", 1000), ("team", 2000), (None, 10)):
        book.record(
            request_id="r", key_name=key, model="m", provider="p", upstream_model="m-1",
            prompt_tokens=tokens, completion_tokens=tokens, latency_ms=1.0, status=200,
        )  # fmt: skip
    book.close()
    return book


def test_spend_and_last_use_per_key(tmp_path: Path) -> None:
    """Requests, estimated spend and last use per key name; keyless rows left out."""
    _ledger(tmp_path / "u.sqlite3")
    activity = ledger.key_activity(tmp_path / "u.sqlite3")
    assert set(activity) == {"team"}
    assert activity["team"].requests == 2
    assert activity["team"].cost_usd == 0.009
    assert activity["team"].last_used is not None


def test_cost_since(tmp_path: Path) -> None:
    """The cost and tokens of the requests since a moment; nothing without a file."""
    _ledger(tmp_path / "u.sqlite3")
    cost, tokens = ledger.cost_since(tmp_path / "u.sqlite3", ledger.start_of_day())
    assert tokens == 6020 and cost is not None and cost > 0.009
    assert ledger.cost_since(tmp_path / "none.sqlite3", 0) == (None, 0)
    assert ledger.cost_since(None, 0) == (None, 0)
    assert ledger.key_activity(None) == {}


def test_csv_cells_are_not_formulas() -> None:
    """A client-made model name starting with = is quoted; the '-' of no key is kept."""
    lines = [
        UsageLine("=HYPERLINK(1)", 1, 0, 1, 1, None, 1.0),
        UsageLine("-", 2, 1, 3, 4, 0.5, 2.0),
    ]
    text = ledger.usage_csv(lines, "model").decode()
    rows = text.splitlines()
    assert (
        rows[0] == "model,requests,failed,prompt_tokens,completion_tokens,cost_usd,avg_latency_ms,"
        "energy_wh_estimate"
    )
    assert rows[1].startswith("'=HYPERLINK(1),1,0,1,1,,1.0")
    assert rows[2] == "-,2,1,3,4,0.500000,2.0,"


def test_start_of_day_is_midnight_utc() -> None:
    """Midnight UTC of the given moment."""
    assert ledger.start_of_day(86_400 * 3 + 5000) == 86_400 * 3
