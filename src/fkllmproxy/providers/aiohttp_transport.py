"""An httpx transport on aiohttp's client: httpx's requests and responses, aiohttp's pool.

httpx's own connection pool rescans every connection on each pool event, so its cost
grows with concurrency; this transport puts aiohttp's connector under httpx instead,
while the rest of the code keeps speaking httpx (``httpx.Request`` in, ``httpx.Response``
out, httpx's exceptions). This replaces the ``httpx-aiohttp`` package, which did the same
job with more work per request: a new ``aiohttp.ClientTimeout`` from the request's timeout
extension, the URL turned into a string and parsed again, headers copied into a new
mapping before aiohttp copied them twice more, and an exception map too coarse to tell
"refused" from "hung up before answering". Here everything that depends only on the
provider is built once: the session and its connector (lazily, on the running loop),
the ``ClientTimeout`` for each timeout extension seen, and the yarl URL for each request
URL object (``UpstreamClient`` reuses one per path).

What a request gets: no cookie jar (an upstream's ``Set-Cookie`` must never reach the
next caller), no decompression (bytes are relayed as they came; we ask for
``identity``), no redirects, no ``.netrc``, HTTP/1.1 only, at most
``max_connections`` connections, idle ones kept for 30 s; the proxy and TLS settings are
the provider's (``providers/egress.py``), not aiohttp's own reading of the environment. The request's ``timeout``
extension gives the connect timeout (``connect``), the longest wait for any read
(``read``, which also bounds the wait for the response head), and the wait for a free
connection plus connecting (``pool``); ``write`` has no aiohttp equivalent. There is no
total: the router enforces first byte, idle gaps and the total for every adapter
(``routing/timeouts.py``).

Exceptions (httpx's classes, chosen as httpx's own transport would):

- no connection (refused, unreachable, DNS, TLS): ``ConnectError``;
- connecting, or waiting for a free connection, took too long: ``ConnectTimeout``;
- the upstream closed the connection before answering, sent something that is not an
  HTTP response, or ended a body early: ``RemoteProtocolError``;
- the connection was reset while we waited for the answer: ``ReadError`` (while
  sending the request: ``WriteError``);
- no byte for ``read`` seconds: ``ReadTimeout``.

Caveats (verified against aiohttp 3.14):

- aiohttp never retries a POST on a kept-alive connection the upstream had just
  closed: the request fails with ``RemoteProtocolError`` and the router's retry takes
  over, as it did with httpx-aiohttp.
- The session belongs to the event loop of the first request; a transport must not be
  shared between loops (one daemon, one loop: fine; tests make one per test).
- A request without a ``Content-Type`` is sent with aiohttp's
  ``application/octet-stream`` (every provider sets JSON's).
- Header names go out in lower case (httpx's normalised form); HTTP/1.1 does not care.
- ``pool`` and ``connect`` time out with the same ``ConnectTimeout``: aiohttp does not
  tell waiting for a free connection from connecting.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
from yarl import URL

from fkllmproxy.providers.egress import Proxy, ProxyChoice, refused_by_proxy

__all__ = ["AiohttpTransport", "map_aiohttp_error"]

_CACHE_MAX = 1024


def map_aiohttp_error(exc: BaseException) -> httpx.TransportError | None:
    """httpx's exception for an aiohttp (or socket) error, or ``None`` if not ours to map.

    Most specific first: aiohttp's classes overlap (a connect timeout is a
    ``ServerTimeoutError`` and a ``ClientConnectionError``; refused is a
    ``ClientOSError``).
    """
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ServerTimeoutError):  # SocketTimeoutError: sock_read
        return httpx.ReadTimeout(message)
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ServerFingerprintMismatch)):
        return httpx.ConnectError(message)  # refused, unreachable, DNS, TLS
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.ClientConnectionResetError):  # writing to a closed socket
        return httpx.WriteError(message)
    if isinstance(exc, aiohttp.ClientPayloadError):  # a body cut short or malformed
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.ClientResponseError):  # a response head aiohttp can't parse
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, (aiohttp.ClientConnectionError, ConnectionError)):
        return httpx.ReadError(message)
    if isinstance(exc, TimeoutError):  # asyncio's, from inside aiohttp (not cancellation)
        return httpx.ReadTimeout(message)
    if isinstance(exc, (aiohttp.ClientError, OSError)):
        return httpx.TransportError(message)
    return None


class _Body(httpx.AsyncByteStream):
    """The response body as aiohttp delivers it; closing it closes the aiohttp response.

    Closing after the last byte is free (aiohttp already put the connection back in
    the pool at the end of the body); closing before it drops the connection, which
    is what an abandoned stream needs (the upstream sees the hang-up and stops).
    """

    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while chunk := await content.readany():
                yield chunk
        except Exception as exc:
            mapped = map_aiohttp_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        self._response.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One provider's upstream connections (see the module docstring for what and why)."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_secs: float = 30.0,
        tls: ssl.SSLContext | None = None,
        proxies: ProxyChoice | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.keepalive_secs = keepalive_secs
        self._tls = tls
        self._proxies = proxies
        # Each proxy's URL and header, as aiohttp takes them, made once.
        self._proxy_args: dict[Proxy, dict[str, Any]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}
        self._last_extension: object = None
        self._last_timeout: aiohttp.ClientTimeout | None = None
        # id(httpx.URL) -> (that URL, kept alive so the id stays its own; yarl's URL)
        self._urls: dict[int, tuple[httpx.URL, URL]] = {}

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            limit_per_host=0,
            ttl_dns_cache=300,
            keepalive_timeout=self.keepalive_secs,
            ssl=self._tls if self._tls is not None else True,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            requote_redirect_url=False,
            timeout=aiohttp.ClientTimeout(),
        )

    def _timeout(self, extension: Any) -> aiohttp.ClientTimeout:
        """The ``ClientTimeout`` for a request's ``timeout`` extension, made once per value."""
        if extension is self._last_extension and self._last_timeout is not None:
            return self._last_timeout
        get = extension.get if extension else {}.get
        key = (get("connect"), get("read"), get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=None, connect=key[2], sock_connect=key[0], sock_read=key[1]
            )
            if len(self._timeouts) < _CACHE_MAX:
                self._timeouts[key] = timeout
        self._last_extension = extension
        self._last_timeout = timeout
        return timeout

    def _url(self, url: httpx.URL) -> URL:
        """yarl's URL for ``url``, parsed once per URL object (they are reused per path)."""
        cached = self._urls.get(id(url))
        if cached is not None and cached[0] is url:
            return cached[1]
        parsed = URL(str(url), encoded=True)
        if len(self._urls) >= _CACHE_MAX:  # one-off URLs (query parameters) churn through
            self._urls.clear()
        self._urls[id(url)] = (url, parsed)
        return parsed

    def _proxy_for(self, url: httpx.URL) -> dict[str, Any]:
        if self._proxies is None:
            return {}
        port = url.port or (443 if url.scheme == "https" else 80)
        proxy = self._proxies.for_origin(url.scheme, url.host, port)
        if proxy is None:
            return {}
        args = self._proxy_args.get(proxy)
        if args is None:
            args = {"proxy": URL(proxy.url)}
            if proxy.credentials:
                args["proxy_auth"] = aiohttp.BasicAuth(*proxy.credentials)
            self._proxy_args[proxy] = args
        return args

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session
        if session is None:
            session = self._session = self._new_session()
        headers: Any = request.headers.multi_items()
        data: Any
        try:
            data = request.content or None
        except httpx.RequestNotRead:
            # A streamed request body: aiohttp chunks it itself and refuses a preset
            # Transfer-Encoding header.
            data = request.stream
            headers = [(k, v) for k, v in headers if k != "transfer-encoding"]
        proxied = self._proxy_for(request.url)
        try:
            response = await session.request(
                request.method,
                self._url(request.url),
                headers=headers,
                data=data,
                allow_redirects=False,
                compress=None,
                timeout=self._timeout(request.extensions.get("timeout")),
                **proxied,
            )
        except Exception as exc:
            mapped = map_aiohttp_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        if response.status == 407 and proxied:  # the proxy's own answer to plain http
            response.release()
            assert self._proxies is not None
            refused = self._proxies.for_origin(
                request.url.scheme, request.url.host, request.url.port or 80
            )
            assert refused is not None
            raise refused_by_proxy(refused)
        # No reason phrase: httpx falls back to the standard one, and nobody reads it.
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
