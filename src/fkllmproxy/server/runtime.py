"""Everything a request needs, built once per configuration.

A ``Runtime`` is immutable in spirit: a reload builds a new one and swaps it in with
one assignment, so a request that started on the old settings finishes on them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fkllmproxy import __version__
from fkllmproxy.auth import Authenticator, RateLimiter
from fkllmproxy.config import Config, LoadedConfig
from fkllmproxy.providers import Provider, TransportFactory, build_provider, default_transport
from fkllmproxy.routing import Router

__all__ = ["Runtime", "RuntimeHolder", "build_runtime"]


@dataclass(eq=False)
class Runtime:
    loaded: LoadedConfig
    providers: dict[str, Provider]
    router: Router
    auth: Authenticator
    limiter: RateLimiter | None

    @property
    def config(self) -> Config:
        return self.loaded.config

    def circuit_states(self) -> dict[str, str]:
        """Each provider's circuit: ``closed``, ``half_open`` or ``open``."""
        return dict(self.router.breakers.states())

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()


@dataclass(eq=False)
class RuntimeHolder:
    """The app's handle on the current runtime, plus process-wide facts."""

    runtime: Runtime
    started: float = field(default_factory=time.time)
    version: str = __version__
    draining: bool = False


def build_runtime(loaded: LoadedConfig, transport: TransportFactory | None = None) -> Runtime:
    """Build providers, router, authenticator and limiter for ``loaded``."""
    config = loaded.config
    factory = transport or default_transport(config.server.http_transport)
    providers = {p.name: build_provider(p, factory) for p in config.providers}
    limits = config.rate_limit
    limiter = (
        RateLimiter(
            limits.capacity, limits.refill_per_second, max_tracked=limits.max_tracked_callers
        )
        if limits.enabled
        else None
    )
    return Runtime(
        loaded=loaded,
        providers=providers,
        router=Router(config, providers),
        auth=Authenticator(config.auth),
        limiter=limiter,
    )
