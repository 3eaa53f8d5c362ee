"""The circuit breaker's state machine, one test per transition, on an injected clock."""

from __future__ import annotations

import logging

import pytest

from fkllmproxy.config.schema import CircuitBreakerConfig
from fkllmproxy.observability.circuits import CIRCUIT_VALUES
from fkllmproxy.routing.breaker import CircuitBreaker, CircuitBreakers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    threshold: int = 3, cooldown: float = 10.0, cap: float = 35.0
) -> tuple[CircuitBreaker, Clock, list[tuple[str, str]]]:
    clock = Clock()
    changes: list[tuple[str, str]] = []
    config = CircuitBreakerConfig(
        failure_threshold=threshold, timeout_secs=cooldown, max_timeout_secs=cap
    )
    breaker = CircuitBreaker(
        "primary", config, clock=clock, on_change=lambda b, prev: changes.append((prev, b.state))
    )
    return breaker, clock, changes


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        assert breaker.allow()
        breaker.record_failure()


class TestClosed:
    def test_starts_closed_and_allows(self) -> None:
        breaker, _, changes = make()
        assert breaker.state == "closed" and breaker.allow() and breaker.allow()
        assert changes == []

    def test_opens_after_threshold_consecutive_failures(self) -> None:
        """closed -> open exactly at failure_threshold."""
        breaker, _, changes = make(threshold=3)
        breaker.record_failure()
        breaker.record_failure()
        assert breaker.state == "closed"
        breaker.record_failure()
        assert breaker.state == "open"
        assert changes == [("closed", "open")]

    def test_success_resets_the_count(self) -> None:
        """Failures that are not consecutive never open the circuit."""
        breaker, _, _ = make(threshold=3)
        for _ in range(5):
            breaker.record_failure()
            breaker.record_failure()
            breaker.record_success()
        assert breaker.state == "closed" and breaker.consecutive_failures == 0


class TestOpen:
    def test_refuses_until_the_cooldown_passes(self) -> None:
        breaker, clock, _ = make(cooldown=10.0)
        trip(breaker)
        assert not breaker.allow()
        clock.now += 9.5
        assert not breaker.allow()
        assert breaker.retry_in() == pytest.approx(0.5)

    def test_becomes_half_open_after_the_cooldown(self) -> None:
        """open -> half_open when the cooldown has elapsed (seen on the next read)."""
        breaker, clock, changes = make(cooldown=10.0)
        trip(breaker)
        clock.now += 10.0
        assert breaker.state == "half_open"
        assert changes == [("closed", "open"), ("open", "half_open")]

    def test_failure_while_open_keeps_it_open_and_notes_the_time(self) -> None:
        """A forced attempt (least_recently_failed) that fails changes nothing but the time."""
        breaker, clock, changes = make()
        trip(breaker)
        clock.now += 1
        breaker.record_failure()
        assert breaker.state == "open" and breaker.last_failure_at == clock.now
        assert len(changes) == 1

    def test_success_while_open_closes(self) -> None:
        """A forced attempt that works is evidence enough: open -> closed."""
        breaker, _, changes = make()
        trip(breaker)
        breaker.record_success()
        assert breaker.state == "closed"
        assert changes[-1] == ("open", "closed")


class TestHalfOpen:
    def test_admits_exactly_one_probe(self) -> None:
        breaker, clock, _ = make()
        trip(breaker)
        clock.now += 10
        assert breaker.allow()
        assert not breaker.allow()
        assert not breaker.allow()

    def test_probe_success_closes_and_restores_the_cooldown(self) -> None:
        """half_open -> closed on success."""
        breaker, clock, changes = make(cooldown=10.0)
        trip(breaker)
        clock.now += 10
        assert breaker.allow()
        breaker.record_failure()  # cooldown grows to 20
        clock.now += 20
        assert breaker.allow()
        breaker.record_success()
        assert breaker.state == "closed" and breaker.cooldown == 10.0
        assert changes[-1] == ("half_open", "closed")
        assert breaker.allow() and breaker.allow()

    def test_probe_failure_reopens_with_a_doubled_capped_cooldown(self) -> None:
        """half_open -> open, cooldown 10 -> 20 -> 35 (the cap) -> 35."""
        breaker, clock, changes = make(cooldown=10.0, cap=35.0)
        trip(breaker)
        seen = []
        for _ in range(3):
            clock.now += breaker.cooldown
            assert breaker.allow()
            breaker.record_failure()
            assert breaker.state == "open"
            seen.append(breaker.cooldown)
        assert seen == [20.0, 35.0, 35.0]
        clock.now += 34.9
        assert not breaker.allow()
        assert changes.count(("half_open", "open")) == 3

    def test_release_gives_the_probe_back(self) -> None:
        """A probe that ends without a verdict (cancelled) lets another probe through."""
        breaker, clock, _ = make()
        trip(breaker)
        clock.now += 10
        assert breaker.allow()
        breaker.release()
        assert breaker.state == "half_open"
        assert breaker.allow()


class TestReset:
    def test_reset_closes_an_open_circuit(self) -> None:
        breaker, clock, changes = make(cooldown=10.0)
        trip(breaker)
        clock.now += 10
        breaker.allow()
        breaker.record_failure()
        breaker.reset()
        assert breaker.state == "closed" and breaker.cooldown == 10.0
        assert breaker.consecutive_failures == 0
        assert changes[-1] == ("open", "closed")

    def test_reset_of_a_closed_circuit_is_quiet(self) -> None:
        breaker, _, changes = make()
        breaker.record_failure()
        breaker.reset()
        assert changes == [] and breaker.consecutive_failures == 0


class TestRegistry:
    def test_states_callbacks_and_log_lines(self, caplog: pytest.LogCaptureFixture) -> None:
        clock = Clock()
        config = CircuitBreakerConfig(failure_threshold=1, timeout_secs=5.0)
        breakers = CircuitBreakers(["primary", "backup"], config, clock=clock)
        seen: list[tuple[str, int]] = []
        breakers.on_change.append(lambda b, _prev: seen.append((b.name, CIRCUIT_VALUES[b.state])))
        with caplog.at_level(logging.INFO, logger="fkllmproxy.circuit"):
            breakers["primary"].record_failure()
            clock.now += 5
            assert breakers.states() == {"primary": "half_open", "backup": "closed"}
            breakers.reset("primary")
        assert seen == [("primary", 2), ("primary", 1), ("primary", 0)]
        opened = next(r for r in caplog.records if r.getMessage() == "circuit opened")
        assert opened.provider == "primary" and opened.levelno == logging.WARNING  # type: ignore[attr-defined]
        assert all("circuit" in r.getMessage() for r in caplog.records)
        assert [r.state for r in caplog.records] == ["open", "half_open", "closed"]  # type: ignore[attr-defined]

    def test_unknown_provider_reset_raises_key_error(self) -> None:
        breakers = CircuitBreakers(["primary"], CircuitBreakerConfig())
        with pytest.raises(KeyError):
            breakers.reset("nope")

    def test_adopt_carries_state_across_a_reload(self) -> None:
        clock = Clock()
        config = CircuitBreakerConfig(failure_threshold=1, timeout_secs=5.0)
        old = CircuitBreakers(["primary", "gone"], config, clock=clock)
        old["primary"].record_failure()
        new = CircuitBreakers(["primary", "added"], config, clock=clock)
        new.adopt(old)
        assert new.states() == {"primary": "open", "added": "closed"}
        clock.now += 5
        assert new["primary"].allow()
