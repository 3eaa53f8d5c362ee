"""The rules for a provider's egress settings, checked once when the config is loaded.

``providers/egress.py`` builds the proxy route and the TLS context from these settings;
the loader checks them here first, so that every mistake (a proxy URL that is not
``http://``, a CA file that is not PEM, a key without its certificate) is reported
with the others, and the daemon never fails on them after it started.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from fkllmproxy.config.schema import ProviderConfig

__all__ = ["NO_PROXY", "PROXY_VARIABLES", "ProxyParts", "egress_problems", "proxy_parts"]

NO_PROXY = "none"  # ``proxy = "none"``: connect directly, whatever the environment says
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")


class ProxyParts(NamedTuple):
    host: str
    port: int
    user: str | None
    password: str


def proxy_parts(url: str) -> ProxyParts | None:
    """``http://[user[:password]@]host[:port]`` taken apart (port 80 by default), or
    ``None`` when ``url`` is not such a URL (another scheme, no host, a bad port)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    try:
        port = parts.port or 80
    except ValueError:
        return None
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        return None
    user = unquote(parts.username) if parts.username is not None else None
    return ProxyParts(parts.hostname, port, user, unquote(parts.password or ""))


def egress_problems(
    provider: ProviderConfig, environ: Mapping[str, str], *, proxy_env: bool = True
) -> Iterator[tuple[str, str, str]]:
    """(field, value, problem) for each egress setting of ``provider`` that cannot work;
    ``proxy_env`` false for a type that never connects anywhere (the proxy variables
    of the environment are then not its business)."""
    if provider.proxy and provider.proxy != NO_PROXY and proxy_parts(provider.proxy) is None:
        yield "proxy", provider.proxy, 'use "http://[user:password@]host:port", or "none"'
    if provider.proxy is None and proxy_env:
        for name in PROXY_VARIABLES:
            value = environ.get(name)
            if value and proxy_parts(value) is None:
                yield (
                    "proxy",
                    f"${name}",
                    f"{name} is not an http:// proxy URL; fix it, or set proxy on the provider",
                )
    if provider.client_key and not provider.client_cert:
        yield "client_key", provider.client_key, "client_key needs client_cert"
    if provider.ca_file:
        try:
            ssl.create_default_context(cafile=provider.ca_file)
        except (OSError, ssl.SSLError) as exc:
            yield "ca_file", provider.ca_file, f"cannot be read as PEM certificates ({exc})"
    if provider.client_cert:
        try:
            ssl.create_default_context().load_cert_chain(provider.client_cert, provider.client_key)
        except (OSError, ssl.SSLError) as exc:
            where = "client_key" if provider.client_key else "client_cert"
            value = provider.client_key or provider.client_cert
            yield where, value, f"no certificate and matching key could be loaded ({exc})"
