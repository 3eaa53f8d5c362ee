"""The shared-state interface: token buckets and cached responses.

Two backends implement it: ``memory`` (this process only, no dependency) and
``redis`` (every worker and host that points at the same Redis shares one state).
Callers never see a backend failure: ``resilient.ResilientState`` turns one into the
configured fail-open or fail-closed behaviour.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fkllmproxy.observability.circuits import CircuitState
from fkllmproxy.state.buckets import Decision

if TYPE_CHECKING:
    from fkllmproxy.state.budgets import BudgetStore

# A token bucket's take as a plain call: bucket, capacity, refill per second.
TakeNow = Callable[[str, int, float], Decision]

__all__ = ["CircuitParams", "SharedCircuit", "StateBackend", "StateUnavailable", "TakeNow"]


@dataclass(frozen=True, slots=True)
class CircuitParams:
    """The breaker settings a shared transition needs (from ``[circuit_breaker]``)."""

    failure_threshold: int
    base_cooldown: float
    max_cooldown: float


@dataclass(frozen=True, slots=True)
class SharedCircuit:
    """One provider's circuit as every process agreed on it.

    ``retry_in`` is how long an open circuit stays open from now (0 otherwise).
    """

    state: CircuitState
    failures: int
    cooldown: float
    retry_in: float


class StateUnavailable(Exception):
    """Raised by a backend that cannot reach its store (Redis down, timed out)."""


class StateBackend(abc.ABC):
    """Where rate-limit buckets and cached answers live."""

    name: str

    @abc.abstractmethod
    async def take_token(self, bucket: str, capacity: int, refill_per_second: float) -> Decision:
        """Take one token from ``bucket`` (created full), atomically."""

    @abc.abstractmethod
    async def cache_get(self, key: str) -> bytes | None:
        """The cached answer under ``key``, or ``None``."""

    @abc.abstractmethod
    async def cache_set(self, key: str, value: bytes, ttl_secs: float) -> None:
        """Store ``value`` under ``key`` for ``ttl_secs``."""

    def take_now(self) -> TakeNow | None:
        """``take_token`` as a plain call when this backend never waits on I/O (memory):
        the request path then skips a coroutine. ``None`` where a take is a round trip."""
        return None

    def shared_budgets(self) -> BudgetStore | None:
        """Budgets kept in this backend for every daemon that uses it (Redis), or
        ``None``: the daemon keeps them itself (``state/budgets.py``)."""
        return None

    async def circuit_record(
        self, provider: str, failed: bool, params: CircuitParams
    ) -> SharedCircuit | None:
        """Count one outcome into the shared circuit; ``None`` where nothing is shared."""
        return None

    async def circuit_read(
        self, providers: list[str], params: CircuitParams
    ) -> dict[str, SharedCircuit]:
        """The shared circuits of ``providers`` that have a record."""
        return {}

    async def ping(self) -> None:  # noqa: B027 - memory has nothing to check
        """Raise ``StateUnavailable`` when the store cannot be reached."""

    async def aclose(self) -> None:  # noqa: B027 - optional
        """Release connections."""
