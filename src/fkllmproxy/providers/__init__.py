"""Provider adapters: one per provider type, over the small interface in ``base``.

Nothing here imports the web layer; adapters take plain data and return bytes.
"""

from __future__ import annotations

from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.providers.base import (
    ChatRequest,
    Completion,
    EmbeddingRequest,
    GeminiApiProvider,
    GeminiCall,
    MessagesCall,
    MessagesProvider,
    Provider,
    StreamingCompletion,
    Usage,
)
from fkllmproxy.providers.http import TransportFactory, default_transport

__all__ = [
    "ChatRequest",
    "Completion",
    "EmbeddingRequest",
    "GeminiApiProvider",
    "GeminiCall",
    "MessagesCall",
    "MessagesProvider",
    "Provider",
    "StreamingCompletion",
    "TransportFactory",
    "Usage",
    "build_provider",
    "default_transport",
]


def build_provider(config: ProviderConfig, transport: TransportFactory) -> Provider:
    """The adapter for ``config.type``."""
    if config.type == "mock":
        from fkllmproxy.providers.mock import MockProvider

        return MockProvider(config)
    if config.type == "openai":
        from fkllmproxy.providers.openai import OpenAIProvider

        return OpenAIProvider(config, transport)
    if config.type == "anthropic":
        from fkllmproxy.providers.anthropic import AnthropicProvider

        return AnthropicProvider(config, transport)
    if config.type == "gemini":
        from fkllmproxy.providers.gemini import GeminiProvider

        return GeminiProvider(config, transport)
    if config.type == "vertex":
        from fkllmproxy.providers.vertex import VertexProvider

        return VertexProvider(config, transport)
    if config.type == "azure":
        from fkllmproxy.providers.azure import AzureProvider

        return AzureProvider(config, transport)
    if config.type == "cohere":
        from fkllmproxy.providers.cohere import CohereProvider

        return CohereProvider(config, transport)
    from fkllmproxy.errors import ConfigError

    raise ConfigError([f"provider {config.name!r}: type {config.type!r} is not available yet"])
