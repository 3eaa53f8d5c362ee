"""Secrets out of everything that is printed: check-config, /admin, startup logs."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fkllmproxy.config.schema import SECRET_FIELDS, Config, to_builtins

__all__ = ["REDACTED", "redact_url", "redacted", "secret_values"]

REDACTED = "<redacted>"
_HEADER_SECRET = re.compile(r"(auth|key|token|secret|password|cookie)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with any password replaced, e.g. ``redis://:<redacted>@host:6379/0``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}:{REDACTED}@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _walk(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v) for v in value]
    if key in SECRET_FIELDS and value:
        return REDACTED
    if key in ("url", "proxy") and isinstance(value, str):
        return redact_url(value)
    return value


def redacted(config: Config) -> dict[str, Any]:
    """The config as plain data with every secret replaced by ``<redacted>``."""
    data = _walk(to_builtins(config))
    for provider in data.get("providers", []):
        provider["headers"] = {
            k: (REDACTED if _HEADER_SECRET.search(k) else v)
            for k, v in provider.get("headers", {}).items()
        }
    return data


def secret_values(config: Config) -> set[str]:
    """Every secret value in ``config``, for scrubbing log lines as a last line of defence.

    Master keys, provider keys, secret-looking provider headers (with and without a
    ``Bearer`` prefix), the password of a provider's proxy and of the state URL.
    """
    auth = config.auth
    values = {auth.master_key, auth.previous_master_key}
    for provider in config.providers:
        values.add(provider.api_key)
        if provider.proxy:
            values.add(urlsplit(provider.proxy).password)
        for name, value in provider.headers.items():
            if _HEADER_SECRET.search(name):
                values.add(value)
                values.add(value.partition(" ")[2])
    if config.state.url:
        values.add(urlsplit(config.state.url).password)
    return {v for v in values if v}
