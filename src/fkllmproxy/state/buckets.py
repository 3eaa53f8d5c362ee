"""Token buckets per caller, in memory, with bounded memory and an injectable clock.

A bucket holds ``capacity`` tokens and gains ``refill_per_second``; each request takes
one. The table of buckets is an LRU bounded by ``max_tracked_callers``: a forgotten
caller comes back with a full bucket, which errs on the generous side only for callers
idle long enough to fall out.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Decision", "RateLimiter"]


@dataclass(slots=True)
class Decision:
    """The outcome of one take: allowed or not, and the numbers for the headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_secs: float
    retry_after: float = 0.0

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(max(0, int(self.reset_secs + 0.999))).encode()),
        ]


class RateLimiter:
    """Buckets by caller name, least recently used forgotten first; ``take`` is O(1)."""

    def __init__(
        self,
        capacity: int,
        refill_per_second: float,
        *,
        max_tracked: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.refill = refill_per_second
        self._max = max_tracked
        self._clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    @property
    def tracked(self) -> int:
        """How many callers have a bucket right now (at most ``max_tracked``)."""
        return len(self._buckets)

    def take(
        self, caller: str, capacity: int | None = None, refill: float | None = None
    ) -> Decision:
        """Take one token from ``caller``'s bucket (own limits override the defaults)."""
        cap = capacity or self.capacity
        rate = refill or self.refill
        now = self._clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = [float(cap), now]
            self._buckets[caller] = bucket
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(caller)
            tokens = min(cap, bucket[0] + (now - bucket[1]) * rate)
            bucket[0], bucket[1] = tokens, now
        tokens = bucket[0]
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return Decision(True, cap, int(bucket[0]), (cap - bucket[0]) / rate)
        wait = (1.0 - tokens) / rate
        return Decision(False, cap, 0, (cap - tokens) / rate, retry_after=wait)
