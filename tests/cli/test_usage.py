"""``fkllm usage``: the ledger a daemon wrote, summarised by key, model and day."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from fkllmproxy.cli.usage import parse_since
from tests.conftest import MOCK_CONFIG, fkllm

TEAM_KEY = "sk-team-a-0123456789"


def test_summaries_of_a_real_ledger(start_daemon: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "usage.sqlite3"
    digest = hashlib.sha256(TEAM_KEY.encode()).hexdigest()
    config = (
        MOCK_CONFIG
        + f"""
[usage]
enabled = true
path = "{ledger}"

[[auth.keys]]
name = "team-a"
key_sha256 = "{digest}"
"""
    )
    daemon = start_daemon(config)
    for key, count in ((None, 3), (TEAM_KEY, 2)):
        for _ in range(count):
            response = httpx.post(
                daemon.url + "/v1/chat/completions",
                headers=daemon.headers(key) if key else daemon.headers(),
                json={"model": "mock", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert response.status_code == 200
    assert daemon.stop() == 0

    by_key = fkllm("usage", "--config", str(daemon.config_path), "--json")
    assert by_key.returncode == 0, by_key.stderr
    groups = {g["group"]: g for g in json.loads(by_key.stdout)["groups"]}
    assert {name: g["requests"] for name, g in groups.items()} == {"master": 3, "team-a": 2}
    assert groups["team-a"]["completion_tokens"] > 0

    by_model = fkllm("usage", "--db", str(ledger), "--by", "model", "--json")
    assert [(g["group"], g["requests"]) for g in json.loads(by_model.stdout)["groups"]] == [
        ("mock", 5)
    ]
    table = fkllm("usage", "--db", str(ledger), "--by", "day", "--since", "1d")
    assert table.returncode == 0
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert any(line.startswith(today) and " 5 " in line for line in table.stdout.splitlines())
    future = fkllm("usage", "--db", str(ledger), "--since", "2100-01-01")
    assert future.returncode == 0 and "No requests" in future.stdout


def test_errors_are_one_line(tmp_path: Path) -> None:
    missing = fkllm("usage", "--db", str(tmp_path / "none.sqlite3"))
    assert missing.returncode == 1 and "no usage ledger" in missing.stderr
    assert missing.stderr.count("\n") == 1
    bad_since = fkllm("usage", "--db", str(tmp_path / "x"), "--since", "yesterdayish")
    assert bad_since.returncode == 2 and "--since" in bad_since.stderr
    bad_by = fkllm("usage", "--by", "colour")
    assert bad_by.returncode == 2 and "--by" in bad_by.stderr


class TestParseSince:
    def test_durations(self) -> None:
        assert parse_since("30m", now=10_000.0) == 10_000.0 - 1800
        assert parse_since("2d", now=1_000_000.0) == 1_000_000.0 - 172_800

    def test_dates_are_utc_unless_they_say(self) -> None:
        assert parse_since("1970-01-02") == 86_400
        assert parse_since("1970-01-01T01:00:00+01:00") == 0

    def test_nonsense(self) -> None:
        with pytest.raises(ValueError, match="neither a duration"):
            parse_since("soon")


BUDGETS_CONFIG = """
[state]
directory = "{state}"

[usage]
enabled = true
path = "{ledger}"

[[pricing]]
model = "mock-1"
input_per_mtok = 0
output_per_mtok = 1000

[[auth.keys]]
name = "team-a"
key_sha256 = "{digest}"
budget_usd = 1.0
budget_period = "month"

[auth.oidc]
issuer = "http://127.0.0.1:9/issuer"
audience = "fkllm"

[[auth.oidc.groups]]
claim_value = "team"
budget_usd = 0.5
budget_period = "day"
"""


def test_budgets_show_spend_this_period_and_what_is_left(tmp_path: Path) -> None:
    """``--budgets``: every budget (a config key, a stored key, an OIDC group) with its
    spend this period by the ledger — a group's from its members' rows — and what is left."""
    from fkllmproxy.auth.store import KeyStore, store_path
    from fkllmproxy.config.schema import PriceConfig
    from fkllmproxy.observability.usage import PriceTable, UsageLedger

    ledger = tmp_path / "usage.sqlite3"
    digest = hashlib.sha256(TEAM_KEY.encode()).hexdigest()
    config = tmp_path / "config.toml"
    config.write_text(
        MOCK_CONFIG + BUDGETS_CONFIG.format(state=tmp_path, ledger=ledger, digest=digest)
    )
    KeyStore(store_path(tmp_path)).create("stored", [], None, budget_usd=2.0, budget_period="week")
    moment = [time.time() - 40 * 86_400]  # last month's spend is not this month's
    prices = PriceTable([PriceConfig(model="mock-1", input_per_mtok=0, output_per_mtok=1000)])
    writer = UsageLedger(ledger, flush_interval=3600, prices=prices, clock=lambda: moment[0])

    def charge(request: str, key: str, budget: str, completion_tokens: int) -> None:
        writer.record(
            request_id=request,
            key_name=key,
            model="mock",
            provider="mock",
            upstream_model="mock-1",
            prompt_tokens=5,
            completion_tokens=completion_tokens,
            latency_ms=1.0,
            status=200,
            budget_name=budget,
        )

    charge("old", "team-a", "team-a", 500)
    moment[0] = time.time()
    charge("a1", "team-a", "team-a", 100)  # $0.10
    charge("a2", "team-a", "team-a", 150)  # $0.15
    charge("g1", "ann", "group:team", 200)  # $0.20, charged to the group
    charge("g2", "bob", "group:team", 400)  # $0.40: the group is over its budget
    writer.close()

    shown = fkllm("usage", "--config", str(config), "--budgets", "--json")
    assert shown.returncode == 0, shown.stderr
    budgets = {b["name"]: b for b in json.loads(shown.stdout)["budgets"]}
    assert set(budgets) == {"team-a", "stored", "group:team"}
    assert (budgets["team-a"]["spent_usd"], budgets["team-a"]["left_usd"]) == (0.25, 0.75)
    assert (budgets["group:team"]["spent_usd"], budgets["group:team"]["left_usd"]) == (0.6, 0.0)
    assert (budgets["stored"]["period"], budgets["stored"]["left_usd"]) == ("week", 2.0)
    assert budgets["group:team"]["renews"].endswith("T00:00:00Z")

    table = fkllm("usage", "--config", str(config), "--budgets")
    assert table.returncode == 0, table.stderr
    line = next(x for x in table.stdout.splitlines() if x.startswith("group:team"))
    assert line.split()[1:5] == ["day", "0.5000", "0.6000", "0.0000"]

    mixed = fkllm("usage", "--config", str(config), "--budgets", "--since", "1d")
    assert mixed.returncode == 2 and "--budgets" in mixed.stderr
