"""Every provider type there is, and building a provider's adapter from its block.

Each type is declared by its own module's ``SPEC`` (``providers/spec.py``); this list
is the one place that names them all. Its order is the order in which credential
variables enable providers when no config file names any, and so the order of their
models in ``/v1/models`` and of the targets a model name gets from two of them
(Gemini's ``gemini-pro`` falls back to Vertex's, OpenAI's ``gpt-4o`` to Azure's). An
unknown ``type`` is answered with the names in this order too.

Importing this module (the providers package does) registers the specs with the config
loader, which checks each ``[[providers]]`` block against its type's rules.
"""

from __future__ import annotations

from fkllmproxy.config.provider_types import register_provider_types
from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import ConfigError
from fkllmproxy.providers import anthropic, azure, cohere, gemini, mock, openai, vertex
from fkllmproxy.providers.base import Provider
from fkllmproxy.providers.http import TransportFactory
from fkllmproxy.providers.spec import ProviderSpec

__all__ = ["PROVIDER_SPECS", "build_provider", "spec_of"]

PROVIDER_SPECS: tuple[ProviderSpec, ...] = (
    gemini.SPEC,
    vertex.SPEC,
    openai.SPEC,
    anthropic.SPEC,
    azure.SPEC,
    cohere.SPEC,
    mock.SPEC,
)

register_provider_types(PROVIDER_SPECS)

_BY_TYPE = {spec.type: spec for spec in PROVIDER_SPECS}


def spec_of(provider_type: str) -> ProviderSpec | None:
    """The spec of the type called ``provider_type``, if there is one."""
    return _BY_TYPE.get(provider_type)


def build_provider(config: ProviderConfig, transport: TransportFactory) -> Provider:
    """The adapter for ``config.type``, once the type's own checks pass.

    The loader has run those checks already; they run again here so that an adapter can
    rely on them whoever built its block (a test, a tool).
    """
    spec = spec_of(config.type)
    if spec is None:
        raise ConfigError([f"provider {config.name!r}: type {config.type!r} is not available"])
    problems = spec.validate(config, {})
    if problems:
        raise ConfigError([f"provider {config.name!r}: {p.field}: {p.message}" for p in problems])
    return spec.build(config, transport)
