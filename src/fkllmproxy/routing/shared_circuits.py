"""Circuit-breaker state shared through the state backend (Redis).

Each process keeps its own breakers, so the request path never waits on Redis to ask
"may I call this provider?". What is shared is what they learn: every failure, and
every success that changes something, is pushed in the background to one Redis hash
per provider by an atomic script applying the same transitions as the local breaker
(so failures seen by different processes add up to one count, and one opening counts
for all). Each process brings its breakers up to date from Redis before routing when
its copy is older than ``refresh_secs``: one read per interval, not per request.

A half-open circuit lets one probe through per process rather than one in all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from fkllmproxy.routing.breaker import CircuitBreaker, CircuitBreakers
from fkllmproxy.state.base import CircuitParams, SharedCircuit, SharedCircuitStore

__all__ = ["SharedCircuits"]


class SharedCircuits:
    def __init__(
        self,
        store: SharedCircuitStore,
        breakers: CircuitBreakers,
        params: CircuitParams,
        *,
        refresh_secs: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._breakers = breakers
        self._params = params
        self._refresh_secs = refresh_secs
        self._clock = clock
        self._fresh_until = 0.0
        self._refreshing: asyncio.Future[None] | None = None
        self._shared_failures: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        breakers.on_outcome.append(self._on_outcome)

    def _on_outcome(self, breaker: CircuitBreaker, failed: bool, changed: bool) -> None:
        if not failed and not changed and not self._shared_failures.get(breaker.name):
            return  # a success confirming a closed circuit nobody counts failures for
        task = asyncio.get_running_loop().create_task(self._push(breaker, failed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push(self, breaker: CircuitBreaker, failed: bool) -> None:
        shared = await self._store.circuit_record(breaker.name, failed, self._params)
        if shared is not None:
            self._apply(breaker, shared)

    def _apply(self, breaker: CircuitBreaker, shared: SharedCircuit) -> None:
        self._shared_failures[breaker.name] = shared.failures
        breaker.apply_shared(shared.state, shared.failures, shared.cooldown, shared.retry_in)

    async def refresh(self) -> None:
        """Bring every breaker up to date unless that was done in the last interval."""
        if self._clock() < self._fresh_until:
            return
        if self._refreshing is not None:
            await asyncio.shield(self._refreshing)
            return
        self._refreshing = asyncio.get_running_loop().create_future()
        try:
            names = [breaker.name for breaker in self._breakers]
            found = await self._store.circuit_read(names, self._params)
            for name, shared in found.items():
                self._apply(self._breakers[name], shared)
            self._fresh_until = self._clock() + self._refresh_secs
        finally:
            self._refreshing.set_result(None)
            self._refreshing = None
