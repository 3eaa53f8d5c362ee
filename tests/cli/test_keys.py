"""``fkllm keys create|list`` with budgets: spend this period and what is left."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import fkllm


def config(tmp: Path, priced: bool = True) -> str:
    pricing = '[[pricing]]\nmodel = "mock-1"\ninput_per_mtok = 0\noutput_per_mtok = 1000\n'
    return f"""
[state]
directory = "{tmp}"

[usage]
enabled = true

[[providers]]
name = "mock"
type = "mock"

[[models]]
name = "mock"
targets = [{{ provider = "mock", model = "mock-1" }}]

{pricing if priced else ""}
"""


def test_keys_list_shows_spend_and_what_is_left(start_daemon: Any, tmp_path: Path) -> None:
    """A key created with a budget is enforced by the daemon; `keys list` shows its
    spend this period and what is left."""
    path = tmp_path / "c.toml"
    path.write_text(config(tmp_path))
    created = fkllm(
        "keys", "create", "ci-bot", "--budget-usd", "2", "--budget-period", "day",
        "--tokens-per-minute", "100000", "--config", str(path),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    daemon = start_daemon(config(tmp_path))
    answer = httpx.post(
        daemon.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "mock", "messages": [{"role": "user", "content": "hello there"}]},
        timeout=10,
    )
    assert answer.status_code == 200
    assert answer.headers["x-fkllm-budget-remaining-usd"] == "2.000000"
    spent = answer.json()["usage"]["completion_tokens"] * 0.001
    daemon.stop()  # the ledger is flushed
    listed = fkllm("keys", "list", "--json", "--config", str(path))
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["budget_usd"] == 2.0
    assert row["budget_period"] == "day"
    assert row["tokens_per_minute"] == 100000
    assert abs(row["spent_usd"] - spent) < 1e-6
    assert abs(row["left_usd"] - (2.0 - spent)) < 1e-6
    text = fkllm("keys", "list", "--config", str(path)).stdout
    assert f"spent ${spent:.6f}" in text
    assert "budget: $2.00/day" in text


def test_keys_create_refuses_a_budget_over_unpriced_models(tmp_path: Path) -> None:
    """A budget over a model with no [[pricing]] entry is refused at creation."""
    path = tmp_path / "c.toml"
    path.write_text(config(tmp_path, priced=False))
    created = fkllm("keys", "create", "x", "--budget-usd", "2", "--config", str(path))
    assert created.returncode == 1
    assert "without a price" in created.stderr
    assert "'mock'" in created.stderr
    bad = fkllm(
        "keys", "create", "y", "--budget-usd", "2", "--budget-period", "year",
        "--state-dir", str(tmp_path),
    )  # fmt: skip
    assert bad.returncode == 1
    assert "budget_period" in bad.stderr
