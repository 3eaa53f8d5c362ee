"""What happens when the shared store fails: fail open or fail closed, then recover.

While Redis is unreachable, ``on_failure = "open"`` serves rate limits and the cache
from this process's memory (limits then hold per process, not globally), and
``"closed"`` refuses rate-limited requests with 503 instead. Either way the outage is
logged once with its reason, counted, and Redis is tried again at most once per
``retry_secs`` — so a dead Redis costs no request a timeout after the first — and its
return is logged too. The response cache never refuses: a cache outage is a miss.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from fkllmproxy.observability.logging import get_logger
from fkllmproxy.state.base import CircuitParams, SharedCircuit, StateBackend, StateUnavailable
from fkllmproxy.state.buckets import Decision
from fkllmproxy.state.memory import MemoryState

if TYPE_CHECKING:
    from fkllmproxy.state.budgets import BudgetStore
    from fkllmproxy.state.semantic import SemanticStore

__all__ = ["ResilientState"]

_log = get_logger("state")


class ResilientState(StateBackend):
    def __init__(
        self,
        primary: StateBackend,
        fallback: MemoryState,
        *,
        on_failure: Literal["open", "closed"] = "open",
        retry_secs: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name
        self.on_failure = on_failure
        self._retry_secs = retry_secs
        self._clock = clock
        self._down_until = 0.0
        self.degraded = False
        self.failures = 0

    def shared_budgets(self) -> BudgetStore | None:
        # Budgets keep their own fallback (limits/budget_setup.py): the store is the primary's.
        return self.primary.shared_budgets()

    def shared_semantic(self, model: str, max_entries: int) -> SemanticStore | None:
        # A semantic store fails to a miss by itself (server/semantic_cache.py).
        return self.primary.shared_semantic(model, max_entries)

    def _use_primary(self) -> bool:
        return not self.degraded or self._clock() >= self._down_until

    def _failed(self, exc: StateUnavailable) -> None:
        self.failures += 1
        self._down_until = self._clock() + self._retry_secs
        if not self.degraded:
            self.degraded = True
            action = (
                "falling back to per-process state"
                if self.on_failure == "open"
                else "refusing rate-limited requests (fail-closed)"
            )
            _log.error(
                f"state backend unavailable; {action}",
                extra={
                    "backend": self.primary.name,
                    "reason": str(exc),
                    "on_failure": self.on_failure,
                },
            )

    def _succeeded(self) -> None:
        if self.degraded:
            self.degraded = False
            _log.warning("state backend recovered", extra={"backend": self.primary.name})

    async def take_token(self, bucket: str, capacity: int, refill_per_second: float) -> Decision:
        if self._use_primary():
            try:
                decision = await self.primary.take_token(bucket, capacity, refill_per_second)
            except StateUnavailable as exc:
                self._failed(exc)
            else:
                self._succeeded()
                return decision
        if self.on_failure == "closed":
            raise StateUnavailable("the shared rate-limit state is unavailable")
        return await self.fallback.take_token(bucket, capacity, refill_per_second)

    async def cache_get(self, key: str) -> bytes | None:
        if self._use_primary():
            try:
                value = await self.primary.cache_get(key)
            except StateUnavailable as exc:
                self._failed(exc)
            else:
                self._succeeded()
                return value
        return await self.fallback.cache_get(key) if self.on_failure == "open" else None

    async def cache_set(self, key: str, value: bytes, ttl_secs: float) -> None:
        if self._use_primary():
            try:
                await self.primary.cache_set(key, value, ttl_secs)
            except StateUnavailable as exc:
                self._failed(exc)
            else:
                self._succeeded()
                return
        if self.on_failure == "open":
            await self.fallback.cache_set(key, value, ttl_secs)

    async def circuit_record(
        self, provider: str, failed: bool, params: CircuitParams
    ) -> SharedCircuit | None:
        """Shared when Redis answers; while it does not, each process keeps its own."""
        if not self._use_primary():
            return None
        try:
            shared = await self.primary.circuit_record(provider, failed, params)
        except StateUnavailable as exc:
            self._failed(exc)
            return None
        self._succeeded()
        return shared

    async def circuit_read(
        self, providers: list[str], params: CircuitParams
    ) -> dict[str, SharedCircuit]:
        if not self._use_primary():
            return {}
        try:
            found = await self.primary.circuit_read(providers, params)
        except StateUnavailable as exc:
            self._failed(exc)
            return {}
        self._succeeded()
        return found

    async def aclose(self) -> None:
        await self.primary.aclose()
