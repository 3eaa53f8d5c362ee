"""From the model name a client sends to the provider that answers it.

A model maps to an ordered list of targets (provider + upstream model). A request goes
to the first target; a retryable failure (connect error, timeout, 5xx, 429, a bad
answer) moves on to the next one at once, and when every target has had its turn the
list is tried again from the top, each target waiting out its backoff, until
``[retry] max_attempts`` attempts are spent (every target gets at least one) or the
request's deadline would pass. A request the provider refused as the client's own fault
goes straight back to the client.

- **Backoff**: a target that failed waits ``backoff_initial_ms * 2**(n-1)`` (capped at
  ``backoff_max_ms``, with full jitter) before its n-th retry within one request.
- **429**: a ``Retry-After`` up to ``max_retry_after_secs`` is honoured as that
  target's minimum wait; a longer one takes the target out of this request at once.
- **Weights**: neighbouring targets that all give a ``weight`` form one group sharing a
  place in the order; each request puts the group's targets in a random order drawn in
  proportion to their weights (so the first pick splits load by weight and the others
  remain fallbacks). A target without a weight keeps its place. A request carrying the
  ``[routing] affinity_header`` gets the order that header's value always gets
  (``routing/targets.py``), so a session stays on one healthy target.
- **Circuit breakers**: a target whose provider's circuit is open is skipped. When all
  are open, ``[circuit_breaker] when_all_open`` decides: ``fail_fast`` answers 503, and
  ``least_recently_failed`` tries the one whose last failure is the oldest.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from fkllmproxy.config.schema import Config, ModelConfig, Target
from fkllmproxy.errors import (
    NoProviderAvailable,
    NotFound,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from fkllmproxy.observability.attempts import AttemptRecorder
from fkllmproxy.providers import Provider, StreamingCompletion
from fkllmproxy.routing.breaker import CircuitBreakers
from fkllmproxy.routing.targets import Leg, Route
from fkllmproxy.routing.timeouts import AttemptClock, TimeLimits, first_chunk, guard_stream

__all__ = ["Attempted", "Router"]

T = TypeVar("T")


@dataclass(slots=True)
class Attempted:
    """What routing did for one request: who answered, after how many tries."""

    provider: str | None = None
    upstream_model: str | None = None
    attempts: int = 0


@dataclass(slots=True)
class _Turns:
    """A leg's record within one request."""

    failures: int = 0
    not_before: float = 0.0
    dropped: bool = False


class Router:
    """Resolves model names and runs a call against a model's targets.

    ``clock``, ``sleep`` and ``draw`` (uniform in [0, 1)) are injectable for tests.
    """

    def __init__(
        self,
        config: Config,
        providers: Mapping[str, Provider],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        draw: Callable[[], float] = random.random,
        record: AttemptRecorder | None = None,
    ) -> None:
        self.providers = providers
        # Counting and logging each attempt; absent (tests), attempts are only logged.
        self._record = record or AttemptRecorder(None)
        self.models: dict[str, ModelConfig] = {m.name: m for m in config.models}
        self.model_names = sorted(self.models)
        self.breakers = CircuitBreakers(providers, config.circuit_breaker, clock=clock)
        self._clock = clock
        self._sleep = sleep
        self._draw = draw
        retry = config.retry
        self._max_attempts = max(retry.max_attempts, 1)
        self._backoff_initial = retry.backoff_initial_ms / 1000.0
        self._backoff_max = retry.backoff_max_ms / 1000.0
        self._max_retry_after = retry.max_retry_after_secs
        self._deadline = retry.deadline_secs
        self._when_all_open = config.circuit_breaker.when_all_open
        header = config.routing.affinity_header.strip().lower()
        self._affinity_header = header.encode("latin-1") if header else None
        self._live: set[AttemptClock] = set()  # attempts waiting on a provider right now
        # Set when circuit state is shared across processes: brings the local breakers
        # up to date (a no-op while they are fresh) before each routing decision.
        self.refresh_circuits: Callable[[], Awaitable[None]] | None = None
        limits = {p.name: TimeLimits.of(p) for p in config.providers}
        self._routes = {
            m.name: Route(
                [
                    Leg(t, providers[t.provider], self.breakers[t.provider], limits[t.provider])
                    for t in m.targets
                ]
            )
            for m in config.models
        }

    def resolve(self, name: Any) -> ModelConfig:
        """The model block for ``name``; ``NotFound`` lists the valid names."""
        model = self.models.get(name) if isinstance(name, str) else None
        if model is None:
            valid = ", ".join(self.model_names)
            raise NotFound(
                f"The model {name!r} does not exist. Available models: {valid}", param="model"
            )
        return model

    def affinity_of(self, model: ModelConfig, headers: list[tuple[bytes, bytes]]) -> str | None:
        """The affinity header's value in ``headers`` (ASGI's), when ``model`` has weights
        for it to matter; otherwise nothing is looked up."""
        name = self._affinity_header
        if name is None or not self._routes[model.name].weighted:
            return None
        for key, value in headers:
            if key == name:
                return value.decode("latin-1") or None
        return None

    async def call(
        self,
        model: ModelConfig,
        attempt: Callable[[Provider, Target], Awaitable[T]],
        attempted: Attempted,
        *,
        stream: bool = False,
        affinity: str | None = None,
    ) -> T:
        """Run ``attempt`` against the model's targets until one succeeds.

        ``stream`` says the answer is a stream: its first chunk is then awaited here
        (under ``first_byte_timeout_secs``), so a stream that fails before sending
        anything falls back like any other failure. ``affinity`` (the affinity header's
        value) fixes the order of weighted targets for every request that carries it.
        """
        if self.refresh_circuits is not None:
            await self.refresh_circuits()
        legs = self._routes[model.name].ordered(self._draw, affinity)
        deadline = None if self._deadline is None else self._clock() + self._deadline
        budget = max(self._max_attempts, len(legs))
        turns = [_Turns() for _ in legs]
        last: UpstreamError | None = None
        while attempted.attempts < budget:
            progressed = False
            for leg, turn in zip(legs, turns, strict=True):
                if attempted.attempts >= budget:
                    break
                if turn.dropped or leg.breaker.state == "open":
                    continue
                wait = turn.not_before - self._clock()
                if deadline is not None and self._clock() + max(wait, 0.0) >= deadline:
                    turn.dropped = True
                    continue
                if wait > 0:
                    await self._sleep(wait)
                if not leg.breaker.allow():
                    continue  # another request holds the half-open probe
                progressed = True
                try:
                    return await self._attempt(leg, attempt, attempted, stream, deadline, True)
                except UpstreamError as exc:
                    if not exc.retryable:
                        raise
                    last = exc
                    self._after_failure(turn, exc)
            if not progressed:
                break
        if attempted.attempts == 0:
            return await self._all_open(model, legs, attempt, attempted, stream, deadline)
        assert last is not None
        raise self._final_error(model, legs, last)

    async def _attempt(
        self,
        leg: Leg,
        attempt: Callable[[Provider, Target], Awaitable[T]],
        attempted: Attempted,
        stream: bool,
        deadline: float | None,
        allowed: bool,
    ) -> T:
        """``_attempt_at``, with its outcome counted, logged and traced (observability)."""
        started = time.perf_counter()
        try:
            result = await self._attempt_at(leg, attempt, attempted, stream, deadline, allowed)
        except Exception as exc:
            self._record(leg.provider.name, leg.target.model, attempted.attempts, started, exc)
            raise
        self._record(leg.provider.name, leg.target.model, attempted.attempts, started)
        return result

    async def _attempt_at(
        self,
        leg: Leg,
        attempt: Callable[[Provider, Target], Awaitable[T]],
        attempted: Attempted,
        stream: bool,
        deadline: float | None,
        allowed: bool,
    ) -> T:
        """One attempt at ``leg`` under its time limits, reporting the outcome to its breaker.

        ``allowed`` says the breaker admitted it (it may hold the half-open probe, to be
        given back if the attempt ends without a verdict).
        """
        attempted.attempts += 1
        attempted.provider = leg.provider.name
        attempted.upstream_model = leg.target.model
        breaker = leg.breaker
        timer = AttemptClock(leg.provider.name, leg.limits, self._clock(), deadline, self._clock)
        until = timer.first_byte_end(stream)
        result: Any = None
        first = b""
        self._live.add(timer)
        try:
            async with asyncio.timeout(timer.remaining(until)) as timer.current:
                result = await attempt(leg.provider, leg.target)
                if isinstance(result, StreamingCompletion):
                    first = await first_chunk(result, leg.provider.name)
        except TimeoutError:
            self._live.discard(timer)
            await _close_quietly(result)
            if timer.aborted:
                breaker.release()
            else:
                breaker.record_failure()
            raise timer.timed_out(until, stream, first_byte=True) from None
        except UpstreamError as exc:
            self._live.discard(timer)
            await _close_quietly(result)
            if exc.retryable:
                breaker.record_failure()
            else:
                breaker.record_success()  # it answered: the request was at fault
            raise
        except BaseException:
            self._live.discard(timer)
            await _close_quietly(result)
            if allowed:
                breaker.release()
            raise
        breaker.record_success()
        if not isinstance(result, StreamingCompletion):
            self._live.discard(timer)
        else:
            done = partial(self._live.discard, timer)
            guarded = guard_stream(first, result, timer, breaker.record_failure, done)
            original = result

            async def aclose() -> None:
                done()
                await guarded.aclose()
                inner = getattr(original.chunks, "aclose", None)
                if inner is not None:
                    await inner()
                await original.aclose()

            result = StreamingCompletion(
                chunks=guarded, aclose=aclose, usage=original.usage, api=original.api
            )
        return result

    def abort_in_flight(self) -> int:
        """End every attempt still waiting on a provider with ``ShuttingDown`` (503).

        The daemon calls this when its drain deadline passes, so that what is still
        running ends with an answer (a 503, or an error event closing a stream) rather
        than a torn connection. Returns how many attempts it ended.
        """
        live = list(self._live)
        for timer in live:
            timer.abort()
        return len(live)

    def _after_failure(self, turn: _Turns, error: UpstreamError) -> None:
        """Schedule the leg's next turn: backoff with jitter, or the provider's Retry-After."""
        turn.failures += 1
        ceiling = min(self._backoff_max, self._backoff_initial * 2 ** (turn.failures - 1))
        delay = self._draw() * ceiling
        if error.retry_after is not None:
            if error.retry_after > self._max_retry_after:
                turn.dropped = True
                return
            delay = max(delay, error.retry_after)
        turn.not_before = self._clock() + delay

    async def _all_open(
        self,
        model: ModelConfig,
        legs: list[Leg],
        attempt: Callable[[Provider, Target], Awaitable[T]],
        attempted: Attempted,
        stream: bool,
        deadline: float | None,
    ) -> T:
        """No target could be tried because every circuit is open (or probing)."""
        if self._when_all_open == "least_recently_failed":
            oldest = min(legs, key=lambda leg: leg.breaker.last_failure_at or float("-inf"))
            return await self._attempt(oldest, attempt, attempted, stream, deadline, False)
        names = ", ".join(dict.fromkeys(leg.provider.name for leg in legs))
        retry_in = min(leg.breaker.retry_in() for leg in legs)
        raise NoProviderAvailable(
            f"no provider is available for model {model.name!r}: every circuit is open "
            f"({names}); next probe in {retry_in:.0f}s",
            retry_after=max(retry_in, 1.0),
        )

    @staticmethod
    def _final_error(model: ModelConfig, legs: list[Leg], last: UpstreamError) -> UpstreamError:
        if len(legs) > 1 and isinstance(last, UpstreamUnavailable):
            return UpstreamUnavailable(
                f"all {len(legs)} targets of model {model.name!r} failed; last: {last.message}",
                provider=last.provider,
                upstream_status=last.upstream_status,
                retry_after=last.retry_after,
            )
        if isinstance(last, UpstreamTimeout | UpstreamUnavailable):
            return last
        return UpstreamUnavailable(last.message, provider=last.provider)


async def _close_quietly(result: object) -> None:
    """Release a stream we will not relay; its own failure is not worth reporting."""
    if isinstance(result, StreamingCompletion):
        try:
            await result.aclose()
        except Exception:
            pass
