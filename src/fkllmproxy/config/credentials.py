"""Providers enabled by credentials alone, for a config that names no providers.

``GOOGLE_API_KEY=... fkllm serve`` must serve ``gemini-pro`` with no file at all, so
each provider type lists the well-known credential variables that bring a provider
block and a set of model names (``ProviderRules.auto_providers``). Where two
credentials offer the same model name (Gemini API and Vertex AI both offer
``gemini-pro``), the targets are merged in the order of the registered types, so the
second is the first's fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fkllmproxy.config.provider_types import ProviderRules

__all__ = ["credential_providers"]


def credential_providers(
    environ: Mapping[str, str], types: Iterable[ProviderRules]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Provider and model blocks (plain data) for every credential set in ``environ``."""
    providers: list[dict[str, Any]] = []
    models: dict[str, list[dict[str, str]]] = {}
    for rules in types:
        for found in rules.auto_providers(environ):
            providers.append(found.block)
            for client_name, upstream in found.models.items():
                models.setdefault(client_name, []).append(
                    {"provider": found.block["name"], "model": upstream}
                )
    model_blocks = [{"name": name, "targets": targets} for name, targets in models.items()]
    return providers, model_blocks
