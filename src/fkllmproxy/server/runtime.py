"""Everything a request needs, built once per configuration.

A ``Runtime`` is immutable in spirit: a reload builds a new one and swaps it in with
one assignment, so a request that started on the old settings finishes on them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from fkllmproxy import __version__
from fkllmproxy.auth import AccessEvents, Authenticator, RateLimiter
from fkllmproxy.config import Config, LoadedConfig
from fkllmproxy.config.schema import ClientKey
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
    # Requests that started on this runtime and have not finished (the middleware
    # counts them), so a reload closes the old providers only once they are done.
    in_flight: int = 0

    @property
    def config(self) -> Config:
        return self.loaded.config

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
    access: AccessEvents = field(default_factory=AccessEvents)
    # Set by the daemon: re-read env file and config and swap the runtime (POST
    # /admin/reload); returns the problems that made it refuse, empty on success.
    reloader: Callable[[], Awaitable[list[str]]] | None = None


def build_runtime(
    loaded: LoadedConfig,
    transport: TransportFactory | None = None,
    *,
    previous: Runtime | None = None,
    extra_keys: Iterable[ClientKey] = (),
) -> Runtime:
    """Build providers, router, authenticator and limiter for ``loaded``.

    ``previous`` is the runtime being replaced on reload: its rate-limit buckets and
    the grace of a previous master key carry over. ``extra_keys`` are client keys from
    the key store, merged with ``[[auth.keys]]``.
    """
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
    if limiter is not None and previous is not None and previous.limiter is not None:
        limiter.adopt(previous.limiter)
    return Runtime(
        loaded=loaded,
        providers=providers,
        router=Router(config, providers),
        auth=Authenticator(
            config.auth,
            extra_keys=extra_keys,
            previous=previous.auth if previous is not None else None,
        ),
        limiter=limiter,
    )
