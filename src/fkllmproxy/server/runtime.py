"""Everything a request needs, built once per configuration.

A ``Runtime`` is immutable in spirit: a reload builds a new one and swaps it in with
one assignment, so a request that started on the old settings finishes on them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fkllmproxy import __version__
from fkllmproxy.auth import AccessEvents, Authenticator
from fkllmproxy.config import Config, LoadedConfig
from fkllmproxy.config.schema import ClientKey, UsageConfig
from fkllmproxy.limits import Budgets, RateLimits, build_budgets, build_rate_limits
from fkllmproxy.observability.attempts import AttemptRecorder
from fkllmproxy.observability.energy import EnergyTable
from fkllmproxy.observability.metrics import Metrics, process_metrics
from fkllmproxy.observability.tracing import Tracing
from fkllmproxy.observability.usage import UsageLedger
from fkllmproxy.providers import Provider, TransportFactory, build_provider, default_transport
from fkllmproxy.routing import Router
from fkllmproxy.routing.shared_circuits import SharedCircuits
from fkllmproxy.server.cache import ResponseCache
from fkllmproxy.state import StateBackend, build_state
from fkllmproxy.state.base import CircuitParams

if TYPE_CHECKING:
    from fkllmproxy.auth.oidc import OidcVerifier
    from fkllmproxy.server.semantic_stores import SemanticCaches

__all__ = ["Runtime", "RuntimeHolder", "build_runtime"]


@dataclass(eq=False)
class Runtime:
    loaded: LoadedConfig
    providers: dict[str, Provider]
    router: Router
    auth: Authenticator
    state: StateBackend
    rates: RateLimits | None
    cache: ResponseCache | None
    budgets: Budgets | None = None
    # Requests that started on this runtime and have not finished (the middleware
    # counts them), so a reload closes the old providers only once they are done.
    in_flight: int = 0
    # Wh per token per model, for the energy estimate (observability/energy.py).
    energy: EnergyTable = field(default_factory=lambda: EnergyTable(UsageConfig()))
    # The semantic cache's stores, when a model has cache = "semantic" (server/semantic_cache.py).
    semantic: SemanticCaches | None = None
    # The process's OpenTelemetry tracing, if on (observability/tracing.py); a reload
    # hands it to the next runtime.
    tracing: Tracing | None = None

    @property
    def config(self) -> Config:
        return self.loaded.config

    def circuit_states(self) -> dict[str, str]:
        """Each provider's circuit: ``closed``, ``half_open`` or ``open``."""
        return dict(self.router.breakers.states())

    async def aclose(self, *, keep_state: bool = False) -> None:
        await self.auth.aclose()
        for provider in self.providers.values():
            await provider.aclose()
        if not keep_state:
            await self.state.aclose()


@dataclass(eq=False)
class RuntimeHolder:
    """The app's handle on the current runtime, plus process-wide facts."""

    runtime: Runtime
    started: float = field(default_factory=time.time)
    version: str = __version__
    draining: bool = False
    metrics: Metrics = field(default=None)  # type: ignore[assignment]  # set in __post_init__
    ledger: UsageLedger | None = None
    access: AccessEvents = field(default_factory=AccessEvents)
    # Set by the daemon: re-read env file and config and swap the runtime (POST
    # /admin/reload); returns the problems that made it refuse, empty on success.
    reloader: Callable[[], Awaitable[list[str]]] | None = None
    # Set in a worker of the multi-process daemon: ask every worker (this one too) to
    # reload the config, env file and key store as they now are on disk, in place.
    reload_workers: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        if self.metrics is None:
            self.metrics = process_metrics(self.runtime.config.metrics.latency_window)
        # Every configured provider shows in the circuit gauge from the start (closed).
        self.metrics.sync_providers({name: "closed" for name in self.runtime.providers})

    def close_observers(self) -> None:
        """Flush the usage ledger and retire this process's live gauges (blocking)."""
        if self.ledger is not None:
            self.ledger.close()
        self.metrics.close()
        if self.runtime.tracing is not None:
            self.runtime.tracing.shutdown()


def _same_state(a: Config, b: Config) -> bool:
    return (a.state, a.cache.max_entries, a.rate_limit.max_tracked_callers) == (
        b.state,
        b.cache.max_entries,
        b.rate_limit.max_tracked_callers,
    )


def build_runtime(
    loaded: LoadedConfig,
    transport: TransportFactory | None = None,
    *,
    previous: Runtime | None = None,
    extra_keys: Iterable[ClientKey] = (),
    tracing: Tracing | None = None,
) -> Runtime:
    """Build providers, router, authenticator, limits and cache for ``loaded``.

    ``previous`` is the runtime being replaced on reload: its state (buckets, cache)
    carries over unless the ``[state]`` settings changed, so a reload is not a way to
    reset every caller's rate limit; so does the grace of a previous master key.
    ``extra_keys`` are client keys from the key store, merged with ``[[auth.keys]]``.
    ``tracing`` is the process's (``observability/tracing.py``); a reload keeps
    ``previous``'s.
    """
    config = loaded.config
    factory = transport or default_transport(config.server.http_transport, loaded.environ)
    providers = {p.name: build_provider(p, factory) for p in config.providers}
    same_state = previous is not None and _same_state(previous.config, config)
    state = previous.state if previous is not None and same_state else build_state(config)
    extra_keys = list(extra_keys)
    cache = ResponseCache(state, config.cache) if config.cache.enabled else None
    metrics = process_metrics() if config.metrics.enabled else None
    if tracing is None and previous is not None:
        tracing = previous.tracing
    router = Router(config, providers, record=AttemptRecorder(metrics, tracing))
    if config.state.backend == "redis":
        breaker = config.circuit_breaker
        params = CircuitParams(
            breaker.failure_threshold, breaker.timeout_secs, breaker.max_timeout_secs
        )
        router.refresh_circuits = SharedCircuits(state, router.breakers, params).refresh
    _export_circuit_changes(router, metrics)
    return Runtime(
        loaded=loaded,
        providers=providers,
        router=router,
        auth=Authenticator(
            config.auth,
            extra_keys=extra_keys,
            previous=previous.auth if previous is not None else None,
            oidc=_oidc_verifier(config, previous),
        ),
        state=state,
        rates=build_rate_limits(
            config.rate_limit,
            state,
            workers=config.server.workers,
            per_process=config.state.backend == "memory",
        ),
        cache=cache,
        budgets=build_budgets(
            config,
            state,
            [*config.auth.keys, *extra_keys],
            previous=previous.budgets if previous is not None else None,
            same_state=same_state,
            metrics=metrics,
        ),
        energy=EnergyTable(config.usage, config.pricing),
        semantic=_semantic_caches(config, state, previous if same_state else None),
        tracing=tracing,
    )


def _semantic_caches(
    config: Config, state: StateBackend, previous: Runtime | None
) -> SemanticCaches | None:
    """The semantic cache's stores; on reload a model keeps its entries when it can."""
    if not any(model.cache == "semantic" for model in config.models):
        return None
    # Imported only now: numpy is for daemons with a semantic model.
    from fkllmproxy.server.semantic_stores import build_semantic_caches

    return build_semantic_caches(config, state, previous.semantic if previous else None)


def _oidc_verifier(config: Config, previous: Runtime | None) -> OidcVerifier | None:
    """The JWT verifier for ``[auth.oidc]``; on reload it keeps the keys fetched so far."""
    if config.auth.oidc is None:
        return None
    # Imported only now: PyJWT and cryptography hold about 20 MiB of a daemon's memory,
    # which one without [auth.oidc] has no use for.
    from fkllmproxy.auth.oidc import OidcVerifier

    verifier = OidcVerifier(config.auth.oidc)
    before = previous.auth.oidc if previous is not None else None
    if before is not None:
        verifier.keys.adopt(before.keys)
    return verifier


def _export_circuit_changes(router: Router, metrics: Metrics | None) -> None:
    """Every circuit breaker state change sets ``fkllm_circuit_breaker_state`` at once
    (each worker its own series), not only when someone scrapes; nothing with
    ``[metrics] enabled = false``."""
    if metrics is None:
        return

    def changed(breaker: Any, previous: str) -> None:
        metrics.circuit_state(breaker.name, breaker.state)

    router.breakers.on_change.append(changed)
