"""Provider adapters: one per provider type, over the small interface in ``base``.

Nothing here imports the web layer; adapters take plain data and return bytes. Each
type's module declares its ``SPEC`` and ``registry`` lists them; importing this package
registers them with the config loader (``config/provider_types.py``).
"""

from __future__ import annotations

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
from fkllmproxy.providers.registry import PROVIDER_SPECS, build_provider, spec_of
from fkllmproxy.providers.spec import ProviderSpec

__all__ = [
    "PROVIDER_SPECS",
    "ChatRequest",
    "Completion",
    "EmbeddingRequest",
    "GeminiApiProvider",
    "GeminiCall",
    "MessagesCall",
    "MessagesProvider",
    "Provider",
    "ProviderSpec",
    "StreamingCompletion",
    "TransportFactory",
    "Usage",
    "build_provider",
    "default_transport",
    "spec_of",
]
