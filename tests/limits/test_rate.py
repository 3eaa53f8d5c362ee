"""limits/rate.py: a worker's share of the limits, a key's own limits, and the 503."""

from __future__ import annotations

import pytest

from fkllmproxy.config.schema import KeyRateLimit, RateLimitConfig
from fkllmproxy.errors import RateLimited, StateStoreUnavailable
from fkllmproxy.limits import RateLimits, RateShare, build_rate_limits, refusal
from fkllmproxy.state import MemoryState
from fkllmproxy.state.base import Buckets, StateUnavailable
from fkllmproxy.state.buckets import Decision


class Unreachable(Buckets):
    """Buckets whose store fails every take (Redis down, fail-closed)."""

    async def take_token(self, bucket: str, capacity: int, refill_per_second: float) -> Decision:
        raise StateUnavailable("redis: connection refused")


class Recorded(Buckets):
    """Buckets that allow everything and remember what each take asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int, float]] = []

    async def take_token(self, bucket: str, capacity: int, refill_per_second: float) -> Decision:
        self.asked.append((bucket, capacity, refill_per_second))
        return Decision(True, capacity, capacity - 1, 0.0)


class TestRateShare:
    def test_one_process_takes_the_whole_limit(self) -> None:
        """With one worker (or Redis) the configured numbers are used as they are."""
        assert RateShare(10, 2.0).share(10, 2.0) == (10, 2.0)

    def test_each_worker_takes_its_share_rounded_up(self) -> None:
        """N workers with their own buckets each get 1/N, never less than one token."""
        assert RateShare(10, 3.0, divisor=4).share(10, 3.0) == (3, 0.75)
        assert RateShare(1, 1.0, divisor=4).share(1, 1.0) == (1, 0.25)


class TestRateLimits:
    async def test_own_limits_win_over_the_defaults(self) -> None:
        """A key's ``rate_limit`` sets its bucket; others get the defaults."""
        buckets = Recorded()
        rates = RateLimits(buckets, RateShare(100, 10.0, divisor=2))
        await rates.take("k", KeyRateLimit(capacity=6, refill_per_second=4.0))
        await rates.take("ip:1.2.3.4", None)
        assert buckets.asked == [("k", 3, 2.0), ("ip:1.2.3.4", 50, 5.0)]

    async def test_memory_buckets_refuse_past_the_capacity(self) -> None:
        """The memory store's plain-call take gives the same decisions as its coroutine."""
        rates = RateLimits(MemoryState(), RateShare(2, 0.001))
        decisions = [await rates.take("k", None) for _ in range(3)]
        assert [d.allowed for d in decisions] == [True, True, False]
        assert decisions[2].retry_after > 0

    async def test_unreachable_buckets_are_a_503(self) -> None:
        """A store that cannot be reached is ``StateStoreUnavailable``, not a 500 or a pass."""
        rates = RateLimits(Unreachable(), RateShare(2, 1.0))
        with pytest.raises(StateStoreUnavailable):
            await rates.take("k", None)

    def test_refusal_names_the_caller_and_the_wait(self) -> None:
        """The 429 says who was limited and carries Retry-After."""
        error = refusal(Decision(False, 2, 0, 4.0, retry_after=1.5), "'k'")
        assert isinstance(error, RateLimited)
        assert "'k'" in error.message and "1.5s" in error.message
        assert error.retry_after == 1.5


def test_build_divides_only_per_process_buckets() -> None:
    """Memory buckets with N workers share the limit; Redis's are one bucket for all."""
    config = RateLimitConfig(capacity=8, refill_per_second=4.0)
    memory = build_rate_limits(config, MemoryState(), workers=4, per_process=True)
    shared = build_rate_limits(config, MemoryState(), workers=4, per_process=False)
    assert memory is not None and memory.share.divisor == 4
    assert shared is not None and shared.share.divisor == 1
    off = RateLimitConfig(enabled=False)
    assert build_rate_limits(off, MemoryState(), workers=1, per_process=True) is None
