"""What a caller may spend: a budget in USD per calendar period and tokens per minute.

Set on a caller by ``auth/`` (from its key, or its OIDC group) and enforced by
``limits/``. It lives here, below both, because both read it and neither may import the
other (the layers in ``pyproject.toml``); like the rest of this package it is the
configuration's word, resolved for one caller.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UsageLimits", "usage_limits"]


@dataclass(frozen=True, slots=True)
class UsageLimits:
    """A caller's budget and tokens per minute (``limits/budgets.py`` enforces them).

    ``budget_name`` is whose spend it is: the key's name, or ``group:<claim_value>``
    for an OIDC group's budget, which its members share.
    """

    budget_name: str
    budget_usd: float | None = None
    budget_period: str = "month"
    tokens_per_minute: int | None = None


def usage_limits(
    name: str, budget_usd: float | None, budget_period: str, tokens_per_minute: int | None
) -> UsageLimits | None:
    """The limits to carry, or ``None`` when there are none (the request path checks
    only that one attribute)."""
    if budget_usd is None and tokens_per_minute is None:
        return None
    return UsageLimits(name, budget_usd, budget_period, tokens_per_minute)
