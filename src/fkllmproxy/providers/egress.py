"""How a provider's connections leave the host: which forward proxy, and whose TLS trust.

Companies often allow calls out of their network only through a forward proxy, and run
providers (or gateways of their own) behind a private CA, sometimes asking for a client
certificate. Both are settled here, once per provider, for whichever transport is used:

- **Proxy**: ``proxy = "http://user:pass@host:port"`` on the provider; ``"none"`` for no
  proxy at all; absent: the environment's ``HTTPS_PROXY`` / ``HTTP_PROXY`` (lower case
  first, as curl reads them) and ``NO_PROXY``, read from the daemon's environment and its
  env file. The host list of ``NO_PROXY`` is matched by the standard library's own rules
  (``urllib.request.proxy_bypass_environment``: names, domain suffixes, ``*``).
  An https origin is reached through a ``CONNECT`` tunnel, a plain-http one by asking
  the proxy in absolute form; either way with ``Proxy-Authorization: Basic`` when the
  proxy URL carries a user.
- **TLS**: the system's CA bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set (in
  the environment or the env file), or the provider's ``ca_file`` alone; a client
  certificate (``client_cert``, ``client_key``) for mutual TLS.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

# The matcher urllib's own proxy handling uses for NO_PROXY; not in typeshed's stubs.
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

import httpx

from fkllmproxy.config.egress import NO_PROXY, proxy_parts
from fkllmproxy.config.schema import ProviderConfig

__all__ = ["Proxy", "ProxyChoice", "proxy_choice", "refused_by_proxy", "tls_context"]


@dataclass(frozen=True, slots=True)
class Proxy:
    """A forward proxy: where to connect, and the header that authenticates to it."""

    host: str
    port: int
    authorization: bytes | None  # the value of Proxy-Authorization, if the URL has a user
    credentials: tuple[str, str] | None = None  # (user, password), for clients that build it

    @classmethod
    def from_url(cls, url: str) -> Proxy:
        """The proxy of a URL the config loader accepted (``config/egress.py``)."""
        parts = proxy_parts(url)
        if parts is None:
            raise ValueError("not an http:// proxy URL (the config check lets none through)")
        if parts.user is None:
            return cls(parts.host, parts.port, None)
        pair = f"{parts.user}:{parts.password}"
        authorization = b"Basic " + base64.b64encode(pair.encode())
        return cls(parts.host, parts.port, authorization, (parts.user, parts.password))

    @property
    def url(self) -> str:
        """The proxy's address as a URL, without its credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def for_httpx(self) -> httpx.Proxy:
        headers = {"Proxy-Authorization": self.authorization.decode()} if self.authorization else {}
        return httpx.Proxy(self.url, headers=headers)


@dataclass(frozen=True, slots=True)
class ProxyChoice:
    """The proxy (or none) for each origin a provider's transport connects to."""

    fixed: Proxy | None = None  # the provider's own ``proxy``: every origin
    by_scheme: Mapping[str, Proxy] | None = None  # from the environment
    no_proxy: str = ""

    def for_origin(self, scheme: str, host: str, port: int) -> Proxy | None:
        if self.fixed is not None:
            return self.fixed
        if not self.by_scheme:
            return None
        proxy = self.by_scheme.get(scheme)
        if proxy is None or (self.no_proxy and _bypassed(host, port, self.no_proxy)):
            return None
        return proxy


def refused_by_proxy(proxy: Proxy) -> httpx.ProxyError:
    """What a 407 from the proxy itself becomes: the provider was never reached."""
    return httpx.ProxyError(
        f"the proxy {proxy.host}:{proxy.port} refused the request (407): check the user "
        "and password in the provider's proxy setting or HTTPS_PROXY / HTTP_PROXY"
    )


def proxy_choice(provider: ProviderConfig, environ: Mapping[str, str]) -> ProxyChoice:
    """Where ``provider``'s connections go: its own ``proxy``, none, or the environment's."""
    if provider.proxy == NO_PROXY:
        return ProxyChoice()
    if provider.proxy:
        return ProxyChoice(fixed=Proxy.from_url(provider.proxy))
    by_scheme = {}
    for scheme in ("http", "https"):
        url = environ.get(f"{scheme}_proxy") or environ.get(f"{scheme.upper()}_PROXY")
        if url:
            by_scheme[scheme] = Proxy.from_url(url)
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    return ProxyChoice(by_scheme=by_scheme or None, no_proxy=no_proxy)


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    return bool(
        proxy_bypass_environment(host, {"no": no_proxy})
        or proxy_bypass_environment(f"{host}:{port}", {"no": no_proxy})
    )


def tls_context(provider: ProviderConfig, environ: Mapping[str, str]) -> ssl.SSLContext:
    """The TLS settings of ``provider``'s https connections, made once.

    ``ssl.create_default_context`` reads ``SSL_CERT_FILE`` only from the process's own
    environment; the env file's value is applied here as well, so both places work.
    """
    cafile = provider.ca_file or environ.get("SSL_CERT_FILE") or None
    capath = None if provider.ca_file else environ.get("SSL_CERT_DIR") or None
    context = ssl.create_default_context(cafile=cafile, capath=capath)
    if provider.client_cert:
        context.load_cert_chain(provider.client_cert, provider.client_key)
    context.set_alpn_protocols(["http/1.1"])
    return context
