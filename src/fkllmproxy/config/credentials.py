"""Providers enabled by credentials alone, for a config that names no providers.

``GOOGLE_API_KEY=... fkllm serve`` must serve ``gemini-pro`` with no file at all, so
each well-known credential variable brings a provider block and a set of model names.
Where two credentials offer the same model name (Gemini API and Vertex AI both offer
``gemini-pro``), the targets are merged in the order below, so the second is the first's
fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_BASE_URLS", "DEFAULT_KEY_ENV", "credential_providers"]

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "gemini": "https://generativelanguage.googleapis.com",
    "anthropic": "https://api.anthropic.com",
    "cohere": "https://api.cohere.com",
}

# The variable a provider type reads its key from when its block names none.
DEFAULT_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "gemini": "GOOGLE_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "azure": "AZURE_OPENAI_API_KEY",
    "cohere": "COHERE_API_KEY",
}

_GEMINI_MODELS = {
    "gemini-pro": "gemini-2.5-pro",
    "gemini-flash": "gemini-2.5-flash",
    "gemini-2.5-pro": "gemini-2.5-pro",
    "gemini-2.5-flash": "gemini-2.5-flash",
    "gemini-2.5-flash-lite": "gemini-2.5-flash-lite",
    "gemini-2.0-flash": "gemini-2.0-flash",
    "text-embedding-004": "text-embedding-004",
    "gemini-embedding-001": "gemini-embedding-001",
}

# (variable, provider block, {client model name: upstream model name})
_CREDENTIALS: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    (
        "GOOGLE_API_KEY",
        {"name": "gemini", "type": "gemini", "api_key_env": "GOOGLE_API_KEY"},
        _GEMINI_MODELS,
    ),
    (
        "GOOGLE_APPLICATION_CREDENTIALS",
        {"name": "vertex", "type": "vertex"},
        {k: v for k, v in _GEMINI_MODELS.items() if k != "gemini-embedding-001"},
    ),
    (
        "OPENAI_API_KEY",
        {"name": "openai", "type": "openai", "api_key_env": "OPENAI_API_KEY"},
        {
            m: m
            for m in (
                "gpt-4o",
                "gpt-4o-mini",
                "gpt-4.1",
                "gpt-4.1-mini",
                "gpt-4.1-nano",
                "o3-mini",
                "o4-mini",
                "text-embedding-3-small",
                "text-embedding-3-large",
            )
        },
    ),
    (
        "ANTHROPIC_API_KEY",
        {"name": "anthropic", "type": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"},
        {
            m: m
            for m in (
                "claude-opus-5",
                "claude-sonnet-5",
                "claude-haiku-4-5",
                "claude-opus-4-7",
                "claude-sonnet-4-6",
                "claude-sonnet-4-5",
                "claude-opus-4-1",
            )
        },
    ),
    (
        "GROQ_API_KEY",
        {
            "name": "groq",
            "type": "openai",
            "base_url": "https://api.groq.com/openai/v1",
            "api_key_env": "GROQ_API_KEY",
        },
        {m: m for m in ("llama-3.3-70b-versatile", "llama-3.1-8b-instant")},
    ),
    (
        "OPENROUTER_API_KEY",
        {
            "name": "openrouter",
            "type": "openai",
            "base_url": "https://openrouter.ai/api/v1",
            "api_key_env": "OPENROUTER_API_KEY",
        },
        {"openrouter/auto": "openrouter/auto"},
    ),
]


def credential_providers(
    environ: Mapping[str, str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Provider and model blocks (plain data) for every credential set in ``environ``."""
    providers: list[dict[str, Any]] = []
    models: dict[str, list[dict[str, str]]] = {}
    for variable, block, model_map in _CREDENTIALS:
        if not environ.get(variable):
            continue
        providers.append(dict(block))
        for client_name, upstream in model_map.items():
            models.setdefault(client_name, []).append(
                {"provider": block["name"], "model": upstream}
            )
    azure_endpoint = environ.get("AZURE_OPENAI_ENDPOINT")
    if environ.get("AZURE_OPENAI_API_KEY") and azure_endpoint:
        providers.append(
            {
                "name": "azure",
                "type": "azure",
                "base_url": azure_endpoint,
                "api_key_env": "AZURE_OPENAI_API_KEY",
            }
        )
        deployments = environ.get("AZURE_OPENAI_DEPLOYMENTS", "gpt-4o,gpt-4o-mini")
        for deployment in filter(None, (d.strip() for d in deployments.split(","))):
            models.setdefault(deployment, []).append({"provider": "azure", "model": deployment})
    model_blocks = [{"name": name, "targets": targets} for name, targets in models.items()]
    return providers, model_blocks
