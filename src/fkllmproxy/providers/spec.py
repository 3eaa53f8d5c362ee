"""One provider type, declared in one place: its ``ProviderSpec``.

A provider type's module (``providers/azure.py``, ...) ends with its spec: the
``type`` name, how its adapter is built, where its key comes from, its own checks on a
``[[providers]]`` block, and the credential variables that enable it with no config
file. ``providers/registry.py`` lists every spec; that list is all the rest of the
program knows of provider types. The config loader sees a spec through
``config.provider_types.ProviderRules`` (config imports nothing above it): the registry
hands it the specs when the providers package is imported.

Adding a type is its module (adapter and spec), one line in the registry and its tests::

    SPEC = ProviderSpec(
        type="example",
        build=ExampleProvider,  # (ProviderConfig, TransportFactory) -> Provider
        key_env="EXAMPLE_API_KEY",
        offers=(KeyOffer("EXAMPLE_API_KEY", name="example", models={"ex-1": "ex-1"}),),
    )
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, final

from fkllmproxy.config.provider_types import AutoProvider, Problem
from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.providers.base import Provider
from fkllmproxy.providers.http import TransportFactory
from fkllmproxy.wire.paths import is_safe_segment

__all__ = ["KeyOffer", "Offer", "ProviderSpec"]

Builder = Callable[[ProviderConfig, TransportFactory], Provider]
# A provider a credential variable enables on its own, found in the environment or not.
Offer = Callable[[Mapping[str, str]], AutoProvider | None]

_MODEL_IN_PATH = (
    "this provider puts the model in the URL path: use letters, digits and . _ - @ + only"
)


def _no_problems(provider: ProviderConfig, environ: Mapping[str, str]) -> list[Problem]:
    return []


def _unchanged(provider: ProviderConfig, environ: Mapping[str, str]) -> ProviderConfig:
    return provider


@final
@dataclass(frozen=True)
class KeyOffer:
    """A provider block that one set variable enables, serving ``models`` (client model
    name -> upstream model name); the block reads its key from that variable."""

    variable: str
    name: str
    models: Mapping[str, str]
    base_url: str | None = None

    def __call__(self, environ: Mapping[str, str]) -> AutoProvider | None:
        if not environ.get(self.variable):
            return None
        block: dict[str, Any] = {"name": self.name, "api_key_env": self.variable}
        if self.base_url is not None:
            block["base_url"] = self.base_url
        return AutoProvider(block, dict(self.models))


@final
@dataclass(frozen=True, kw_only=True)
class ProviderSpec:
    """Everything about one provider type that is not its adapter's own business.

    - ``build`` makes the adapter from a checked block (the class itself, usually).
    - ``key_env``: the variable its key is read from when the block names none; a
      block without a key is refused when ``key_required`` says so (default: whenever
      there is a ``key_env``).
    - ``reads_proxy_env``: false for a type that never connects anywhere.
    - ``model_in_path``: the upstream model name goes into the URL path, so it is held
      to ``wire.paths``' rule when the config is loaded.
    - ``resolve`` fills in what the environment supplies beyond the key; ``validate``
      returns the type's own problems with the resolved block. ``build_provider``
      checks ``validate`` again, so an adapter needs no checks of its own.
    - ``offers``: the providers it brings from credential variables alone.
    """

    type: str
    build: Builder
    key_env: str | None = None
    key_required: Callable[[ProviderConfig], bool] | None = None
    reads_proxy_env: bool = True
    model_in_path: bool = False
    resolve: Callable[[ProviderConfig, Mapping[str, str]], ProviderConfig] = _unchanged
    validate: Callable[[ProviderConfig, Mapping[str, str]], list[Problem]] = _no_problems
    offers: tuple[Offer, ...] = ()

    def needs_key(self, provider: ProviderConfig) -> bool:
        """Whether a block of this type without a key is a mistake."""
        if self.key_required is None:
            return self.key_env is not None
        return self.key_required(provider)

    def model_problem(self, model: str) -> str | None:
        """Why ``model`` cannot be a target's upstream model here, or ``None``."""
        if self.model_in_path and not is_safe_segment(model):
            return _MODEL_IN_PATH
        return None

    def auto_providers(self, environ: Mapping[str, str]) -> list[AutoProvider]:
        """The blocks of this type that ``environ``'s credential variables enable."""
        found = []
        for offer in self.offers:
            enabled = offer(environ)
            if enabled is not None:
                block = {"name": enabled.block["name"], "type": self.type}
                found.append(AutoProvider({**block, **enabled.block}, enabled.models))
        return found
