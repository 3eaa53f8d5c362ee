"""The OIDC issuer's signing keys (its JWKS), fetched off the request path and cached.

Where the keys come from: ``jwks_url`` when configured, else the ``jwks_uri`` of
``{issuer}/.well-known/openid-configuration`` (OpenID Connect Discovery). When they are
fetched:

- at start, by a background task (``start``), which fetches them again every
  ``refresh_secs``, and every 30 s while none could be had yet;
- when a token names a ``kid`` the cache does not know (``refetch``): at most once per
  ``MIN_REFETCH_SECS``, one fetch shared by every request that waits for it, each
  waiting at most ``wait_secs``.

A failed fetch keeps the keys already cached: while the issuer is unreachable, tokens
signed with known keys keep working. Only asymmetric keys meant for signatures are
kept (``oct`` keys never are: an HMAC key would let anyone holding it mint tokens).
``clock`` (monotonic seconds) is injectable, so the 30 s and refresh rules are tested
without sleeping::

    cache = JwksCache(issuer, None, refresh_secs=3600)
    cache.start()                      # in the event loop
    key = cache.lookup(kid, "RS256")  # a PyJWK, or KeyNotFound / KeysUnavailable
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from fkllmproxy.observability.logging import get_logger

__all__ = [
    "MIN_REFETCH_SECS",
    "AlgorithmMismatch",
    "Fetch",
    "JwksCache",
    "JwksError",
    "KeyNotFound",
    "KeysUnavailable",
    "discovery_url",
    "http_get",
    "is_trusted_url",
    "parse_jwks",
]

_log = get_logger("auth")

MIN_REFETCH_SECS: Final = 30.0
_MAX_BODY = 1024 * 1024  # a JWKS or discovery document is a few KiB

# ``fetch(url, timeout_secs)`` returns the body of a 200 answer or raises.
Fetch = Callable[[str, float], Awaitable[bytes]]


class JwksError(Exception):
    """Raised when a discovery document or a JWKS cannot be fetched or read."""


class KeyNotFound(Exception):
    """Raised by ``lookup`` when the cached keys have none with the token's ``kid``."""


class KeysUnavailable(Exception):
    """Raised by ``lookup`` when no keys were ever fetched (the issuer was unreachable)."""


class AlgorithmMismatch(Exception):
    """Raised by ``lookup`` when the key with that ``kid`` is not for the token's ``alg``."""


def discovery_url(issuer: str) -> str:
    """Where the issuer publishes its OpenID Connect configuration."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


_tls: ssl.SSLContext | None = None


async def _tls_context() -> ssl.SSLContext:
    """The TLS context for the issuer, made once in a thread: loading the CA bundle
    takes tens of milliseconds, which the event loop must not spend."""
    global _tls
    if _tls is None:
        import httpx

        _tls = await asyncio.to_thread(httpx.create_ssl_context)
    return _tls


async def http_get(url: str, limit_secs: float) -> bytes:
    """GET ``url`` with httpx (no redirects: the issuer names its own URLs)."""
    import httpx

    tls = await _tls_context()
    try:
        async with httpx.AsyncClient(
            timeout=limit_secs, follow_redirects=False, verify=tls
        ) as client:
            response = await client.get(url, headers={"accept": "application/json"})
    except httpx.HTTPError as exc:
        raise JwksError(f"{url}: {type(exc).__name__}: {exc}".rstrip(": ")) from None
    if response.status_code != 200:
        raise JwksError(f"{url} answered HTTP {response.status_code}")
    if len(response.content) > _MAX_BODY:
        raise JwksError(f"{url}: answer larger than {_MAX_BODY} bytes")
    return response.content


def is_trusted_url(url: str) -> bool:
    """https, or plain http to a loopback address (a local issuer, tests)."""
    if url.startswith("https://"):
        return True
    if not url.startswith("http://"):
        return False
    host = url[len("http://") :].split("/", 1)[0].rsplit("@", 1)[-1]
    host = host[1:].split("]", 1)[0] if host.startswith("[") else host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Discovery(msgspec.Struct):
    jwks_uri: str
    issuer: str | None = None


class _KeySet(msgspec.Struct):
    keys: list[dict[str, Any]]


def _is_usable(jwk: dict[str, Any]) -> bool:
    if jwk.get("kty") not in ("RSA", "EC", "OKP"):
        return False
    return jwk.get("use", "sig") == "sig"


def parse_jwks(body: bytes) -> dict[str | None, dict[str, Any]]:
    """The usable signing keys of a JWKS, by ``kid`` (``None`` for a key without one)."""
    try:
        keys = msgspec.json.decode(body, type=_KeySet).keys
    except msgspec.DecodeError as exc:
        raise JwksError(f"not a JWKS ({exc})") from None
    usable: dict[str | None, dict[str, Any]] = {}
    for jwk in keys:
        kid = jwk.get("kid")
        if _is_usable(jwk) and (kid is None or isinstance(kid, str)):
            usable.setdefault(kid, jwk)
    if not usable:
        raise JwksError("the JWKS has no RSA, EC or OKP signing key")
    return usable


class JwksCache:
    """The signing keys of one issuer, kept fresh by a background task.

    ``version`` goes up whenever the set of keys changes, so whoever caches results
    made with the old keys knows to drop them.
    """

    def __init__(
        self,
        issuer: str,
        jwks_url: str | None,
        *,
        refresh_secs: float,
        fetch: Fetch = http_get,
        clock: Callable[[], float] = time.monotonic,
        fetch_timeout_secs: float = 10.0,
        wait_secs: float = 3.0,
    ) -> None:
        self.issuer = issuer
        self._configured_url = jwks_url
        self._jwks_url = jwks_url
        self._refresh_secs = refresh_secs
        self._fetch = fetch
        self._clock = clock
        self._fetch_timeout = fetch_timeout_secs
        self._wait_secs = wait_secs
        self._keys: dict[str | None, dict[str, Any]] | None = None
        self._prepared: dict[tuple[str | None, str], PyJWK] = {}
        self._last_attempt = -math.inf
        self._last_success = -math.inf
        self._inflight: asyncio.Task[bool] | None = None
        self._background: asyncio.Task[None] | None = None
        self.version = 0
        self.fetches = 0

    @property
    def loaded(self) -> bool:
        """Whether keys were ever fetched."""
        return self._keys is not None

    @property
    def kids(self) -> list[str]:
        return sorted(k for k in self._keys or () if k is not None)

    def lookup(self, kid: str | None, alg: str) -> PyJWK:
        """The key with ``kid``, bound to ``alg`` (which the caller has allow-listed).

        A token without a ``kid`` may use the only key of a one-key set.
        """
        keys = self._keys
        if keys is None:
            raise KeysUnavailable
        prepared = self._prepared.get((kid, alg))
        if prepared is not None:
            return prepared
        jwk = keys.get(kid)
        if jwk is None and kid is None and len(keys) == 1:
            jwk = next(iter(keys.values()))
        if jwk is None:
            raise KeyNotFound
        if jwk.get("alg", alg) != alg:
            raise AlgorithmMismatch
        try:
            prepared = PyJWK(jwk, algorithm=alg)
        except PyJWKError:  # e.g. an EC key asked for RS256
            raise AlgorithmMismatch from None
        self._prepared[(kid, alg)] = prepared
        return prepared

    def adopt(self, previous: JwksCache) -> None:
        """Take over the keys ``previous`` fetched (a reload with the same issuer), so a
        reload while the issuer is down keeps the cached keys working."""
        same = (previous.issuer, previous._configured_url) == (self.issuer, self._configured_url)
        if not same or previous._keys is None:  # nothing to keep: fetch at once
            return
        self._keys = previous._keys
        self._prepared = dict(previous._prepared)
        self._jwks_url = previous._jwks_url
        self._last_attempt = previous._last_attempt
        self._last_success = previous._last_success
        self.version = previous.version

    # -- fetching ------------------------------------------------------------------

    def start(self) -> None:
        """Start the background fetch-and-refresh task (call inside the event loop)."""
        if self._background is None or self._background.done():
            self._background = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        for task in (self._background, self._inflight):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._background = None

    async def refetch(self) -> bool:
        """Fetch again for a ``kid`` not in the cache; whether keys were (re)loaded.

        At most one fetch per ``MIN_REFETCH_SECS`` (a flood of tokens with made-up kids
        must not become a flood of requests to the issuer); a fetch already running is
        shared. The caller waits at most ``wait_secs``; the fetch goes on without it.
        """
        if self._background is None:
            self.start()
        task = self._inflight
        if task is None:
            if self._clock() - self._last_attempt < MIN_REFETCH_SECS:
                return False
            task = self._begin_fetch()
        try:
            return await asyncio.wait_for(asyncio.shield(task), self._wait_secs)
        except TimeoutError:
            return False

    def due(self) -> bool:
        """Whether the background task should fetch now."""
        now = self._clock()
        if self._keys is None:
            return now - self._last_attempt >= MIN_REFETCH_SECS
        return now - self._last_success >= self._refresh_secs

    async def refresh_if_due(self) -> bool:
        """One step of the background task: fetch if ``due``; whether it fetched."""
        if self._inflight is None and not self.due():
            return False
        task = self._inflight or self._begin_fetch()
        await asyncio.shield(task)
        return True

    def _next_delay(self) -> float:
        now = self._clock()
        if self._keys is None:
            return max(1.0, self._last_attempt + MIN_REFETCH_SECS - now)
        return max(1.0, self._last_success + self._refresh_secs - now)

    async def _run(self) -> None:
        while True:
            await self.refresh_if_due()
            await asyncio.sleep(self._next_delay())

    def _begin_fetch(self) -> asyncio.Task[bool]:
        self._last_attempt = self._clock()
        task = asyncio.get_running_loop().create_task(self._fetch_keys())
        self._inflight = task
        task.add_done_callback(self._fetch_done)
        return task

    def _fetch_done(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch_keys(self) -> bool:
        self.fetches += 1
        try:
            async with asyncio.timeout(self._fetch_timeout):
                url = self._jwks_url or await self._discover()
                keys = parse_jwks(await self._fetch(url, self._fetch_timeout))
        except Exception as exc:  # every failure keeps the cached keys
            self._jwks_url = self._configured_url  # discover again next time
            reason = str(exc) or type(exc).__name__
            _log.warning(
                "OIDC signing keys could not be fetched; "
                + ("keeping the cached keys" if self._keys is not None else "none cached yet"),
                extra={"issuer": self.issuer, "reason": reason, "cached_kids": self.kids},
            )
            return False
        self._last_success = self._clock()
        if keys != self._keys:
            self._keys = keys
            self._prepared = {}
            self.version += 1
            _log.info("OIDC signing keys loaded", extra={"issuer": self.issuer, "kids": self.kids})
        return True

    async def _discover(self) -> str:
        url = discovery_url(self.issuer)
        body = await self._fetch(url, self._fetch_timeout)
        try:
            document = msgspec.json.decode(body, type=_Discovery)
        except msgspec.DecodeError as exc:
            raise JwksError(f"{url}: not an OpenID configuration ({exc})") from None
        if document.issuer is not None and document.issuer != self.issuer:
            _log.warning(
                "the OpenID configuration names another issuer; tokens must carry the "
                "configured one in 'iss'",
                extra={"issuer": self.issuer, "discovered_issuer": document.issuer},
            )
        if not is_trusted_url(document.jwks_uri):
            raise JwksError(f"{url}: jwks_uri is not https (nor http to a loopback address)")
        self._jwks_url = document.jwks_uri
        return document.jwks_uri
