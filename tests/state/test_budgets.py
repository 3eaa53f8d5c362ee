"""Budget periods, reservation and settlement, and token buckets, with an injected clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fkllmproxy.state.budgets import (
    BudgetStore,
    MemoryBudgets,
    SharedFileBudgets,
    period_bounds,
)


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


def test_sequential_reservations_stop_once_spend_reaches_the_limit(tmp_path: Path) -> None:
    """A call is admitted while spend is under the limit; settled spend is the real cost."""

    async def run(a: BudgetStore, b: BudgetStore) -> None:
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

    for a, b in stores(tmp_path):
        asyncio.run(run(a, b))


def test_concurrent_calls_overshoot_by_at_most_the_in_flight_estimates(tmp_path: Path) -> None:
    """Many calls reserving at once against a small budget: the ones admitted are those
    whose reservation found room, and spend ends below the limit plus one estimate."""

    async def call(store: BudgetStore, limit: float, estimate: float, cost: float) -> bool:
        if not (await store.reserve("k", 1, limit, estimate)).allowed:
            return False
        await asyncio.sleep(0)  # all reserve before any settles
        await store.settle("k", 1, estimate, cost)
        return True

    async def run(a: BudgetStore, b: BudgetStore) -> None:
        limit, estimate, cost = 1.0, 0.25, 0.2
        results = await asyncio.gather(
            *(call(a if i % 2 else b, limit, estimate, cost) for i in range(50))
        )
        admitted = sum(results)
        assert admitted == 4  # reserved 0, 0.25, 0.5, 0.75 < 1.0 before any settled
        spend = await a.read("k", 1)
        assert spend.reserved == 0.0
        assert limit - cost <= spend.spent <= limit + estimate

    for a, b in stores(tmp_path):
        asyncio.run(run(a, b))


def test_a_seed_applies_only_where_nothing_is_recorded(tmp_path: Path) -> None:
    """The ledger's spend starts a budget; a second worker's seed does not reset it."""

    async def run(a: BudgetStore, b: BudgetStore) -> None:
        await a.seed("k", 1, 0.7)
        await a.settle("k", 1, 0.0, 0.1)
        await b.seed("k", 1, 0.7)
        assert round((await b.read("k", 1)).spent, 9) == 0.8

    for a, b in stores(tmp_path):
        asyncio.run(run(a, b))


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
