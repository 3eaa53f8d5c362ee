"""Requests per caller: this process's share of the limits, taken from the buckets.

``gate.admit`` calls ``RateLimits.take`` once per request with the caller's bucket
and its own limits (a key's ``rate_limit``, else the defaults); the buckets themselves
are a ``state.base.Buckets`` (memory or Redis).
"""

from __future__ import annotations

from dataclasses import dataclass

from fkllmproxy.config.schema import KeyRateLimit, RateLimitConfig
from fkllmproxy.errors import RateLimited, StateStoreUnavailable
from fkllmproxy.state.base import Buckets, StateUnavailable
from fkllmproxy.state.buckets import Decision

__all__ = ["RateLimits", "RateShare", "build_rate_limits", "refusal"]


@dataclass(frozen=True, slots=True)
class RateShare:
    """This process's share of the rate limits.

    With the memory backend each worker process keeps its own buckets, so with N
    workers each gets 1/N of every capacity and refill rate: the sum over workers is the
    configured limit, never N times it (exact when the kernel spreads connections
    evenly; Redis makes it exact always).
    """

    capacity: int
    refill_per_second: float
    divisor: int = 1

    def share(self, capacity: int, refill: float) -> tuple[int, float]:
        if self.divisor == 1:
            return capacity, refill
        return max(1, -(-capacity // self.divisor)), refill / self.divisor


class RateLimits:
    """One runtime's rate limiting: its ``RateShare`` of each bucket in ``buckets``."""

    __slots__ = ("_buckets", "_take_now", "share")

    def __init__(self, buckets: Buckets, share: RateShare) -> None:
        self.share = share
        self._buckets = buckets
        # Asked once: where a take never waits (memory) it is a plain call, no coroutine.
        self._take_now = buckets.take_now()

    async def take(self, bucket: str, own: KeyRateLimit | None) -> Decision:
        """Take a token from ``bucket`` under ``own`` limits (else the defaults).

        Raises ``StateStoreUnavailable`` (503) when the shared buckets cannot be reached
        and ``[state] on_failure = "closed"``; a refusal is a ``Decision``, not an error,
        so its headers still reach the client (``refusal`` makes the 429).
        """
        share = self.share
        capacity, refill = share.share(
            own.capacity if own else share.capacity,
            own.refill_per_second if own else share.refill_per_second,
        )
        take_now = self._take_now
        if take_now is not None:
            return take_now(bucket, capacity, refill)
        try:
            return await self._buckets.take_token(bucket, capacity, refill)
        except StateUnavailable:
            raise StateStoreUnavailable(
                "Rate limiting is unavailable (shared state store unreachable); try again shortly."
            ) from None


def refusal(decision: Decision, who: str) -> RateLimited:
    """The 429 for a refused ``decision``; ``who`` names the caller in the message."""
    return RateLimited(
        f"Rate limit exceeded for {who}; retry in {decision.retry_after:.1f}s.",
        retry_after=decision.retry_after,
    )


def build_rate_limits(
    config: RateLimitConfig, buckets: Buckets, *, workers: int, per_process: bool
) -> RateLimits | None:
    """The rate limits of ``[rate_limit]`` (``None`` when off). ``per_process``: each of
    the ``workers`` keeps its own buckets (memory), so each takes its share."""
    if not config.enabled:
        return None
    divisor = workers if per_process else 1
    return RateLimits(buckets, RateShare(config.capacity, config.refill_per_second, divisor))
