"""server/budget.py with an injected clock: Retry-After to the period's end, estimates, config."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from fkllmproxy.auth import Caller
from fkllmproxy.auth.keys import UsageLimits
from fkllmproxy.config import load_config
from fkllmproxy.config.schema import Config
from fkllmproxy.errors import BudgetExceeded, ConfigError
from fkllmproxy.server import budget
from fkllmproxy.server.context import RequestContext
from fkllmproxy.state import MemoryState

SHA = "0" * 64


def make_config(budget_usd: float | None = 1.0, period: str = "week") -> Config:
    return msgspec.convert(
        {
            "auth": {
                "keys": [
                    {
                        "name": "k",
                        "key_sha256": SHA,
                        "budget_usd": budget_usd,
                        "budget_period": period,
                    }
                ]
            },
            "providers": [{"name": "mock", "type": "mock"}],
            "models": [{"name": "m", "targets": [{"provider": "mock", "model": "mock-1"}]}],
            "pricing": [{"model": "mock-1", "input_per_mtok": 4_000, "output_per_mtok": 10_000}],
        },
        Config,
    )


def test_retry_after_is_the_time_to_the_end_of_the_period() -> None:
    """A spent weekly budget says to come back on Monday 00:00 UTC."""
    now = datetime(2026, 12, 2, 16, 45, tzinfo=UTC).timestamp()  # a Wednesday
    config = make_config()
    budgets = budget.build_budgets(config, MemoryState(), config.auth.keys, clock=lambda: now)
    assert budgets is not None
    limits = UsageLimits("k", 1.0, "week")
    caller = Caller(name="k", limits=limits)
    model = config.models[0]

    async def run() -> None:
        context = RequestContext(request_id="r", started=0.0)
        await budget.check(budgets, caller, context)
        await budget.reserve(budgets, caller, context, model, b'{"max_tokens": 200}')
        assert context.budget is not None
        # 200 output tokens at $0.01 plus ceil(19 / 4) input tokens at $0.004.
        assert context.budget.estimate == pytest.approx(200 * 0.01 + 5 * 0.004)
        context.usage = None
        await budgets.settle(context)  # nothing was used: the hold is released
        await budgets.store.settle("k", context.budget.period, 0.0, 1.0)
        with pytest.raises(BudgetExceeded) as refused:
            await budget.check(budgets, caller, RequestContext(request_id="s", started=0.0))
        monday = datetime(2026, 12, 7, tzinfo=UTC).timestamp()
        assert refused.value.retry_after == pytest.approx(monday - now)
        assert refused.value.headers["Retry-After"] == str(int(monday - now))
        assert refused.value.code == "budget_exceeded"

    asyncio.run(run())


@pytest.mark.parametrize(
    ("body", "tokens"),
    [
        (b'{"max_tokens": 7}', 7),
        (b'{"max_completion_tokens": 8}', 8),
        (b'{"max_output_tokens": 9}', 9),
        (b'{"generationConfig": {"maxOutputTokens": 10}}', 10),
        (b'{"messages": []}', budget.DEFAULT_OUTPUT_TOKENS),
    ],
)
def test_the_output_limit_comes_from_each_api_s_field(body: bytes, tokens: int) -> None:
    """Chat, Messages, Responses and Gemini name their output limit differently."""
    assert budget.output_limit(body) == tokens


def test_no_budgets_no_store() -> None:
    """A config with no budget and no tokens_per_minute builds nothing."""
    config = make_config(budget_usd=None)
    assert budget.build_budgets(config, MemoryState(), config.auth.keys) is None


def test_a_budgeted_key_with_an_unpriced_model_is_a_config_error(tmp_path: Path) -> None:
    """Every budgeted key that may use an unpriced model is named, by field path."""
    path = tmp_path / "c.toml"
    path.write_text(
        f"""
[[auth.keys]]
name = "a"
key_sha256 = "{SHA}"
budget_usd = 5

[[auth.keys]]
name = "b"
key_sha256 = "{"1" * 64}"
budget_usd = 5
models = ["priced"]

[[auth.keys]]
name = "c"
key_sha256 = "{"2" * 64}"
budget_usd = 5
models = ["unpriced"]

[[providers]]
name = "mock"
type = "mock"

[[models]]
name = "priced"
targets = [{{ provider = "mock", model = "mock-1" }}]

[[models]]
name = "unpriced"
targets = [{{ provider = "mock", model = "mock-2" }}]

[[pricing]]
model = "mock-1"
input_per_mtok = 1
"""
    )
    with pytest.raises(ConfigError) as error:
        load_config(config_path=path, environ={})
    problems = error.value.problems
    assert any(p.startswith("auth.keys[0].budget_usd") and "'unpriced'" in p for p in problems)
    assert any(p.startswith("auth.keys[2].budget_usd") and "'unpriced'" in p for p in problems)
    assert not any(p.startswith("auth.keys[1]") for p in problems)
