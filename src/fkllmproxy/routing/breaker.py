"""Circuit breakers: stop sending requests to a provider that keeps failing.

One breaker per provider (the unit operators see in ``/health``, the metrics and the
logs). Its states::

    closed ──(failure_threshold consecutive failures)──> open
    open ──(cooldown elapsed)──> half_open          lets exactly one probe through
    half_open ──(probe succeeds)──> closed          cooldown back to timeout_secs
    half_open ──(probe fails)──> open               cooldown doubled, up to max_timeout_secs
    any ──(reset by an operator)──> closed

A success resets the count of consecutive failures. The clock is injectable so every
transition is testable without waiting, and each change is reported to the registry's
``on_change`` callbacks (logging, and the ``fkllm_circuit_breaker_state`` gauge).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import final

from fkllmproxy.config.schema import CircuitBreakerConfig
from fkllmproxy.observability.circuits import CircuitState
from fkllmproxy.observability.logging import get_logger

__all__ = [
    "CircuitBreaker",
    "CircuitBreakers",
    "CircuitState",
    "Outcome",
    "StateChange",
]


# Called as ``callback(breaker, previous_state)`` after every change of state.
StateChange = Callable[["CircuitBreaker", CircuitState], None]
# Called as ``callback(breaker, failed, changed)`` after every recorded outcome and
# reset (a reset reports as a success that changed something). ``changed`` says the
# outcome altered the breaker: a success that only confirms a closed circuit is not.
Outcome = Callable[["CircuitBreaker", bool, bool], None]

_log = get_logger("circuit")


@final
class CircuitBreaker:
    """The circuit of one provider. Not thread-safe: it lives on one event loop.

    Callers ask ``allow()`` before each attempt and then report exactly one of
    ``record_success()``, ``record_failure()`` or ``release()`` (no verdict: the
    attempt was cancelled or failed for a reason that says nothing about the provider).
    """

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: StateChange | None = None,
        on_outcome: Outcome | None = None,
    ) -> None:
        self.name = name
        self._on_outcome = on_outcome
        self.failure_threshold = config.failure_threshold
        self.base_cooldown = config.timeout_secs
        self.max_cooldown = max(config.max_timeout_secs, config.timeout_secs)
        self._clock = clock
        self._on_change = on_change
        self._state: CircuitState = "closed"
        self.consecutive_failures = 0
        self.cooldown = self.base_cooldown
        self.opened_at: float | None = None
        self.last_failure_at: float | None = None
        self._probe_out = False

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose cooldown has passed reads half-open."""
        if self._state == "open" and self.retry_in() == 0.0:
            self._probe_out = False
            self._move("half_open")
        return self._state

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when not open)."""
        if self._state != "open" or self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.cooldown - self._clock())

    def allow(self) -> bool:
        """Whether an attempt may go to this provider now; half-open admits one probe."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_out:
            self._probe_out = True
            return True
        return False

    def record_success(self) -> None:
        """The provider answered: close the circuit and forget its failures."""
        changed = self.consecutive_failures > 0 or self._state != "closed"
        self.consecutive_failures = 0
        self._probe_out = False
        if self._state != "closed":
            self.cooldown = self.base_cooldown
            self.opened_at = None
            self._move("closed")
        if self._on_outcome is not None:
            self._on_outcome(self, False, changed)

    def record_failure(self) -> None:
        """The provider failed: count it, and open the circuit when it is time."""
        now = self._clock()
        self.consecutive_failures += 1
        self.last_failure_at = now
        if self._state == "half_open":
            # The probe failed: back off for longer, up to the cap.
            self._probe_out = False
            self.cooldown = min(self.cooldown * 2, self.max_cooldown)
            self.opened_at = now
            self._move("open")
        elif self._state == "closed" and self.consecutive_failures >= self.failure_threshold:
            self.opened_at = now
            self._move("open")
        if self._on_outcome is not None:
            self._on_outcome(self, True, True)

    def release(self) -> None:
        """The attempt ended without saying anything about the provider (e.g. cancelled)."""
        self._probe_out = False

    def reset(self) -> None:
        """Close the circuit now, whatever its state (an operator's decision)."""
        self.consecutive_failures = 0
        self.cooldown = self.base_cooldown
        self.opened_at = None
        self._probe_out = False
        if self._state != "closed":
            self._move("closed")
        if self._on_outcome is not None:
            self._on_outcome(self, False, True)

    def apply_shared(
        self, state: CircuitState, failures: int, cooldown: float, retry_in: float
    ) -> None:
        """Take the state other processes agreed on (the Redis state backend's view).

        ``retry_in`` is how long an open circuit stays open from now; a shared
        half-open circuit becomes a local open one whose cooldown has just passed, so
        this process may send its own probe.
        """
        self.consecutive_failures = failures
        self.cooldown = min(max(cooldown, self.base_cooldown), self.max_cooldown)
        if state == "closed":
            self.opened_at = None
            if self._state != "closed":
                self._probe_out = False
                self._move("closed")
            return
        self.opened_at = self._clock() + (retry_in if state == "open" else 0.0) - self.cooldown
        if self._state == "closed":
            self._move("open")

    def adopt(self, other: CircuitBreaker) -> None:
        """Take over ``other``'s state (a reload keeps what was learnt about a provider)."""
        self._state = other._state
        self.consecutive_failures = other.consecutive_failures
        self.cooldown = min(max(other.cooldown, self.base_cooldown), self.max_cooldown)
        self.opened_at = other.opened_at
        self.last_failure_at = other.last_failure_at

    def _move(self, new: CircuitState) -> None:
        previous, self._state = self._state, new
        if self._on_change is not None:
            self._on_change(self, previous)


_MESSAGES: dict[CircuitState, str] = {
    "open": "circuit opened",
    "half_open": "circuit half-open; letting one probe through",
    "closed": "circuit closed",
}


class CircuitBreakers:
    """Every provider's breaker, built once per configuration.

    ``on_change`` is a list of callbacks run on every state change, after the log line;
    the metrics exporter appends its gauge update there. ``states()`` is what
    ``/health``, ``/ready`` and ``/admin/circuits`` read.
    """

    def __init__(
        self,
        names: Iterable[str],
        config: CircuitBreakerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_change: list[StateChange] = []
        self.on_outcome: list[Outcome] = []
        self._breakers = {
            name: CircuitBreaker(
                name, config, clock=clock, on_change=self._changed, on_outcome=self._outcome
            )
            for name in names
        }

    def __getitem__(self, name: str) -> CircuitBreaker:
        return self._breakers[name]

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(self._breakers.values())

    def states(self) -> dict[str, CircuitState]:
        """Each provider's current state, by provider name."""
        return {name: breaker.state for name, breaker in self._breakers.items()}

    def reset(self, name: str) -> CircuitBreaker:
        """Close ``name``'s circuit; ``KeyError`` if there is no such provider."""
        breaker = self._breakers[name]
        breaker.reset()
        return breaker

    def adopt(self, previous: CircuitBreakers) -> None:
        """Carry state over from the breakers of the configuration this one replaces."""
        for name, breaker in self._breakers.items():
            if name in previous._breakers:
                breaker.adopt(previous._breakers[name])

    def _outcome(self, breaker: CircuitBreaker, failed: bool, changed: bool) -> None:
        for callback in self.on_outcome:
            callback(breaker, failed, changed)

    def _changed(self, breaker: CircuitBreaker, previous: CircuitState) -> None:
        state = breaker._state
        fields: dict[str, object] = {
            "provider": breaker.name,
            "state": state,
            "previous": previous,
            "consecutive_failures": breaker.consecutive_failures,
        }
        if state == "open":
            fields["cooldown_secs"] = breaker.cooldown
            _log.warning(_MESSAGES[state], extra=fields)
        else:
            _log.info(_MESSAGES[state], extra=fields)
        for callback in self.on_change:
            callback(breaker, previous)
