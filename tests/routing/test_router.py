"""Fallback, retries, backoff, Retry-After, weights, breakers and time limits of the router.

Providers are scripted fakes; time is an injected clock whose ``sleep`` only advances it,
except for the time-limit tests, which need the event loop's own timers and use limits
of a few tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest

from fkllmproxy.config.schema import Config, Target
from fkllmproxy.errors import (
    NoProviderAvailable,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from fkllmproxy.observability.attempts import AttemptRecorder
from fkllmproxy.observability.metrics import Metrics
from fkllmproxy.providers import Completion, Provider, StreamingCompletion
from fkllmproxy.routing import Attempted, Router

OK = Completion(body=b"{}")


class Clock:
    """Monotonic time that moves only when the router sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


class Fake(Provider):
    """Answers from a script: each step is a Completion, an exception, or a callable."""

    type = "fake"

    def __init__(self, name: str, steps: list[Any] | None = None) -> None:
        self.name = name
        self.steps = list(steps or [])
        self.calls = 0

    async def chat(self, request: Any) -> Completion | StreamingCompletion:
        self.calls += 1
        step = self.steps.pop(0) if self.steps else OK
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            result: Completion | StreamingCompletion = await step()
            return result
        return step  # type: ignore[no-any-return]


def failing(name: str, status: int = 500, retry_after: float | None = None) -> UpstreamError:
    return UpstreamUnavailable(
        f"{name} answered {status}", provider=name, upstream_status=status, retry_after=retry_after
    )


def config(targets: list[dict[str, Any]], **sections: Any) -> Config:
    names = dict.fromkeys(t["provider"] for t in targets)
    data = {
        "providers": [
            {
                "name": n,
                "type": "mock",
                **sections.get("provider", {}),
            }
            for n in names
        ],
        "models": [{"name": "m", "targets": targets}],
        **{k: v for k, v in sections.items() if k != "provider"},
    }
    return msgspec.convert(data, Config)


def router_for(
    fakes: list[Fake],
    *,
    weights: list[float | None] | None = None,
    draw: Callable[[], float] = lambda: 1.0,
    clock: Clock | None = None,
    **sections: Any,
) -> tuple[Router, Clock]:
    clock = clock or Clock()
    weights = weights or [None] * len(fakes)
    targets = [
        {"provider": f.name, "model": f"{f.name}-model", **({"weight": w} if w else {})}
        for f, w in zip(fakes, weights, strict=True)
    ]
    cfg = config(targets, **sections)
    router = Router(cfg, {f.name: f for f in fakes}, clock=clock, sleep=clock.sleep, draw=draw)
    return router, clock


async def run(router: Router, attempted: Attempted | None = None, stream: bool = False) -> Any:
    async def attempt(provider: Provider, target: Target) -> Any:
        return await provider.chat(target)

    return await router.call(router.resolve("m"), attempt, attempted or Attempted(), stream=stream)


class TestFallback:
    async def test_next_target_answers_after_a_retryable_failure(self) -> None:
        a, b = Fake("a", [failing("a")]), Fake("b")
        router, clock = router_for([a, b])
        attempted = Attempted()
        assert await run(router, attempted) is OK
        assert (attempted.provider, attempted.upstream_model, attempted.attempts) == (
            "b",
            "b-model",
            2,
        )
        assert clock.sleeps == [], "moving to a fresh target does not wait"

    async def test_each_attempt_is_counted_in_the_metrics_it_was_given(self) -> None:
        """The recorder built with the runtime counts every attempt, by provider and outcome;
        one built without metrics ([metrics] enabled = false) counts nothing anywhere."""
        metrics = Metrics(window=64)
        a, b = Fake("a", [failing("a")]), Fake("b")
        cfg = config([{"provider": "a", "model": "a-model"}, {"provider": "b", "model": "b-model"}])
        clock = Clock()
        router = Router(
            cfg, {"a": a, "b": b}, clock=clock, sleep=clock.sleep, record=AttemptRecorder(metrics)
        )
        assert await run(router) is OK
        counted = {
            (labels["provider"], labels["outcome"]): value
            for name, labels, value in prometheus(metrics)
            if name == "fkllm_upstream_requests_total"
        }
        assert counted == {("a", "error"): 1.0, ("b", "success"): 1.0}

    async def test_request_fault_goes_back_at_once(self) -> None:
        """An upstream 4xx caused by the request is not retried and counts as the provider alive."""
        rejected = UpstreamRejected("bad", status=400, provider="a")
        a, b = Fake("a", [failing("a"), rejected]), Fake("b")
        router, _ = router_for([a, b], retry={"max_attempts": 1})
        await run(router)  # a fails once, b answers
        with pytest.raises(UpstreamRejected):
            await run(router)
        assert b.calls == 1
        assert router.breakers["a"].consecutive_failures == 0

    async def test_every_target_gets_a_turn_even_past_max_attempts(self) -> None:
        fakes = [Fake(n, [failing(n)]) for n in "abc"]
        router, _ = router_for([*fakes, Fake("d")], retry={"max_attempts": 1})
        attempted = Attempted()
        await run(router, attempted)
        assert attempted.attempts == 4 and attempted.provider == "d"

    async def test_all_failing_gives_502_naming_the_model(self) -> None:
        a, b = Fake("a", [failing("a")] * 5), Fake("b", [failing("b")] * 5)
        router, _ = router_for([a, b], retry={"max_attempts": 2})
        with pytest.raises(UpstreamUnavailable) as info:
            await run(router)
        assert info.value.status == 502
        assert "all 2 targets of model 'm' failed" in info.value.message
        assert (a.calls, b.calls) == (1, 1)


class TestRetries:
    async def test_single_target_retried_with_exponential_capped_backoff(self) -> None:
        """draw() = 1 takes the top of the jitter range: 0.1, 0.2, 0.4, then the 0.5 cap."""
        a = Fake("a", [failing("a")] * 4)
        router, clock = router_for(
            [a],
            draw=lambda: 1.0,
            retry={"max_attempts": 5, "backoff_initial_ms": 100, "backoff_max_ms": 500},
        )
        attempted = Attempted()
        assert await run(router, attempted) is OK
        assert attempted.attempts == 5
        assert clock.sleeps == [0.1, 0.2, 0.4, 0.5]

    async def test_backoff_has_full_jitter(self) -> None:
        a = Fake("a", [failing("a")])
        router, clock = router_for(
            [a], draw=lambda: 0.25, retry={"max_attempts": 2, "backoff_initial_ms": 400}
        )
        await run(router)
        assert clock.sleeps == [0.1]

    async def test_second_round_waits_only_what_is_left_of_the_backoff(self) -> None:
        async def slow_failure() -> Completion:
            clock.now += 0.3  # b takes 300 ms to fail
            raise failing("b")

        a, b = Fake("a", [failing("a")]), Fake("b", [slow_failure])
        router, clock = router_for([a, b], retry={"max_attempts": 3, "backoff_initial_ms": 1000})
        attempted = Attempted()
        await run(router, attempted)
        assert attempted.provider == "a" and attempted.attempts == 3
        assert clock.sleeps == [0.7]

    async def test_short_retry_after_is_waited_out(self) -> None:
        a = Fake("a", [failing("a", 429, retry_after=2.0)])
        router, clock = router_for([a], retry={"max_attempts": 2, "max_retry_after_secs": 5})
        assert await run(router) is OK
        assert clock.sleeps == [2.0]

    async def test_long_retry_after_moves_on_at_once(self) -> None:
        a, b = Fake("a", [failing("a", 429, retry_after=60.0)] * 3), Fake("b", [failing("b")])
        router, clock = router_for([a, b], retry={"max_attempts": 4, "max_retry_after_secs": 5})
        attempted = Attempted()
        await run(router, attempted)
        assert (a.calls, b.calls, attempted.provider) == (1, 2, "b")
        assert len(clock.sleeps) == 1, "only b's backoff, never a's 60 s"

    async def test_long_retry_after_on_the_only_target_fails_with_retry_after(self) -> None:
        a = Fake("a", [failing("a", 429, retry_after=30.0)])
        router, clock = router_for([a], retry={"max_attempts": 3, "max_retry_after_secs": 5})
        with pytest.raises(UpstreamUnavailable) as info:
            await run(router)
        assert a.calls == 1 and clock.sleeps == []
        assert info.value.headers == {"Retry-After": "30"}

    async def test_deadline_stops_retries_that_could_not_finish(self) -> None:
        a = Fake("a", [failing("a")] * 5)
        router, clock = router_for(
            [a],
            retry={
                "max_attempts": 5,
                "backoff_initial_ms": 4000,
                "backoff_max_ms": 60000,
                "deadline_secs": 10,
            },
        )
        with pytest.raises(UpstreamUnavailable):
            await run(router)
        # Waits of 4 and 8 s: the second would end past the 10 s deadline.
        assert clock.sleeps == [4.0] and a.calls == 2


class TestWeights:
    async def test_unweighted_targets_keep_their_order(self) -> None:
        fakes = [Fake(n) for n in "abc"]
        router, _ = router_for(fakes, draw=random.Random(1).random)
        firsts = set()
        for _ in range(50):
            attempted = Attempted()
            await run(router, attempted)
            firsts.add(attempted.provider)
        assert firsts == {"a"}

    async def test_weighted_neighbours_split_first_attempts_by_weight(self) -> None:
        fakes = [Fake(n) for n in "abc"]
        router, _ = router_for(fakes, weights=[3.0, 1.0, None], draw=random.Random(7).random)
        counts = {"a": 0, "b": 0, "c": 0}
        for _ in range(2000):
            attempted = Attempted()
            await run(router, attempted)
            counts[attempted.provider or ""] += 1
        assert counts["c"] == 0, "the unweighted fallback keeps its own place"
        assert 1350 < counts["a"] < 1650 and counts["a"] + counts["b"] == 2000

    async def test_the_other_weighted_target_is_the_fallback(self) -> None:
        a, b, c = Fake("a", [failing("a")]), Fake("b", [failing("b")]), Fake("c")
        router, _ = router_for([a, b, c], weights=[1.0, 1.0, None], draw=random.Random(3).random)
        attempted = Attempted()
        await run(router, attempted)
        assert attempted.provider == "c" and a.calls == b.calls == 1


class TestBreakers:
    async def test_open_circuit_is_skipped(self) -> None:
        a, b = Fake("a", [failing("a")] * 2), Fake("b")
        router, _ = router_for([a, b], circuit_breaker={"failure_threshold": 2, "timeout_secs": 30})
        await run(router)
        await run(router)
        assert router.breakers.states()["a"] == "open"
        attempted = Attempted()
        await run(router, attempted)
        assert a.calls == 2 and attempted.attempts == 1 and attempted.provider == "b"

    async def test_all_open_fails_fast_with_503_and_retry_after(self) -> None:
        a = Fake("a", [failing("a")])
        router, clock = router_for(
            [a],
            retry={"max_attempts": 1},
            circuit_breaker={"failure_threshold": 1, "timeout_secs": 30},
        )
        with pytest.raises(UpstreamUnavailable):
            await run(router)
        clock.now += 10
        with pytest.raises(NoProviderAvailable) as info:
            await run(router)
        assert info.value.status == 503 and a.calls == 1
        assert info.value.headers == {"Retry-After": "20"}
        assert "every circuit is open (a)" in info.value.message

    async def test_all_open_least_recently_failed_tries_the_oldest_failure(self) -> None:
        a, b = Fake("a", [failing("a")]), Fake("b", [failing("b")])
        router, clock = router_for(
            [a, b],
            retry={"max_attempts": 1},
            circuit_breaker={
                "failure_threshold": 1,
                "timeout_secs": 30,
                "when_all_open": "least_recently_failed",
            },
        )
        with pytest.raises(UpstreamUnavailable):
            await run(router)  # a fails, then b fails: both open
        clock.now += 1
        router.breakers["a"].record_failure()  # a failed again since: b's failure is older
        attempted = Attempted()
        assert await run(router, attempted) is OK
        assert attempted.provider == "b" and attempted.attempts == 1
        assert router.breakers.states() == {"a": "open", "b": "closed"}

    async def test_half_open_lets_one_probe_through(self) -> None:
        gate = asyncio.Event()

        async def held() -> Completion:
            await gate.wait()
            return OK

        a = Fake("a", [failing("a"), held])
        router, clock = router_for(
            [a],
            retry={"max_attempts": 1},
            circuit_breaker={"failure_threshold": 1, "timeout_secs": 30},
        )
        with pytest.raises(UpstreamUnavailable):
            await run(router)
        clock.now += 30
        probe = asyncio.ensure_future(run(router))
        await asyncio.sleep(0)
        with pytest.raises(NoProviderAvailable):
            await run(router)
        gate.set()
        assert await probe is OK
        assert router.breakers.states() == {"a": "closed"}

    async def test_cancelled_probe_gives_the_probe_back(self) -> None:
        async def hang() -> Completion:
            await asyncio.Event().wait()
            return OK

        a = Fake("a", [failing("a"), hang])
        router, clock = router_for(
            [a],
            retry={"max_attempts": 1},
            circuit_breaker={"failure_threshold": 1, "timeout_secs": 30},
        )
        with pytest.raises(UpstreamUnavailable):
            await run(router)
        clock.now += 30
        probe = asyncio.ensure_future(run(router))
        await asyncio.sleep(0)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        assert await run(router) is OK


def stream_of(*chunks: bytes | BaseException, closed: list[str] | None = None) -> Callable[[], Any]:
    """A step that returns a stream yielding ``chunks`` (an exception is raised in place)."""

    async def start() -> StreamingCompletion:
        async def gen() -> AsyncIterator[bytes]:
            for chunk in chunks:
                if isinstance(chunk, BaseException):
                    raise chunk
                yield chunk

        async def aclose() -> None:
            if closed is not None:
                closed.append("closed")

        return StreamingCompletion(chunks=gen(), aclose=aclose)

    return start


class Hang(Exception):
    """Marker: a stream step that never produces its next chunk."""


def hanging_stream(*chunks: bytes, closed: list[str] | None = None) -> Callable[[], Any]:
    async def start() -> StreamingCompletion:
        async def gen() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk
            await asyncio.Event().wait()
            yield b"never"

        async def aclose() -> None:
            if closed is not None:
                closed.append("closed")

        return StreamingCompletion(chunks=gen(), aclose=aclose)

    return start


async def drain(result: StreamingCompletion) -> bytes:
    try:
        return b"".join([chunk async for chunk in result.chunks])
    finally:
        await result.aclose()


FAST = {"timeout_secs": 5.0, "first_byte_timeout_secs": 0.05, "idle_timeout_secs": 0.05}


class TestTimeLimits:
    """Real event-loop timers with limits of tens of milliseconds; bounded by the limits."""

    async def test_stream_silent_before_its_first_chunk_falls_back(self) -> None:
        closed: list[str] = []
        a = Fake("a", [hanging_stream(closed=closed)])
        b = Fake("b", [stream_of(b"data: 1\n\n", b"data: [DONE]\n\n")])
        router = Router(
            config(
                [{"provider": "a", "model": "x"}, {"provider": "b", "model": "y"}], provider=FAST
            ),
            {"a": a, "b": b},
        )
        attempted = Attempted()
        result = await run(router, attempted, stream=True)
        assert await drain(result) == b"data: 1\n\ndata: [DONE]\n\n"
        assert attempted.provider == "b" and closed == ["closed"]
        assert router.breakers["a"].consecutive_failures == 1

    async def test_stream_that_ends_before_any_chunk_falls_back(self) -> None:
        a = Fake("a", [stream_of()])
        b = Fake("b", [stream_of(b"data: [DONE]\n\n")])
        router = Router(
            config([{"provider": "a", "model": "x"}, {"provider": "b", "model": "y"}]),
            {"a": a, "b": b},
        )
        attempted = Attempted()
        await drain(await run(router, attempted, stream=True))
        assert attempted.provider == "b"

    async def test_stream_error_before_first_chunk_falls_back(self) -> None:
        a = Fake("a", [stream_of(failing("a"))])
        b = Fake("b", [stream_of(b"data: [DONE]\n\n")])
        router = Router(
            config([{"provider": "a", "model": "x"}, {"provider": "b", "model": "y"}]),
            {"a": a, "b": b},
        )
        attempted = Attempted()
        await drain(await run(router, attempted, stream=True))
        assert attempted.provider == "b"

    async def test_mid_stream_stall_raises_timeout_and_counts_a_failure(self) -> None:
        closed: list[str] = []
        a = Fake("a", [hanging_stream(b"data: 1\n\n", closed=closed)])
        router = Router(config([{"provider": "a", "model": "x"}], provider=FAST), {"a": a})
        result = await run(router, stream=True)
        received = []
        with pytest.raises(UpstreamTimeout) as info:
            async for chunk in result.chunks:
                received.append(chunk)
        await result.aclose()
        assert received == [b"data: 1\n\n"] and closed == ["closed"]
        assert "idle_timeout_secs" in info.value.message
        assert router.breakers["a"].consecutive_failures == 1

    async def test_mid_stream_upstream_error_counts_a_failure(self) -> None:
        a = Fake("a", [stream_of(b"data: 1\n\n", failing("a"))])
        router = Router(config([{"provider": "a", "model": "x"}]), {"a": a})
        result = await run(router, stream=True)
        with pytest.raises(UpstreamUnavailable):
            await drain(result)
        assert router.breakers["a"].consecutive_failures == 1

    async def test_total_limit_applies_to_a_stream(self) -> None:
        """A stream that keeps trickling still ends at timeout_secs."""

        async def start() -> StreamingCompletion:
            async def gen() -> AsyncIterator[bytes]:
                while True:
                    yield b"data: x\n\n"
                    await asyncio.sleep(0.01)

            async def aclose() -> None:
                pass

            return StreamingCompletion(chunks=gen(), aclose=aclose)

        a = Fake("a", [start])
        limits = {"timeout_secs": 0.2, "idle_timeout_secs": 0.1}
        router = Router(config([{"provider": "a", "model": "x"}], provider=limits), {"a": a})
        result = await run(router, stream=True)
        with pytest.raises(UpstreamTimeout) as info:
            await drain(result)
        assert "timeout_secs" in info.value.message

    async def test_non_stream_hang_times_out_and_falls_back(self) -> None:
        async def hang() -> Completion:
            await asyncio.Event().wait()
            return OK

        a, b = Fake("a", [hang]), Fake("b")
        router = Router(
            config(
                [{"provider": "a", "model": "x"}, {"provider": "b", "model": "y"}],
                provider={"timeout_secs": 0.05},
            ),
            {"a": a, "b": b},
        )
        attempted = Attempted()
        assert await run(router, attempted) is OK
        assert attempted.provider == "b"

    async def test_deadline_ends_an_attempt_with_504(self) -> None:
        async def hang() -> Completion:
            await asyncio.Event().wait()
            return OK

        a = Fake("a", [hang])
        router = Router(
            config([{"provider": "a", "model": "x"}], retry={"deadline_secs": 0.05}), {"a": a}
        )
        with pytest.raises(UpstreamTimeout) as info:
            await run(router)
        assert info.value.status == 504 and "deadline" in info.value.message


async def run_with(router: Router, affinity: str) -> Attempted:
    async def attempt(provider: Provider, target: Target) -> Any:
        return await provider.chat(target)

    attempted = Attempted()
    await router.call(router.resolve("m"), attempt, attempted, affinity=affinity)
    return attempted


class TestAffinity:
    async def test_a_session_keeps_its_target_while_it_is_healthy(self) -> None:
        """Same affinity, same target; its circuit open: the next; closed again: back."""
        fakes = [Fake(n) for n in "abcd"]
        router, clock = router_for(
            fakes,
            weights=[1.0] * 4,
            draw=random.Random(5).random,
            circuit_breaker={"failure_threshold": 1, "timeout_secs": 30},
        )
        home = (await run_with(router, "sess-1")).provider
        assert {(await run_with(router, "sess-1")).provider for _ in range(20)} == {home}
        chosen = next(f for f in fakes if f.name == home)
        chosen.steps = [failing(home)]
        away = (await run_with(router, "sess-1")).provider
        assert away != home and router.breakers.states()[home] == "open"
        assert {(await run_with(router, "sess-1")).provider for _ in range(5)} == {away}
        clock.now += 31  # half-open: the probe succeeds and the session comes home
        assert (await run_with(router, "sess-1")).provider == home

    def test_affinity_is_read_only_for_weighted_models(self) -> None:
        """No weights, no lookup; with weights the configured header's value."""
        headers = [(b"x-claude-code-session-id", b"abc")]
        plain, _ = router_for([Fake("a"), Fake("b")])
        assert plain.affinity_of(plain.resolve("m"), headers) is None
        weighted, _ = router_for([Fake("a"), Fake("b")], weights=[1.0, 1.0])
        assert weighted.affinity_of(weighted.resolve("m"), headers) == "abc"
        off, _ = router_for(
            [Fake("a"), Fake("b")], weights=[1.0, 1.0], routing={"affinity_header": ""}
        )
        assert off.affinity_of(off.resolve("m"), headers) is None


def prometheus(metrics: Metrics) -> list[tuple[str, dict[str, str], float]]:
    """``metrics``' samples as (name, labels, value)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = metrics.exposition().decode()
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]
