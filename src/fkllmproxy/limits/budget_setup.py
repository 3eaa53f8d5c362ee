"""One runtime's ``Budgets``: which store keeps the spend, the prices, and where each
budget starts from.

The store is the state backend's shared one when it has one (Redis), else a
memory-mapped file every worker of this daemon maps (several workers), else a dict
(``state/budgets.py``). Spend starts from the usage ledger's daily rollups, read once
here (``_seeds``), so a restart keeps it; nothing on the request path touches SQLite.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from fkllmproxy.config import Config
from fkllmproxy.config.schema import ClientKey
from fkllmproxy.config.usage_limits import UsageLimits
from fkllmproxy.limits.budgets import Budgets
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.observability.metrics import MULTIPROC_ENV, Metrics
from fkllmproxy.observability.usage import LedgerError, PriceTable, ledger_path
from fkllmproxy.state.base import StateBackend
from fkllmproxy.state.budget_spend import configured_budgets, period_spend
from fkllmproxy.state.budgets import BudgetStore, MemoryBudgets, SharedFileBudgets

__all__ = ["build_budgets"]

_log = get_logger("budget")


def _model_prices(config: Config, prices: PriceTable) -> dict[str, tuple[float, float]]:
    """Per model, USD per token in and out at its most expensive target."""
    found: dict[str, tuple[float, float]] = {}
    for model in config.models:
        per_in = per_out = 0.0
        for target in model.targets:
            price = prices.find(target.provider, target.model, model.name)
            if price is None:
                continue
            dearest_in = max(price.input_per_mtok, price.cache_write_per_million or 0.0)
            per_in = max(per_in, dearest_in / 1_000_000)
            per_out = max(per_out, price.output_per_mtok / 1_000_000)
        found[model.name] = (per_in, per_out)
    return found


def _budgeted(config: Config, keys: Iterable[ClientKey]) -> dict[str, UsageLimits]:
    return {
        name: UsageLimits(name, budget.usd, budget.period)
        for name, budget in configured_budgets(config, keys).items()
    }


def _seeds(
    config: Config, limits: dict[str, UsageLimits], clock: Callable[[], float]
) -> dict[str, tuple[str, float]]:
    """Each budget's spend this period from the ledger (``state/budget_spend.py``)."""
    if not config.usage.enabled or not limits:
        return {}
    periods = {name: item.budget_period for name, item in limits.items()}
    try:
        spent = period_spend(ledger_path(config), periods, clock())
    except LedgerError as exc:
        _log.warning(
            "budgets start from zero: the ledger cannot be read", extra={"error": str(exc)}
        )
        return {}
    return {name: (periods[name], spent[name]) for name in limits}


def _store(
    config: Config, state: StateBackend, previous: Budgets | None, clock: Callable[[], float]
) -> BudgetStore:
    if previous is not None:
        return previous.store
    shared = state.shared_budgets()
    if shared is not None:
        return shared
    directory = os.environ.get(MULTIPROC_ENV)
    if config.server.workers > 1 and directory:
        return SharedFileBudgets(Path(directory) / "budgets.bin", clock)
    return MemoryBudgets(clock)


def build_budgets(
    config: Config,
    state: StateBackend,
    keys: Iterable[ClientKey],
    *,
    previous: Budgets | None = None,
    same_state: bool = False,
    clock: Callable[[], float] = time.time,
    metrics: Metrics | None = None,
) -> Budgets | None:
    """The budgets for ``config``, or ``None`` when no key or group has one (or a
    tokens-per-minute limit). On reload the store carries over when ``[state]`` did."""
    keys = list(keys)
    groups = config.auth.oidc.groups if config.auth.oidc is not None else []
    wanted = any(k.budget_usd is not None or k.tokens_per_minute is not None for k in keys) or any(
        g.budget_usd is not None or g.tokens_per_minute is not None for g in groups
    )
    if not wanted:
        return None
    prices = PriceTable(config.pricing)
    limits = _budgeted(config, keys)
    fallback = None
    if config.state.backend == "redis" and config.state.on_failure == "open":
        fallback = previous.fallback if previous is not None and same_state else None
        fallback = fallback or MemoryBudgets(clock)
    return Budgets(
        store=_store(config, state, previous if same_state else None, clock),
        prices=prices,
        model_prices=_model_prices(config, prices),
        seeds=_seeds(config, limits, clock),
        limits=limits,
        fallback=fallback,
        clock=clock,
        metrics=metrics,
    )
