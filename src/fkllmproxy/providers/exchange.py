"""One upstream exchange as the transports see it: ``UpstreamRequest`` in, ``UpstreamResponse`` out.

httpx's own models (``httpx.Request``, ``httpx.Response``, ``httpx.Headers``) were the
interface until issue 18: per proxied request they normalised the headers twice, checked
the content type and length, wrapped the body in a stream, and decoded every header
again on each lookup of the answer's. That was 10-12 % of the CPU per request at a
thousand slow requests in flight. These two types hold what a gateway's exchange needs
and nothing else, in the form the transport writes and reads:

- ``UpstreamRequest``: the method, the origin already split (scheme, host, port), the
  request target as bytes, the headers as a list of ``(name, value)`` bytes pairs
  (complete: Host and Content-Length included), the body as bytes, the timeouts;
- ``UpstreamResponse``: ``status_code``, ``headers`` (the raw list behind a
  case-insensitive ``get``), the body as a stream with ``aiter_raw``, ``aread`` and
  ``aclose``, like httpx's.

A ``Transport`` takes the one and gives the other (``providers/h1_transport.py``
directly; httpx's own transports through ``providers/httpx_transport.py``). Failures are
still httpx's exception classes (``ConnectError``, ``ReadTimeout``...): what
``providers/http.py``'s ``map_exception`` and the router read.

Usage::

    request = UpstreamRequest.of("POST", "http://127.0.0.1:8080/v1/chat/completions",
                                 headers={"content-type": "application/json"}, content=b"{}")
    response = await transport.handle_async_request(request)
    try:
        body = await response.aread()
    finally:
        await response.aclose()
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Protocol, final, overload

import httpx
import msgspec

__all__ = [
    "BodyStream",
    "ResponseHeaders",
    "Transport",
    "UpstreamRequest",
    "UpstreamResponse",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}

Timeouts = Mapping[str, float | None]  # connect, read, write, pool: httpx.Timeout.as_dict()


class BodyStream(Protocol):
    """A response body as it arrives: iterate it once, close it always."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Transport(Protocol):
    """What sends an ``UpstreamRequest`` and gives its ``UpstreamResponse`` (head read,
    body to come); ``aclose`` closes every connection it holds."""

    async def handle_async_request(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


@final
class UpstreamRequest:
    """One request to an upstream, complete and ready to write.

    ``host`` is the name or address without brackets, ``port`` always given;
    ``target`` is the request target (path and query, percent-encoded) as bytes.
    ``content`` may also be an async iterable of bytes (a streamed body, which a
    transport sends whole); the clients here always give bytes.
    """

    __slots__ = ("content", "headers", "host", "method", "port", "scheme", "target", "timeouts")

    def __init__(
        self,
        method: str,
        scheme: str,
        host: str,
        port: int,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        content: bytes | AsyncIterator[bytes] = b"",
        timeouts: Timeouts | None = None,
    ) -> None:
        self.method = method
        self.scheme = scheme
        self.host = host
        self.port = port
        self.target = target
        self.headers = headers
        self.content = content
        self.timeouts = timeouts

    @classmethod
    def of(
        cls,
        method: str,
        url: str | httpx.URL,
        *,
        headers: Mapping[str, str] | Iterable[tuple[bytes, bytes]] | None = None,
        content: bytes | AsyncIterator[bytes] = b"",
        timeouts: Timeouts | None = None,
    ) -> UpstreamRequest:
        """A request for ``url``, its Host and (for bytes) Content-Length added when absent,
        as ``httpx.Request`` would: for tests and tools, not the hot path."""
        parsed = httpx.URL(url)
        if isinstance(headers, Mapping):
            pairs = [(k.lower().encode("ascii"), v.encode("ascii")) for k, v in headers.items()]
        else:
            pairs = list(headers or ())
        names = {name.lower() for name, _ in pairs}
        if b"host" not in names:
            pairs.insert(0, (b"host", parsed.netloc))
        if isinstance(content, bytes) and content and b"content-length" not in names:
            pairs.append((b"content-length", str(len(content)).encode()))
        return cls(
            method,
            parsed.scheme,
            parsed.host,
            parsed.port or _DEFAULT_PORTS.get(parsed.scheme, 0),
            parsed.raw_path,
            pairs,
            content,
            timeouts,
        )

    @property
    def url(self) -> httpx.URL:
        """The whole URL (built on each call: for the httpx adapter and error paths)."""
        return httpx.URL(scheme=self.scheme, host=self.host, port=self.port, raw_path=self.target)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (lower case), None when absent."""
        key = name.encode("ascii")
        for found, value in self.headers:
            if found.lower() == key:
                return value.decode("latin-1")
        return None


@final
class ResponseHeaders:
    """An answer's headers as they came (``raw``), looked up by name case-insensitively.

    A lookup scans the list (a dozen headers) and decodes only what it returns;
    several headers of one name read as their values joined by ", ", as httpx's do.
    """

    __slots__ = ("raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        key = name.lower().encode("ascii")
        joined: bytes | None = None  # no list: a lookup allocates no container
        for header, value in self.raw:
            if header.lower() == key:
                joined = value if joined is None else joined + b", " + value
        return default if joined is None else _decode(joined)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __len__(self) -> int:
        return len(self.raw)


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


@final
class UpstreamResponse:
    """An upstream's answer: status and headers read, the body in ``stream``.

    ``content`` is the whole body once ``aread`` (or ``providers/limits.py``'s
    ``read_bounded``) has read it, or when the answer was built whole; before that it
    raises ``httpx.ResponseNotRead``. ``request`` is the request it answers, set by the
    client that sent it (None when built without one).
    """

    __slots__ = ("_closed", "_content", "headers", "request", "status_code", "stream")

    def __init__(
        self,
        status_code: int,
        headers: list[tuple[bytes, bytes]],
        stream: BodyStream | None = None,
        *,
        content: bytes | None = None,
        request: UpstreamRequest | None = None,
    ) -> None:
        self.status_code = status_code
        self.headers = ResponseHeaders(headers)
        self.stream = stream
        self.request = request
        self._content = content if content is not None or stream is not None else b""
        self._closed = False

    @property
    def is_read(self) -> bool:
        """Whether the whole body is held (``content`` can be read)."""
        return self._content is not None

    @property
    def content(self) -> bytes:
        if self._content is None:
            raise httpx.ResponseNotRead()
        return self._content

    @content.setter
    def content(self, body: bytes) -> None:
        self._content = body

    def json(self) -> Any:
        """The body read as JSON (``content`` must have been read)."""
        return msgspec.json.decode(self.content)

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives, never decoded; the response is closed at its end."""
        if self._content is not None:
            if self._content:
                yield self._content
        elif self.stream is not None:
            async for chunk in self.stream:
                yield chunk
        await self.aclose()

    async def aread(self) -> bytes:
        """The whole body (raw: we ask for identity), also kept as ``content``."""
        if self._content is None:
            self._content = b"".join([chunk async for chunk in self.aiter_raw()])
        return self._content

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self.stream is not None:
                await self.stream.aclose()
