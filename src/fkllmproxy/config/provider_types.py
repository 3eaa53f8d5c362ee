"""What the config loader asks of a provider type, and where the types are registered.

Each provider type is declared once, by its own module in ``providers/`` (a
``providers.spec.ProviderSpec``), and listed in ``providers/registry.py``. The loader
needs part of that declaration (the type names, where a key comes from, the type's own
checks, the providers a credential variable enables on its own) but config imports
nothing above it. So this module states that part as a Protocol, ``ProviderRules``,
and keeps a slot that the providers package fills when it is imported
(``register_provider_types``). ``load_config`` reads the slot, or the types it is given.

A process that loads a config without the providers package would accept any
``type`` and check no provider's rules, so ``registered_provider_types`` refuses to
answer while the slot is empty instead of letting that pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from fkllmproxy.config.schema import ProviderConfig

__all__ = [
    "NOTHING",
    "AutoProvider",
    "Problem",
    "ProviderRules",
    "register_provider_types",
    "registered_provider_types",
]


class _Nothing:
    """The value of a problem's field that was not given at all (shown as "nothing")."""

    def __repr__(self) -> str:
        return "NOTHING"


NOTHING: Any = _Nothing()


class Problem(NamedTuple):
    """One thing wrong with a provider block: its field, what was given, what would do."""

    field: str
    given: object
    message: str


class AutoProvider(NamedTuple):
    """A provider that a credential variable enables on its own (a config that names no
    providers), with the models it serves: client model name -> upstream model name."""

    block: dict[str, Any]
    models: dict[str, str]


class ProviderRules(Protocol):
    """The part of a provider type's spec that loading a config needs."""

    @property
    def type(self) -> str:
        """The ``type`` a ``[[providers]]`` block names."""
        ...

    @property
    def key_env(self) -> str | None:
        """The variable the key is read from when the block names no ``api_key_env``."""
        ...

    @property
    def reads_proxy_env(self) -> bool:
        """Whether the provider goes over the network (so ``HTTPS_PROXY`` and the like apply)."""
        ...

    def needs_key(self, provider: ProviderConfig) -> bool:
        """Whether a block without a key is a mistake."""
        ...

    def resolve(self, provider: ProviderConfig, environ: Mapping[str, str]) -> ProviderConfig:
        """The block with what the environment supplies beyond the key filled in."""
        ...

    def validate(self, provider: ProviderConfig, environ: Mapping[str, str]) -> list[Problem]:
        """The type's own problems with a resolved block (empty: none)."""
        ...

    def model_problem(self, model: str) -> str | None:
        """Why a target's upstream model name cannot be used with this type, or ``None``."""
        ...

    def auto_providers(self, environ: Mapping[str, str]) -> list[AutoProvider]:
        """The providers of this type that ``environ``'s credential variables enable."""
        ...


_registered: dict[str, ProviderRules] = {}


def register_provider_types(types: Iterable[ProviderRules]) -> None:
    """Make ``types`` (in their order) the ones ``load_config`` checks blocks against."""
    _registered.update((rules.type, rules) for rules in types)


def registered_provider_types() -> Mapping[str, ProviderRules]:
    """The registered provider types by name; ``RuntimeError`` while there are none."""
    if not _registered:
        raise RuntimeError(
            "no provider types are registered: import fkllmproxy.providers before "
            "loading a config (or pass provider_types= to load_config)"
        )
    return _registered
