"""httpx's transports behind the interface of ``providers/exchange.py``.

``http_transport = "httpx"`` (``providers/http.py``) and the tests' and tools' answers
from memory (``httpx.MockTransport``) speak httpx's own ``Request`` and ``Response``;
``HttpxTransport`` converts an ``UpstreamRequest`` into the one and the other into an
``UpstreamResponse``. The conversion costs what httpx's models cost, which is why the
default transport (``h1``) speaks ours directly.
"""

from __future__ import annotations

from typing import final

import httpx

from fkllmproxy.providers.exchange import UpstreamRequest, UpstreamResponse

__all__ = ["HttpxTransport", "from_httpx", "to_httpx"]


def to_httpx(request: UpstreamRequest) -> httpx.Request:
    """``request`` as httpx's model (its headers given complete, as bytes)."""
    content = request.content
    return httpx.Request(
        request.method,
        request.url,
        headers=request.headers,
        content=content or None,
        extensions={"timeout": dict(request.timeouts)} if request.timeouts else {},
    )


def from_httpx(response: httpx.Response) -> UpstreamResponse:
    """httpx's response as ours: the same body stream, or the whole body if it was built
    whole (``httpx.Response(content=...)``)."""
    content = response.content if hasattr(response, "_content") else None
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)  # what an async transport gives
    return UpstreamResponse(response.status_code, response.headers.raw, stream, content=content)


@final
class HttpxTransport:
    """Any ``httpx.AsyncBaseTransport`` as a ``Transport``."""

    __slots__ = ("inner",)

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: UpstreamRequest) -> UpstreamResponse:
        return from_httpx(await self.inner.handle_async_request(to_httpx(request)))

    async def aclose(self) -> None:
        await self.inner.aclose()
