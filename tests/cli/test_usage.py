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
from tests.cli.test_cli import fkllm
from tests.conftest import MOCK_CONFIG

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
