"""The shared-state interfaces, one per kind of thing kept, and the backend that has them.

Each consumer takes the narrow interface it uses:

* ``Buckets``: rate-limit token buckets (``limits/rate.py``).
* ``ResponseCacheStore``: bytes under a key with a TTL (the response cache,
  ``server/cache.py``, and stored Responses, ``state/response_store.py``).
* ``SharedCircuitStore``: circuit-breaker outcomes every process agrees on
  (``routing/shared_circuits.py``).
* ``BudgetStore`` (``state/budgets.py``) and ``SemanticStore`` (``state/semantic.py``)
  have stores of their own; a backend that keeps them for every daemon on it hands them
  out (``shared_budgets``, ``shared_semantic``), else the daemon keeps its own.

A ``StateBackend`` is all of them in one place, built from ``[state]`` by
``build_state``: ``memory`` (this process only, no dependency) and ``redis`` (every
worker and host that points at the same Redis shares one state). The runtime owns it
(its ``ping`` and ``aclose``) and hands each consumer its part. Callers never see a
backend failure: ``resilient.ResilientState`` turns one into the configured fail-open
or fail-closed behaviour.
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
    from fkllmproxy.state.semantic import SemanticStore

# A token bucket's take as a plain call: bucket, capacity, refill per second.
TakeNow = Callable[[str, int, float], Decision]

__all__ = [
    "Buckets",
    "CircuitParams",
    "ResponseCacheStore",
    "SharedCircuit",
    "SharedCircuitStore",
    "StateBackend",
    "StateUnavailable",
    "TakeNow",
]


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


class Buckets(abc.ABC):
    """Rate-limit token buckets by name, each created full."""

    @abc.abstractmethod
    async def take_token(self, bucket: str, capacity: int, refill_per_second: float) -> Decision:
        """Take one token from ``bucket``, atomically."""

    def take_now(self) -> TakeNow | None:
        """``take_token`` as a plain call when these buckets never wait on I/O (memory):
        the request path then skips a coroutine. ``None`` where a take is a round trip."""
        return None


class ResponseCacheStore(abc.ABC):
    """Bytes under a key until they expire (a miss is ``None``, never an error)."""

    @abc.abstractmethod
    async def cache_get(self, key: str) -> bytes | None:
        """The value under ``key``, or ``None``."""

    @abc.abstractmethod
    async def cache_set(self, key: str, value: bytes, ttl_secs: float) -> None:
        """Store ``value`` under ``key`` for ``ttl_secs``."""


class SharedCircuitStore(abc.ABC):
    """Circuit-breaker outcomes counted once for every process that shares the store."""

    @abc.abstractmethod
    async def circuit_record(
        self, provider: str, failed: bool, params: CircuitParams
    ) -> SharedCircuit | None:
        """Count one outcome into the shared circuit; ``None`` where nothing is shared."""

    @abc.abstractmethod
    async def circuit_read(
        self, providers: list[str], params: CircuitParams
    ) -> dict[str, SharedCircuit]:
        """The shared circuits of ``providers`` that have a record."""


class StateBackend(Buckets, ResponseCacheStore, SharedCircuitStore):
    """One configured backend with every store above; the runtime owns its lifecycle."""

    name: str

    def shared_budgets(self) -> BudgetStore | None:
        """Budgets kept in this backend for every daemon that uses it (Redis), or
        ``None``: the daemon keeps them itself (``state/budgets.py``)."""
        return None

    def shared_semantic(self, model: str, max_entries: int) -> SemanticStore | None:
        """``model``'s semantic cache entries kept in this backend for every daemon that
        uses it (Redis), or ``None``: each process keeps its own."""
        return None

    async def circuit_record(
        self, provider: str, failed: bool, params: CircuitParams
    ) -> SharedCircuit | None:
        """Nothing is shared by default (memory): each process's breakers decide alone."""
        return None

    async def circuit_read(
        self, providers: list[str], params: CircuitParams
    ) -> dict[str, SharedCircuit]:
        return {}

    async def ping(self) -> None:
        """Raise ``StateUnavailable`` when the store cannot be reached."""

    async def aclose(self) -> None:
        """Release connections."""
