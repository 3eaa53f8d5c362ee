"""Which budgets the config sets, and what each spent this period by the usage ledger.

One reading for the three places that need it: the daemon's start (``limits/budget_setup.py``
seeds its stores with it, so a restart keeps spend), ``fkllm keys list`` and ``fkllm
usage --budgets``. A key's spend is that of its rows (all of them, so a budget added
mid-period counts what came before); an OIDC group's, named ``group:<claim_value>``,
that of the rows charged to it, since its members' rows carry their own names. Both
come from the ledger's daily rollups, so the periods are calendar periods in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fkllmproxy.config.schema import ClientKey, Config
from fkllmproxy.observability.usage import spend_by_day
from fkllmproxy.state.budgets import period_bounds

__all__ = ["GROUP_PREFIX", "Budget", "configured_budgets", "period_spend"]

GROUP_PREFIX = "group:"  # an OIDC group's budget name: group:<claim_value>


@dataclass(frozen=True, slots=True)
class Budget:
    """A budget as configured: USD per calendar ``period`` (UTC)."""

    usd: float
    period: str


def configured_budgets(config: Config, keys: Iterable[ClientKey]) -> dict[str, Budget]:
    """Every budget by name: ``keys``' (the first of a name wins), then the OIDC groups'."""
    found: dict[str, Budget] = {}
    for key in keys:
        if key.budget_usd is not None:
            found.setdefault(key.name, Budget(key.budget_usd, key.budget_period))
    if config.auth.oidc is not None:
        for group in config.auth.oidc.groups:
            if group.budget_usd is not None:
                name = f"{GROUP_PREFIX}{group.claim_value}"
                found.setdefault(name, Budget(group.budget_usd, group.budget_period))
    return found


def _day(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d")


def period_spend(path: Path, periods: Mapping[str, str], now: float) -> dict[str, float]:
    """Each budget's spend in its ``periods[name]`` holding ``now``, from the ledger at
    ``path`` (two queries; ``LedgerError`` when it cannot be read; none: 0)."""
    if not periods:
        return {}
    starts = {name: _day(period_bounds(period, now)[0]) for name, period in periods.items()}
    earliest = min(starts.values())
    by_key = spend_by_day(path, earliest)
    by_budget = spend_by_day(path, earliest, by_budget=True)
    spent = dict.fromkeys(periods, 0.0)
    for source, groups in ((by_key, False), (by_budget, True)):
        for (name, day), cost in source.items():
            first = starts.get(name)
            if first is not None and name.startswith(GROUP_PREFIX) == groups and day >= first:
                spent[name] += cost
    return spent
