"""What an API handler sees of a request and what it gives back, whoever serves it.

The hot routes (``server/fast_routes.py``) are served straight from ASGI messages and
the rest by Litestar; both hand the same handler cores an ``ApiRequest`` (the scope,
``receive``, the few headers the handlers read) and turn the ``Reply`` they return into
the same bytes on the wire: a Litestar ``Response`` here, raw ASGI messages there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response
from litestar.response import Stream

from fkllmproxy.server.context import RequestContext
from fkllmproxy.server.runtime import RuntimeHolder

__all__ = ["ApiRequest", "Receive", "Reply", "json_reply", "sse_reply"]

Receive = Callable[[], Awaitable[dict[str, Any]]]

# The request headers any handler reads; the rest are never decoded.
_READ = frozenset(
    {
        b"authorization",
        b"x-api-key",
        b"x-goog-api-key",
        b"content-length",
        b"cache-control",
        b"anthropic-beta",
        b"anthropic-version",
    }
)
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_JSON_TYPE = (b"content-type", b"application/json")
# What Litestar's ``Stream`` sends for a text media type: the charset is part of it.
_SSE_TYPE = (b"content-type", b"text/event-stream; charset=utf-8")


class ApiRequest:
    """One request as the handlers use it; built with one pass over the raw headers."""

    __slots__ = ("context", "headers", "holder", "path", "receive", "scope")

    def __init__(self, scope: dict[str, Any], receive: Receive, holder: RuntimeHolder) -> None:
        self.scope = scope
        self.receive = receive
        self.holder = holder
        self.path: str = scope["path"]
        self.context: RequestContext = scope["fkllm"]
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in _READ and name not in headers:  # the first one wins, as in Litestar
                headers[name.decode()] = value.decode("latin-1")
        self.headers = headers

    @classmethod
    def of(cls, request: Request[Any, Any, Any]) -> ApiRequest:
        """The view of a request Litestar routed (the routes it still serves)."""
        return cls(request.scope, request.receive, request.app.state.holder)  # type: ignore[arg-type]

    @property
    def client_ip(self) -> str | None:
        client = self.scope.get("client")
        return str(client[0]) if client else None


@dataclass(slots=True)
class Reply:
    """A status, extra headers, and either the whole body or its SSE frames as they come."""

    status: int
    body: bytes | AsyncIterator[bytes]
    headers: dict[str, str] | None = None
    # A streamed body that is not SSE (the Gemini API's streamed JSON array).
    content_type: str | None = None

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers as ASGI wants them, in the order Litestar sends them."""
        named = self._named_headers().items()
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in named]
        if isinstance(self.body, bytes):
            raw.append(_JSON_TYPE)
            raw.append((b"content-length", str(len(self.body)).encode()))
        elif self.content_type is not None:
            raw.append((b"content-type", self.content_type.encode("latin-1")))
        else:
            raw.append(_SSE_TYPE)
        return raw

    def _named_headers(self) -> dict[str, str]:
        """The headers besides the content type and length (an SSE stream's own first)."""
        if isinstance(self.body, bytes) or self.content_type is not None:
            return self.headers or {}
        return {**_SSE_HEADERS, **self.headers} if self.headers else _SSE_HEADERS

    def to_response(self) -> Response[Any]:
        """The same answer as a Litestar response, for the routes Litestar serves."""
        if isinstance(self.body, bytes):
            return Response(
                content=self.body,
                status_code=self.status,
                media_type="application/json",
                headers=self.headers,
            )
        return Stream(
            content=self.body,
            status_code=self.status,
            media_type="text/event-stream",
            headers=self._named_headers(),
        )


def json_reply(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, body, headers)


def sse_reply(frames: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> Reply:
    return Reply(200, frames, headers)
