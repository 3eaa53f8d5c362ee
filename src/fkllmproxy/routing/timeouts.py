"""Time limits for one attempt, enforced here so that every provider adapter gets them.

Per provider (``[[providers]]``):

- ``connect_timeout_secs``: opening the connection (enforced by the HTTP client);
- ``first_byte_timeout_secs``: for streams, from sending the request to the first chunk
  of the answer. Non-streaming answers arrive whole, so only the total bounds them;
- ``idle_timeout_secs``: for streams, the longest gap between two chunks;
- ``timeout_secs``: the whole attempt, from sending to the last byte, streams included.

On top of those, ``[retry] deadline_secs`` bounds the client's whole request across
attempts and waits. Whichever limit comes first ends the attempt with ``UpstreamTimeout``.
A stream that fails before its first chunk is an ordinary failed attempt (the router
may fall back); after that, the failure reaches the client as an error event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import ShuttingDown, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from fkllmproxy.providers import StreamingCompletion

__all__ = ["AttemptClock", "TimeLimits", "guard_stream"]


@dataclass(frozen=True, slots=True)
class TimeLimits:
    """One provider's limits, in seconds (``first_byte`` and ``idle`` never above ``total``)."""

    total: float
    first_byte: float
    idle: float

    @classmethod
    def of(cls, provider: ProviderConfig) -> TimeLimits:
        total = provider.timeout_secs
        return cls(
            total=total,
            first_byte=min(provider.first_byte_timeout_secs or total, total),
            idle=min(provider.idle_timeout_secs or total, total),
        )


@dataclass(slots=True, eq=False)
class AttemptClock:
    """When one attempt must be over, and which limit that is (for the error message).

    ``current`` is the timer the attempt is waiting under right now; ``abort()`` makes
    it fire at once, which is how a stopping daemon ends what is still in flight with an
    answer the client can read.
    """

    provider: str
    limits: TimeLimits
    started: float
    deadline: float | None
    clock: Callable[[], float] = time.monotonic
    current: asyncio.Timeout | None = None
    aborted: bool = False

    def abort(self) -> None:
        """End the attempt now with ``ShuttingDown``."""
        self.aborted = True
        if self.current is not None and not self.current.expired():
            self.current.reschedule(asyncio.get_running_loop().time())

    @property
    def end(self) -> float:
        """The attempt's last moment: its total, or the request's deadline if sooner."""
        own = self.started + self.limits.total
        return own if self.deadline is None else min(own, self.deadline)

    def first_byte_end(self, stream: bool) -> float:
        return min(self.end, self.started + self.limits.first_byte) if stream else self.end

    def remaining(self, until: float) -> float:
        return max(0.0, until - self.clock())

    def timed_out(self, until: float, stream: bool, first_byte: bool) -> UpstreamError:
        """The error for an attempt that reached ``until``, naming the limit that ran out."""
        name = self.provider
        if self.aborted:
            return ShuttingDown(
                "The proxy is shutting down and its drain deadline ended this request.",
                provider=name,
            )
        if self.deadline is not None and until >= self.deadline:
            text = f"the request's deadline passed while waiting for provider {name!r}"
        elif until >= self.started + self.limits.total:
            text = f"provider {name!r} did not finish within {self.limits.total:g}s (timeout_secs)"
        elif first_byte and stream:
            text = (
                f"provider {name!r} sent nothing within {self.limits.first_byte:g}s"
                " (first_byte_timeout_secs)"
            )
        else:
            text = f"provider {name!r} stalled for {self.limits.idle:g}s mid-stream (idle_timeout_secs)"
        return UpstreamTimeout(text, provider=name)


async def first_chunk(result: StreamingCompletion, provider: str) -> Any:
    """The first chunk (bytes, or a canonical event) of a stream; a stream that ends at once is a failed attempt."""
    try:
        return await anext(aiter(result.chunks))
    except StopAsyncIteration:
        raise UpstreamUnavailable(
            f"provider {provider!r} ended the stream before sending anything", provider=provider
        ) from None


async def guard_stream(
    first: Any,
    result: StreamingCompletion,
    timer: AttemptClock,
    on_failure: Callable[[], None],
    on_done: Callable[[], None],
) -> AsyncGenerator[Any, None]:
    """Yield ``first``, then the rest of ``result`` under the idle and total limits.

    ``on_failure`` is called when the provider fails mid-stream (the breaker counts it),
    ``on_done`` when the stream is over, however it ended. Only the wait for the next
    chunk is timed: time the client takes to read does not count against the provider.
    """
    try:
        yield first
        chunks = aiter(result.chunks)
        idle = timer.limits.idle
        end = timer.end
        while True:
            now = timer.clock()
            until = min(now + idle, end)
            try:
                async with asyncio.timeout(until - now) as timer.current:
                    if timer.aborted:
                        raise TimeoutError
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError:
                if not timer.aborted:
                    on_failure()
                raise timer.timed_out(until, stream=True, first_byte=False) from None
            except UpstreamError:
                on_failure()
                raise
            yield chunk
    finally:
        on_done()
