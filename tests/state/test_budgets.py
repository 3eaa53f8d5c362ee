"""Budget periods, reservation and settlement, and token buckets, with an injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fkllmproxy.state.budgets import (
    BudgetStore,
    MemoryBudgets,
    SharedFileBudgets,
    period_bounds,
)
from fkllmproxy.state.redis import RedisState
from tests.state.conftest import RedisServer


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("day", "2026-12-02T16:45:00", "2026-12-02T00:00:00", "2026-12-03T00:00:00"),
        ("day", "2026-12-31T23:59:59", "2026-12-31T00:00:00", "2027-01-01T00:00:00"),
        # Weeks start on Monday: 2026-12-02 is a Wednesday, 2026-11-30 the Monday.
        ("week", "2026-12-02T16:45:00", "2026-11-30T00:00:00", "2026-12-07T00:00:00"),
        ("week", "2026-11-30T00:00:00", "2026-11-30T00:00:00", "2026-12-07T00:00:00"),
        ("week", "2026-12-06T23:59:59", "2026-11-30T00:00:00", "2026-12-07T00:00:00"),
        ("month", "2026-12-02T16:45:00", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
        ("month", "2028-02-29T12:00:00", "2028-02-01T00:00:00", "2028-03-01T00:00:00"),
        ("month", "2027-02-28T23:59:59", "2027-02-01T00:00:00", "2027-03-01T00:00:00"),
    ],
)
def test_calendar_periods_in_utc(period: str, now: str, start: str, end: str) -> None:
    """Days, weeks from Monday and months are calendar periods in UTC."""
    assert period_bounds(period, ts(now)) == (ts(start), ts(end))


def stores(tmp_path: Path) -> list[tuple[BudgetStore, BudgetStore]]:
    """Pairs that share spend: one process's memory, and two mappings of one file (two workers)."""
    memory = MemoryBudgets()
    path = tmp_path / "budgets.bin"
    return [(memory, memory), (SharedFileBudgets(path), SharedFileBudgets(path))]


async def sequential(a: BudgetStore, b: BudgetStore) -> None:
    """Calls taking turns between ``a`` and ``b``, each settled before the next."""
    admitted = 0
    for i in range(100):
        store = a if i % 2 else b
        if not (await store.reserve("k", 1, 1.0, 0.5)).allowed:
            break
        admitted += 1
        await store.settle("k", 1, 0.5, 0.3)
    assert admitted == 4  # 0, 0.3, 0.6, 0.9 are under 1.0; 1.2 is not
    spend = await a.read("k", 1)
    assert (round(spend.spent, 9), spend.reserved) == (1.2, 0.0)
    # A new period is a fresh record.
    assert (await b.reserve("k", 2, 1.0, 0.5)).allowed


LIMIT, ESTIMATE, COST = 1.0, 0.25, 0.2


async def interleaved(a: BudgetStore, b: BudgetStore) -> int:
    """Fifty calls at once over ``a`` and ``b``; how many were admitted. Spend ends
    within one call's cost of the limit: below it only by what the refused calls'
    moment left unspent, above it by at most the in-flight reservations' real cost."""

    async def call(store: BudgetStore) -> bool:
        if not (await store.reserve("k", 1, LIMIT, ESTIMATE)).allowed:
            return False
        await asyncio.sleep(0)  # let the others reserve before this one settles
        await store.settle("k", 1, ESTIMATE, COST)
        return True

    admitted = sum(await asyncio.gather(*(call(a if i % 2 else b) for i in range(50))))
    spend = await a.read("k", 1)
    assert spend.reserved == 0.0
    assert LIMIT - COST <= spend.spent <= LIMIT + ESTIMATE
    assert round(spend.spent, 9) == round(admitted * COST, 9)
    return admitted


async def seeded(a: BudgetStore, b: BudgetStore) -> None:
    """The ledger's spend starts a budget; a second worker's seed does not reset it."""
    await a.seed("k", 1, 0.7)
    await a.settle("k", 1, 0.0, 0.1)
    await b.seed("k", 1, 0.7)
    assert round((await b.read("k", 1)).spent, 9) == 0.8


def test_sequential_reservations_stop_once_spend_reaches_the_limit(tmp_path: Path) -> None:
    """A call is admitted while spend is under the limit; settled spend is the real cost."""
    for a, b in stores(tmp_path):
        asyncio.run(sequential(a, b))


def test_concurrent_calls_overshoot_by_at_most_the_in_flight_estimates(tmp_path: Path) -> None:
    """Many calls reserving at once against a small budget: the ones admitted are those
    whose reservation found room, and spend ends below the limit plus one estimate."""
    for a, b in stores(tmp_path):
        # Every call reserves before any settles: 0, 0.25, 0.5, 0.75 found room.
        assert asyncio.run(interleaved(a, b)) == 4


def test_a_seed_applies_only_where_nothing_is_recorded(tmp_path: Path) -> None:
    for a, b in stores(tmp_path):
        asyncio.run(seeded(a, b))


class TestRedisBudgets:
    """The same checks on one redis-server through two clients (two daemons)."""

    @staticmethod
    def run(redis_server: RedisServer, check: Callable[[BudgetStore, BudgetStore], Any]) -> Any:
        async def both() -> Any:
            a, b = RedisState(redis_server.url), RedisState(redis_server.url)
            try:
                return await check(a.shared_budgets(), b.shared_budgets())
            finally:
                await a.aclose()
                await b.aclose()

        return asyncio.run(both())

    def test_sequential_reservations_stop_at_the_limit(self, redis_server: RedisServer) -> None:
        self.run(redis_server, sequential)

    def test_interleaved_calls_overshoot_by_at_most_the_in_flight(
        self, redis_server: RedisServer
    ) -> None:
        """Reservations from two clients interleave on the server; each is atomic, so
        the calls admitted are those that found room (at least the four that fit)."""
        admitted = self.run(redis_server, interleaved)
        assert 4 <= admitted <= 6  # 6 * 0.2 = 1.2 = LIMIT + COST: the bound above

    def test_a_seed_applies_only_where_nothing_is_recorded(self, redis_server: RedisServer) -> None:
        self.run(redis_server, seeded)


def test_token_bucket_is_taken_after_and_refills_by_the_minute(tmp_path: Path) -> None:
    """Real usage is taken after the call (it may go below zero) and refills at
    capacity / 60 per second of the injected clock."""
    now = [1000.0]
    store = MemoryBudgets(clock=lambda: now[0])

    async def run() -> None:
        assert await store.tokens_left("k", 600) == 600
        await store.take_tokens("k", 600, 900)
        assert await store.tokens_left("k", 600) == -300
        now[0] += 30  # +300
        assert await store.tokens_left("k", 600) == 0
        now[0] += 1
        assert await store.tokens_left("k", 600) == 10
        now[0] += 3600
        assert await store.tokens_left("k", 600) == 600

    asyncio.run(run())
