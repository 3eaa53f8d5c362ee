"""The Overview's live series: a bounded ring of samples of the cross-worker totals.

Every ``interval`` seconds a sampler takes the same snapshot ``/metrics`` answers
(totals over every worker) and keeps a point: time, request and failure counts, token
count, and the recent p50/p95/p99. Rates are differences between neighbouring points,
so each point costs a handful of floats and an hour at 5 s is 720 of them. The sampler
starts with the first console request of a process (a daemon nobody watches does no
sampling) and runs in the background, off the request path; with several workers each
one samples the shared totals, so whichever answers a poll shows the same numbers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Point", "Series"]

HOUR_SECS = 3600.0


@dataclass(frozen=True, slots=True)
class Point:
    at: float
    requests: int
    failed: int
    tokens: int
    p50: float | None
    p95: float | None
    p99: float | None


def point_of(snapshot: dict[str, Any], at: float) -> Point:
    """The sample a ``Metrics.snapshot`` makes."""
    latency = snapshot.get("latency_ms") or {}
    tokens = snapshot.get("tokens") or {}
    return Point(
        at=at,
        requests=int(snapshot.get("total_requests", 0)),
        failed=int(snapshot.get("failed_requests", 0)),
        tokens=int(tokens.get("prompt", 0)) + int(tokens.get("completion", 0)),
        p50=latency.get("p50"),
        p95=latency.get("p95"),
        p99=latency.get("p99"),
    )


class Series:
    """The last hour of points (at most ``HOUR_SECS / interval`` + 1), oldest first."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.points: collections.deque[Point] = collections.deque(
            maxlen=int(HOUR_SECS / interval) + 1
        )
        self._task: asyncio.Task[None] | None = None

    def add(self, point: Point) -> None:
        self.points.append(point)

    def rates(self, since: float = 0.0) -> list[dict[str, float | None]]:
        """Per-interval rates between neighbouring points newer than ``since``."""
        out: list[dict[str, float | None]] = []
        previous: Point | None = None
        for point in self.points:
            if previous is not None and point.at > since:
                span = point.at - previous.at
                requests = max(0, point.requests - previous.requests)
                failed = max(0, point.failed - previous.failed)
                out.append(
                    {
                        "t": round(point.at, 3),
                        "rps": round(requests / span, 3) if span > 0 else 0.0,
                        "error_rate": round(failed / requests, 4) if requests else 0.0,
                        "tokens_per_s": (
                            round(max(0, point.tokens - previous.tokens) / span, 3)
                            if span > 0
                            else 0.0
                        ),
                        "p50": point.p50,
                        "p95": point.p95,
                        "p99": point.p99,
                    }
                )
            previous = point
        return out

    def start(self, sample: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        """Begin sampling in the background (once; later calls do nothing)."""
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.get_running_loop().create_task(self._run(sample))

    async def _run(self, sample: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        while True:
            with contextlib.suppress(Exception):  # a bad read skips one point, no more
                self.add(point_of(await sample(), time.time()))
            await asyncio.sleep(self.interval)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
