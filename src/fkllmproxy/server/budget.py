"""A request's budget, on its context: ``check``, ``reserve``, and the header.

The decisions are ``limits.Budgets``' (``limits/budgets.py``); this module hands them
what the request knows (the caller, the model, the body) and keeps what they answer on
the ``RequestContext`` (the hold the middleware settles with ``Budgets.settle``, and
what is left for ``x-fkllm-budget-remaining-usd``). Only callers whose
``Caller.limits`` is set pay more than one attribute check.

``Budgets``, ``Reservation``, ``build_budgets``, ``output_limit`` and
``DEFAULT_OUTPUT_TOKENS`` are ``limits``', re-exported for the handlers that import them
from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fkllmproxy.auth import Caller
from fkllmproxy.config import ModelConfig
from fkllmproxy.errors import BudgetExceeded
from fkllmproxy.limits import (
    DEFAULT_OUTPUT_TOKENS,
    Budgets,
    Reservation,
    build_budgets,
    output_limit,
)

if TYPE_CHECKING:
    from fkllmproxy.server.context import RequestContext

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "HEADER",
    "Budgets",
    "Reservation",
    "build_budgets",
    "check",
    "output_limit",
    "reserve",
]

HEADER = b"x-fkllm-budget-remaining-usd"


async def check(budgets: Budgets | None, caller: Caller, context: RequestContext) -> None:
    """Refuse a caller whose budget is spent or whose token bucket is empty (any route)."""
    limits = caller.limits
    if budgets is None or limits is None:
        return
    held = context.budget = await budgets.check(caller.name, limits)
    if held.left is not None:
        context.budget_left = held.left


async def reserve(
    budgets: Budgets | None, caller: Caller, context: RequestContext, model: ModelConfig, raw: bytes
) -> None:
    """Reserve the call's estimated cost against the caller's budget, or refuse it."""
    limits = caller.limits
    if budgets is None or limits is None or limits.budget_usd is None:
        return
    try:
        held = await budgets.reserve(context.budget, caller.name, limits, model, raw)
    except BudgetExceeded:
        context.budget = None
        raise
    context.budget = held
    context.budget_left = held.left
