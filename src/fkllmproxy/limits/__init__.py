"""How much a caller may do: requests per second, tokens per minute, USD per period.

The request path's decisions live here; the numbers they are made on live in
``state/`` behind small interfaces (``Buckets`` for the request buckets,
``BudgetStore`` for spend and token buckets). ``server/gate.py`` admits a request
through ``RateLimits.take`` and ``Budgets.check``; ``server/budget.py`` reserves and
settles a request's budget on its context.

- ``rate.py``: ``RateShare`` (a worker's share of the limits) and ``RateLimits``.
- ``budgets.py``: ``Budgets`` (check, reserve, settle) and the per-request
  ``Reservation``.
- ``budget_setup.py``: ``build_budgets``, one runtime's budgets from the config.
"""

from fkllmproxy.config.usage_limits import UsageLimits
from fkllmproxy.limits.budget_setup import build_budgets
from fkllmproxy.limits.budgets import DEFAULT_OUTPUT_TOKENS, Budgets, Reservation, output_limit
from fkllmproxy.limits.rate import RateLimits, RateShare, build_rate_limits, refusal
from fkllmproxy.state.buckets import Decision

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "Budgets",
    "Decision",
    "RateLimits",
    "RateShare",
    "Reservation",
    "UsageLimits",
    "build_budgets",
    "build_rate_limits",
    "output_limit",
    "refusal",
]
