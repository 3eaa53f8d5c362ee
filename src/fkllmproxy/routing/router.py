"""From the model name a client sends to the provider that answers it.

A model maps to an ordered list of targets (provider + upstream model). A retryable
failure (connect error, timeout, 5xx, 429) moves on to the next target; a request the
provider refused as the client's own fault goes straight back to the client.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from fkllmproxy.config.schema import Config, ModelConfig, Target
from fkllmproxy.errors import NotFound, UpstreamError, UpstreamUnavailable
from fkllmproxy.observability.attempts import record_attempt
from fkllmproxy.providers import Provider

__all__ = ["Attempted", "Router"]

T = TypeVar("T")


@dataclass(slots=True)
class Attempted:
    """What routing did for one request: who answered, after how many tries."""

    provider: str | None = None
    upstream_model: str | None = None
    attempts: int = 0


class Router:
    """Resolves model names and runs a call against a model's targets in order."""

    def __init__(self, config: Config, providers: Mapping[str, Provider]) -> None:
        self.providers = providers
        self.models: dict[str, ModelConfig] = {m.name: m for m in config.models}
        self.model_names = sorted(self.models)
        self._max_attempts = max(config.retry.max_attempts, 1)

    def resolve(self, name: Any) -> ModelConfig:
        """The model block for ``name``; ``NotFound`` lists the valid names."""
        model = self.models.get(name) if isinstance(name, str) else None
        if model is None:
            valid = ", ".join(self.model_names)
            raise NotFound(
                f"The model {name!r} does not exist. Available models: {valid}", param="model"
            )
        return model

    async def call(
        self,
        model: ModelConfig,
        attempt: Callable[[Provider, Target], Awaitable[T]],
        attempted: Attempted,
    ) -> T:
        """Run ``attempt`` against each target in turn until one succeeds."""
        last: UpstreamError | None = None
        targets = model.targets
        budget = max(self._max_attempts, len(targets))
        for index in range(budget):
            target = targets[index % len(targets)]
            provider = self.providers[target.provider]
            attempted.attempts += 1
            attempted.provider = provider.name
            attempted.upstream_model = target.model
            started = time.perf_counter()
            try:
                result = await attempt(provider, target)
            except UpstreamError as exc:
                record_attempt(provider.name, target.model, attempted.attempts, started, exc)
                if not exc.retryable:
                    raise
                last = exc
            except Exception as exc:
                record_attempt(provider.name, target.model, attempted.attempts, started, exc)
                raise
            else:
                record_attempt(provider.name, target.model, attempted.attempts, started)
                return result
            if index + 1 >= len(targets):
                break
        if last is None:
            raise UpstreamUnavailable("no target could be tried")
        if len(targets) > 1 and isinstance(last, UpstreamUnavailable):
            raise UpstreamUnavailable(
                f"all {len(targets)} targets of model {model.name!r} failed; last: {last.message}",
                provider=last.provider,
                upstream_status=last.upstream_status,
            )
        raise last
