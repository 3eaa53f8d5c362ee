"""Token buckets with an injected clock: exhaustion, refill timing, bounds, reload."""

from __future__ import annotations

import pytest

from fkllmproxy.state.buckets import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


class TestRateLimiter:
    def test_burst_up_to_capacity_then_refused(self, clock: Clock) -> None:
        """A fresh bucket allows exactly ``capacity`` requests at once."""
        limiter = RateLimiter(3, 1.0, clock=clock)
        decisions = [limiter.take("a") for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert [d.remaining for d in decisions] == [2, 1, 0, 0]
        assert all(d.limit == 3 for d in decisions)

    def test_retry_after_is_time_to_next_token(self, clock: Clock) -> None:
        """An empty bucket at 2 tokens/s says come back in half a second."""
        limiter = RateLimiter(1, 2.0, clock=clock)
        assert limiter.take("a").allowed
        refused = limiter.take("a")
        assert not refused.allowed
        assert refused.retry_after == pytest.approx(0.5)
        assert refused.headers()[2] == (b"x-ratelimit-reset", b"1")

    def test_refill_follows_the_clock(self, clock: Clock) -> None:
        """Tokens come back at refill_per_second, never beyond capacity."""
        limiter = RateLimiter(2, 1.0, clock=clock)
        limiter.take("a")
        limiter.take("a")
        clock.now += 0.99
        assert not limiter.take("a").allowed
        clock.now += 0.02
        assert limiter.take("a").allowed
        clock.now += 3600
        assert [limiter.take("a").allowed for _ in range(3)] == [True, True, False]

    def test_reset_header_is_time_until_full(self, clock: Clock) -> None:
        limiter = RateLimiter(10, 2.0, clock=clock)
        for _ in range(4):
            decision = limiter.take("a")
        assert decision.reset_secs == pytest.approx(2.0)
        headers = dict(decision.headers())
        assert headers == {
            b"x-ratelimit-limit": b"10",
            b"x-ratelimit-remaining": b"6",
            b"x-ratelimit-reset": b"2",
        }

    def test_callers_have_separate_buckets(self, clock: Clock) -> None:
        limiter = RateLimiter(1, 1.0, clock=clock)
        assert limiter.take("a").allowed
        assert not limiter.take("a").allowed
        assert limiter.take("b").allowed

    def test_own_limits_override_defaults(self, clock: Clock) -> None:
        """A key's own capacity and refill apply to its bucket only."""
        limiter = RateLimiter(100, 100.0, clock=clock)
        own = [limiter.take("small", 2, 0.5) for _ in range(3)]
        assert [d.allowed for d in own] == [True, True, False]
        assert own[-1].limit == 2
        assert own[-1].retry_after == pytest.approx(2.0)
        assert limiter.take("big").limit == 100

    def test_memory_is_bounded(self, clock: Clock) -> None:
        """However many callers appear, at most max_tracked buckets are kept."""
        limiter = RateLimiter(1, 1.0, max_tracked=16, clock=clock)
        for i in range(10_000):
            limiter.take(f"ip:10.0.{i // 256}.{i % 256}")
        assert limiter.tracked == 16

    def test_least_recently_used_is_forgotten_first(self, clock: Clock) -> None:
        limiter = RateLimiter(1, 0.001, max_tracked=16, clock=clock)
        limiter.take("busy")
        for i in range(15):
            limiter.take(f"other-{i}")
        assert not limiter.take("busy").allowed  # touched: now most recent
        limiter.take("newcomer")  # evicts other-0, not busy
        assert not limiter.take("busy").allowed
        assert limiter.take("other-0").allowed  # forgotten, so a full bucket again
