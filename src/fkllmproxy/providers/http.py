"""The shared HTTP client every network provider uses, and upstream error mapping.

One client per provider (``UpstreamClient``: requests of ``providers/exchange.py`` built
from parts made once, sent straight to the transport), built once with deliberate
limits and timeouts. The transport is chosen by ``[server] http_transport``: ``h1``
(providers/h1_transport.py, the default and the one measured), or ``httpx``, httpx's
own transport behind an adapter, the one alternative (``_ProxyRouted`` says why it is
kept). httpx's connection pool rescans
every connection on each pool event, so its cost grows with concurrency; it is never
the default.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping

import httpx

from fkllmproxy import __version__
from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import (
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from fkllmproxy.providers.egress import (
    Proxy,
    ProxyChoice,
    proxy_choice,
    refused_by_proxy,
    tls_context,
)
from fkllmproxy.providers.exchange import Transport, UpstreamRequest, UpstreamResponse
from fkllmproxy.providers.httpx_transport import HttpxTransport
from fkllmproxy.providers.limits import (
    AnswerTooLarge,
    BoundedStream,
    ResponseLimits,
    check_encoding,
    is_identity,
    read_bounded,
)

__all__ = [
    "TransportFactory",
    "UpstreamClient",
    "build_client",
    "credentials_of",
    "default_transport",
    "error_from_response",
    "map_exception",
    "post",
    "read_error_body",
    "scrub_credentials",
    "whole_body",
]

TransportFactory = Callable[[ProviderConfig], Transport]
_USER_AGENT = f"fkllmproxy/{__version__}"


def default_transport(kind: str, environ: Mapping[str, str] | None = None) -> TransportFactory:
    """A factory for the named transport kind (``h1`` or ``httpx``), each with the
    provider's proxy and TLS settings (``providers/egress.py``); ``environ`` holds the
    proxy and CA variables of the environment and the env file (absent: the process's)."""
    env: Mapping[str, str] = os.environ if environ is None else environ

    def factory(provider: ProviderConfig) -> Transport:
        tls = tls_context(provider, env)
        proxies = proxy_choice(provider, env)
        if kind == "h1":
            from fkllmproxy.providers.h1_transport import H1Transport

            return H1Transport(
                max_connections=provider.max_connections,
                keepalive_secs=30.0,
                max_head_bytes=provider.max_response_head_bytes,
                max_headers=provider.max_response_headers,
                tls=tls,
                proxies=proxies,
            )
        limits = httpx.Limits(
            max_connections=provider.max_connections,
            max_keepalive_connections=provider.max_connections,
            keepalive_expiry=30.0,
        )

        def make(proxy: Proxy | None) -> Transport:
            return HttpxTransport(
                httpx.AsyncHTTPTransport(
                    limits=limits, verify=tls, proxy=proxy.for_httpx() if proxy else None
                )
            )

        return _ProxyRouted(proxies, make)

    return factory


class _ProxyRouted:
    """httpx's own transport, one per proxy in use (and one direct), chosen per origin as
    ``NO_PROXY`` says: ``http_transport = "httpx"``.

    Why an alternative to ``h1`` is kept at all, and why this one: it is the HTTP client
    CONTRACT section 1 names for upstream calls, widely used and maintained elsewhere, so an
    operator who suspects our own client of a fault with some upstream or proxy can
    switch to it with one setting and no release, and compare. It costs no dependency
    (httpx is the contract's client), only the conversion to and from httpx's models
    (``providers/httpx_transport.py``).
    It is not for load: its pool's cost grows with concurrency (docs/performance.md).
    """

    def __init__(self, proxies: ProxyChoice, make: Callable[[Proxy | None], Transport]) -> None:
        self._proxies = proxies
        self._make = make
        self._transports: dict[Proxy | None, Transport] = {}

    async def handle_async_request(self, request: UpstreamRequest) -> UpstreamResponse:
        proxy = self._proxies.for_origin(request.scheme, request.host, request.port)
        transport = self._transports.get(proxy)
        if transport is None:
            transport = self._transports[proxy] = self._make(proxy)
        response = await transport.handle_async_request(request)
        if response.status_code == 407 and proxy is not None:  # the proxy's, for plain http
            await response.aclose()
            raise refused_by_proxy(proxy)
        return response

    async def aclose(self) -> None:
        for transport in self._transports.values():
            await transport.aclose()
        self._transports.clear()


class UpstreamClient:
    """A provider's HTTP client: requests built from parts made once, sent to the transport.

    The surface is ``httpx.AsyncClient``'s (``build_request``, ``send``, ``aclose``); the
    requests and responses are ``providers/exchange.py``'s, and ``send`` hands a request
    straight to the transport. ``AsyncClient.send`` does more on every request, none of which a
    gateway wants: it parses the URL again to merge it with ``base_url``, runs the auth
    and redirect flows, and stores every ``Set-Cookie`` an upstream sends in one jar
    that the next request, whoever's it is, then carries back. In-process that was
    about a third of fkllm's Python time per request (``python -m bench.inproc``).
    Here the target of each path and the default headers are built once, in the form
    the transport writes. The transport
    keeps its whole job: pooling, the timeouts the request carries (``timeouts``),
    and mapping its errors to httpx's exceptions.

    What comes back is held to ``limits`` (providers/limits.py): a whole body is read
    raw and bounded (httpx's ``aread`` would inflate a compressed one on the loop), a
    streamed one is wrapped to count its lines and size, and a compressed 2xx answer
    is refused.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        base_url: str,
        headers: httpx.Headers,
        timeout: httpx.Timeout,
        limits: ResponseLimits | None = None,
        name: str = "upstream",
    ) -> None:
        self.transport = transport
        self.limits = limits or ResponseLimits()
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.timeout = timeout
        self._extension = timeout.as_dict()
        # Header names lower-case, names and values as bytes: the form the transport writes.
        self._preset = [(k.lower().encode("ascii"), v.encode("ascii")) for k, v in headers.items()]
        self._preset_names = frozenset(name for name, _ in self._preset)
        # path (with its query parameters, if any) -> its target, parsed once
        self._targets: dict[str | tuple[str, tuple[tuple[str, str], ...]], _Target] = {}

    def _target(self, path: str, params: Mapping[str, str] | None) -> _Target:
        key: str | tuple[str, tuple[tuple[str, str], ...]] = (
            (path, tuple(params.items())) if params else path
        )
        target = self._targets.get(key)
        if target is None:
            if "://" in path:
                url = httpx.URL(path)
            else:
                url = httpx.URL(self.base_url + ("" if path.startswith("/") else "/") + path)
            if params:
                url = url.copy_merge_params(dict(params))
            target = _Target(url, [(b"host", url.netloc), *self._preset])
            if len(self._targets) < 4096:  # paths come from configured models: a small set
                self._targets[key] = target
        return target

    def build_request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> UpstreamRequest:
        """A request for ``path`` under ``base_url``, with the preset headers and timeouts.

        ``headers`` replace preset ones of the same name. The headers are complete (Host
        and Content-Length included) and as bytes, as the transport writes them.
        """
        target = self._target(path, params)
        preset = target.headers
        if headers:
            extra = [(k.lower().encode("ascii"), v.encode("ascii")) for k, v in headers.items()]
            if not self._preset_names.isdisjoint(name for name, _ in extra):
                replaced = {name for name, _ in extra}
                preset = [item for item in preset if item[0] not in replaced]
            merged = preset + extra
        else:
            merged = preset.copy()
        if content:
            merged.append((b"content-length", str(len(content)).encode()))
        return UpstreamRequest(
            method,
            target.scheme,
            target.host,
            target.port,
            target.target,
            merged,
            content or b"",
            self._extension,
        )

    async def send(self, request: UpstreamRequest, *, stream: bool = False) -> UpstreamResponse:
        """The transport's response; read to the end and closed unless ``stream``."""
        response = await self.transport.handle_async_request(request)
        response.request = request
        try:
            if response.status_code >= 300:  # an error: read now, whether streamed or not
                await read_bounded(response, self.limits.body_bytes, self.name)
                if not is_identity(response):
                    response.content = b""  # we relay bytes as they are: these can't be
            else:
                check_encoding(response, self.name)
                if stream:
                    if response.stream is not None:
                        response.stream = BoundedStream(response.stream, self.limits, self.name)
                else:
                    await read_bounded(response, self.limits.body_bytes, self.name)
        except BaseException:
            await response.aclose()
            raise
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()


class _Target:
    """A path's URL split the way ``UpstreamRequest`` holds it, and the preset headers
    with its Host: made once per path."""

    __slots__ = ("headers", "host", "port", "scheme", "target")

    def __init__(self, url: httpx.URL, headers: list[tuple[bytes, bytes]]) -> None:
        self.scheme = url.scheme
        self.host = url.host
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.target = url.raw_path
        self.headers = headers


def build_client(
    provider: ProviderConfig,
    transport: TransportFactory,
    *,
    base_url: str,
    headers: dict[str, str],
) -> UpstreamClient:
    """The one client for ``provider``: timeouts from its block, its headers preset.

    Only the connect timeout is the client's job; time to first byte, idle gaps and the
    total are enforced by the router (``routing/timeouts.py``) for every adapter alike,
    so the read timeout here is just a backstop at the total.
    """
    timeout = httpx.Timeout(
        connect=provider.connect_timeout_secs,
        read=provider.timeout_secs,
        write=provider.timeout_secs,
        pool=provider.timeout_secs,
    )
    preset = {"user-agent": _USER_AGENT, "accept": "*/*", "accept-encoding": "identity"}
    return UpstreamClient(
        transport(provider),
        base_url=base_url,
        headers=httpx.Headers({**preset, **headers, **provider.headers}),
        timeout=timeout,
        limits=ResponseLimits.of(provider),
        name=provider.name,
    )


async def post(
    client: UpstreamClient,
    path: str,
    content: bytes,
    *,
    provider: str,
    stream: bool,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> UpstreamResponse:
    """POST ``content`` to ``path``; a transport failure becomes the ``UpstreamError`` it means.

    The status is the caller's to judge (Gemini reads some 400s its own way).
    """
    request = client.build_request("POST", path, content=content, headers=headers, params=params)
    try:
        return await client.send(request, stream=stream)
    except Exception as exc:
        raise map_exception(exc, provider) from exc


async def read_error_body(response: UpstreamResponse) -> bytes:
    """An error response's body, read and the response closed; empty if it can't be read.

    ``UpstreamClient.send`` has already read it, held to the provider's limits (empty
    when compressed: we asked for identity and relay bodies as they are).
    """
    try:
        if response.is_read:
            return response.content
        if not is_identity(response):
            return b""
        return await read_bounded(response, ResponseLimits().body_bytes, "upstream")
    except Exception:
        return b""
    finally:
        await response.aclose()


async def whole_body(answer: Awaitable[UpstreamResponse], *, total: float, provider: str) -> bytes:
    """The body of a non-streaming answer within ``total`` seconds; any failure an ``UpstreamError``."""
    try:
        async with asyncio.timeout(total):
            return (await answer).content
    except TimeoutError as exc:
        raise map_exception(httpx.ReadTimeout("total"), provider) from exc
    except UpstreamError:
        raise
    except Exception as exc:
        raise map_exception(exc, provider) from exc


def map_exception(exc: Exception, provider: str) -> UpstreamError:
    """The upstream error a transport exception means, with a message safe to show."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, AnswerTooLarge):  # our own words, naming the limit
        return UpstreamUnavailable(f"provider {provider!r} {exc}", provider=provider)
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return UpstreamTimeout(f"provider {provider!r} timed out", provider=provider)
    if isinstance(exc, (httpx.ConnectTimeout, httpx.ConnectError)):
        return UpstreamUnavailable(f"provider {provider!r} could not be reached", provider=provider)
    if isinstance(exc, httpx.TransportError):
        return UpstreamUnavailable(
            f"provider {provider!r} connection failed ({type(exc).__name__})", provider=provider
        )
    return UpstreamUnavailable(
        f"provider {provider!r} failed ({type(exc).__name__})", provider=provider
    )


def _retry_after(response: UpstreamResponse) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# Where a provider's credential travels on our request to it: these headers (a
# "Bearer " prefix stripped) and these query parameters (Gemini's ?key=).
_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key")
_CREDENTIAL_PARAMS = ("key", "api_key", "access_token")


def credentials_of(request: UpstreamRequest) -> set[bytes]:
    """The secret values our ``request`` carried, as bytes, to scrub from what came back."""
    found: set[str] = set()
    for name in _CREDENTIAL_HEADERS:
        value = request.header(name)
        if value:
            scheme, _, token = value.partition(" ")
            found.add(token if scheme.lower() in ("bearer", "basic") and token else value)
    for name in _CREDENTIAL_PARAMS:
        found.update(v for v in request.url.params.get_list(name) if v)
    return {value.encode() for value in found if len(value) >= 8}


def scrub_credentials(body: bytes, request: UpstreamRequest | None) -> bytes:
    """``body`` with every credential of ``request`` replaced by ``<redacted>``.

    Some providers quote the key they were sent in their error messages; those bodies
    reach clients (a translated 4xx) and logs, and must not carry our key with them.
    """
    if request is None or not body:
        return body
    for secret in credentials_of(request):
        body = body.replace(secret, b"<redacted>")
    return body


def error_from_response(response: UpstreamResponse, body: bytes, provider: str) -> UpstreamError:
    """The error an upstream non-2xx answer means: its own 4xx go back to the client."""
    status = response.status_code
    body = scrub_credentials(body, response.request)
    if status in (401, 403, 404):
        # Our credentials or our model mapping, not the client's request: another
        # target may well work, and the client must not think its own key was refused.
        reason = "model not found" if status == 404 else "credentials refused"
        return UpstreamUnavailable(
            f"provider {provider!r} answered {status} ({reason})",
            provider=provider,
            upstream_status=status,
        )
    if status in (408, 409, 429) or status >= 500:
        return UpstreamUnavailable(
            f"provider {provider!r} answered {status}",
            provider=provider,
            upstream_status=status,
            retry_after=_retry_after(response),
        )
    content_type = response.headers.get("content-type", "application/json")
    return UpstreamRejected(
        f"provider {provider!r} rejected the request ({status})",
        status=status,
        provider=provider,
        body=body,
        content_type=content_type,
    )
