"""Budgets and tokens per minute on the request path: check, reserve, settle.

Only callers with ``UsageLimits`` pay anything here; for everyone else the cost is one
attribute check in ``gate.admit``, ``dispatch.accept`` and the middleware (which reach
this module through ``server/budget.py``, the request context's side of it).

* ``Budgets.check`` (every route, at admission): 429 ``budget_exceeded`` when the
  budget is spent (``Retry-After``: until the period ends), 429 ``rate_limit_exceeded``
  when the tokens-per-minute bucket is empty.
* ``Budgets.reserve`` (model routes, once the model is known): an estimate of the
  call's cost is reserved — the body's size at ``CHARS_PER_TOKEN`` as input tokens plus
  its ``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens`` /
  ``generationConfig.maxOutputTokens`` (``DEFAULT_OUTPUT_TOKENS`` without one), at the
  prices of the model's most expensive target.
* ``Budgets.settle`` (the middleware, before the answer's last byte): the reservation
  goes, the cost the usage ledger records (cache tokens included) is added, and the
  real prompt + completion tokens are taken from the per-minute bucket.

Spend lives in a ``state.budgets.BudgetStore``; ``limits/budget_setup.py`` builds one
``Budgets`` per runtime and reads where the spend starts from.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from fkllmproxy.config import ModelConfig
from fkllmproxy.config.usage_limits import UsageLimits
from fkllmproxy.errors import BudgetExceeded, RateLimited, StateStoreUnavailable
from fkllmproxy.observability.metrics import Metrics
from fkllmproxy.observability.usage import PriceTable
from fkllmproxy.providers import Usage
from fkllmproxy.state.base import StateUnavailable
from fkllmproxy.state.budgets import BudgetStore, CellBudgets, Spend, period_bounds
from fkllmproxy.translate.token_estimate import CHARS_PER_TOKEN

__all__ = ["DEFAULT_OUTPUT_TOKENS", "Budgets", "Reservation", "Settling", "output_limit"]

DEFAULT_OUTPUT_TOKENS = 4096  # a request that names no output limit is reserved this many


class _Gen(msgspec.Struct):
    maxOutputTokens: int | None = None


class _OutputLimits(msgspec.Struct):
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    max_output_tokens: int | None = None
    generationConfig: _Gen | None = None


_limits_decoder = msgspec.json.Decoder(_OutputLimits)


def output_limit(raw: bytes) -> int:
    """The most output tokens the request asks for (``DEFAULT_OUTPUT_TOKENS`` if it names none)."""
    try:
        found = _limits_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return DEFAULT_OUTPUT_TOKENS
    gen = found.generationConfig.maxOutputTokens if found.generationConfig else None
    for value in (found.max_tokens, found.max_completion_tokens, found.max_output_tokens, gen):
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_OUTPUT_TOKENS


@dataclass(slots=True)
class Reservation:
    """What one request holds against its caller's budget and bucket until settled.

    ``period`` and ``ends`` are the budget period the admission check saw (its start, a
    record key, and its end), so the reservation and the settlement need not work it
    out again unless the period ended meanwhile. ``left`` is what the budget had left
    when last checked (``None`` without a budget), for the client's header."""

    limits: UsageLimits
    client: str
    period: int = 0
    ends: float = 0.0
    estimate: float = 0.0
    reserved: bool = False
    settled: bool = False
    left: float | None = None


class Settling(Protocol):
    """What ``Budgets.settle`` reads of a finished request (the server's context)."""

    @property
    def budget(self) -> Reservation | None: ...
    @property
    def usage(self) -> Usage | None: ...
    @property
    def provider(self) -> str | None: ...
    @property
    def upstream_model(self) -> str | None: ...
    @property
    def model(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class _Period:
    start: float
    end: float


@dataclass(eq=False)
class Budgets:
    """The budgets of one runtime: the store, the prices, and each period's bounds."""

    store: BudgetStore
    prices: PriceTable
    model_prices: dict[str, tuple[float, float]]  # model -> USD per token in, out (max)
    seeds: dict[str, tuple[str, float]]  # budget name -> (period, spent) from the ledger
    limits: dict[str, UsageLimits]  # budget name -> its limits (configured ones)
    fallback: BudgetStore | None = None  # Redis down and on_failure = "open"
    clock: Callable[[], float] = time.time
    metrics: Metrics | None = None  # where spend and budgets are shown (none: not shown)
    _periods: dict[str, _Period] = field(default_factory=dict)
    # The store as plain calls when it never waits (memory, mapped file): no coroutine,
    # no fallback, per operation. ``None`` on Redis.
    _cells: CellBudgets | None = None
    _seeded: asyncio.Event | None = None
    _ready: bool = False  # seeded: the per-request check is then one attribute read
    # Budget name -> its spend gauge, its budget already set: settling a request then
    # costs one gauge write, not two lookups and two writes.
    _gauges: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._cells = self.store.immediate()

    def period(self, kind: str) -> _Period:
        """This ``kind`` of period's bounds now (recomputed only when one ends)."""
        now = self.clock()
        known = self._periods.get(kind)
        if known is None or not known.start <= now < known.end:
            known = self._periods[kind] = _Period(*period_bounds(kind, now))
        return known

    async def _seed(self) -> None:
        """Start each budget from the ledger's spend, once, before its first check."""
        if self._ready:
            return
        if self._seeded is not None:
            await self._seeded.wait()
            return
        self._seeded = asyncio.Event()
        try:
            for name, (kind, spent) in self.seeds.items():
                await self._call("seed", name, int(self.period(kind).start), spent)
            for name, limits in self.limits.items():
                self._gauge(name, limits, await self.read(limits))
        finally:
            self._seeded.set()
            self._ready = True

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            return await getattr(self.store, method)(*args)
        except StateUnavailable:
            return await self._fall_back(method, *args)

    async def _fall_back(self, method: str, *args: Any) -> Any:
        """The store is unreachable: the fallback store's answer, or a 503."""
        if self.fallback is None:
            raise StateStoreUnavailable(
                "Budgets are unavailable (shared state store unreachable); try again shortly."
            ) from None
        return await getattr(self.fallback, method)(*args)

    async def read(self, limits: UsageLimits) -> Spend:
        period = int(self.period(limits.budget_period).start)
        try:
            return await self.store.read(limits.budget_name, period)
        except StateUnavailable:
            spend: Spend = await self._fall_back("read", limits.budget_name, period)
            return spend

    def _gauge(self, name: str, limits: UsageLimits, spend: Spend) -> None:
        if self.metrics is None or limits.budget_usd is None:
            return
        gauge = self._gauges.get(name)
        if gauge is None:
            gauge, budget = self.metrics.budget_gauges(name)
            budget.set(limits.budget_usd)
            self._gauges[name] = gauge
        gauge.set(spend.spent)

    def _refuse(self, limits: UsageLimits, spend: Spend) -> BudgetExceeded:
        assert limits.budget_usd is not None
        wait = self.period(limits.budget_period).end - self.clock()
        self._gauge(limits.budget_name, limits, spend)
        return BudgetExceeded(
            f"Budget exceeded for {limits.budget_name!r}: spent ${spend.spent:.6f} of "
            f"${limits.budget_usd:.6f} this {limits.budget_period} (UTC); it renews in "
            f"{int(wait + 0.999)}s.",
            retry_after=wait,
        )

    def estimate(self, model: ModelConfig, raw: bytes) -> float:
        per_in, per_out = self.model_prices.get(model.name, (0.0, 0.0))
        return -(-len(raw) // CHARS_PER_TOKEN) * per_in + output_limit(raw) * per_out

    async def check(self, client: str, limits: UsageLimits) -> Reservation:
        """Admit ``client``, or refuse it when its budget is spent or its token bucket
        is empty (``BudgetExceeded``, ``RateLimited``); the hold to settle at the end."""
        if not self._ready:
            await self._seed()
        cells = self._cells
        if limits.tokens_per_minute is not None:
            if cells is not None:
                left = cells.tokens_left_now(client, limits.tokens_per_minute)
            else:
                left = await self._call("tokens_left", client, limits.tokens_per_minute)
            if left <= 0:
                wait = (1.0 - left) * 60.0 / limits.tokens_per_minute
                raise RateLimited(
                    f"Tokens per minute exceeded for {client!r} "
                    f"(limit {limits.tokens_per_minute}); retry in {wait:.1f}s.",
                    retry_after=wait,
                )
        held = Reservation(limits, client)
        if limits.budget_usd is not None:
            period = self.period(limits.budget_period)
            held.period, held.ends = int(period.start), period.end
            if cells is not None:
                spend = cells.read_now(limits.budget_name, held.period)
            else:
                spend = await self.read(limits)
            if spend.spent + spend.reserved >= limits.budget_usd:
                raise self._refuse(limits, spend)
            held.left = max(0.0, limits.budget_usd - spend.spent - spend.reserved)
        return held

    async def reserve(
        self,
        held: Reservation | None,
        client: str,
        limits: UsageLimits,
        model: ModelConfig,
        raw: bytes,
    ) -> Reservation:
        """Reserve the call's estimated cost against ``limits``' budget (which it must
        have), or refuse it (``BudgetExceeded``). ``held`` is the admission's hold, or
        ``None`` for a request that was not admitted through ``check``."""
        assert limits.budget_usd is not None
        if held is None or not held.period:
            period = self.period(limits.budget_period)
            held = Reservation(limits, client, int(period.start), period.end)
        estimate = self.estimate(model, raw)
        cells = self._cells
        if cells is not None:
            spend = cells.reserve_now(limits.budget_name, held.period, limits.budget_usd, estimate)
        else:
            try:
                spend = await self.store.reserve(
                    limits.budget_name, held.period, limits.budget_usd, estimate
                )
            except StateUnavailable:
                spend = await self._fall_back(
                    "reserve", limits.budget_name, held.period, limits.budget_usd, estimate
                )
        if not spend.allowed:
            raise self._refuse(limits, spend)
        held.estimate, held.reserved = estimate, True
        # What was left when this call was admitted (its own estimate not counted).
        held.left = max(0.0, limits.budget_usd - spend.spent - spend.reserved + estimate)
        return held

    async def settle(self, request: Settling) -> None:
        """Release the request's reservation, add the real cost, take the real tokens."""
        held = request.budget
        if held is None or held.settled:
            return
        held.settled = True
        limits = held.limits
        usage = request.usage
        cells = self._cells
        if limits.tokens_per_minute is not None and usage is not None:
            used = usage.prompt_tokens + usage.completion_tokens
            if used > 0:
                if cells is not None:
                    cells.take_tokens_now(held.client, limits.tokens_per_minute, used)
                else:
                    await self._call("take_tokens", held.client, limits.tokens_per_minute, used)
        if not held.reserved:
            return
        cost = 0.0
        if usage is not None and request.provider and request.provider != "cache":
            cost = (
                self.prices.cost(
                    request.provider,
                    request.upstream_model,
                    request.model,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.cached_tokens,
                    usage.cache_write_tokens,
                )
                or 0.0
            )
        period = held.period
        if self.clock() >= held.ends:  # the period ended meanwhile: nothing of it to release
            period = int(self.period(limits.budget_period).start)
            held.estimate = 0.0
        if cells is not None:
            spend = cells.settle_now(limits.budget_name, period, held.estimate, cost)
        else:
            try:
                spend = await self.store.settle(limits.budget_name, period, held.estimate, cost)
            except StateUnavailable:
                spend = await self._fall_back(
                    "settle", limits.budget_name, period, held.estimate, cost
                )
        self._gauge(limits.budget_name, limits, spend)
