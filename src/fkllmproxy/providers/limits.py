"""How much of an upstream's answer the proxy will hold, and the reads that keep to it.

An upstream is trusted with the request, not with the gateway's memory: a provider that
is broken (a proxy in front of it gone wrong) or hostile can send a ``Content-Length``
of a gigabyte, a header of sixteen megabytes, two hundred thousand headers, a gzip bomb
or an event-stream line that never ends. Each of those is bounded here, per provider
(``[[providers]]`` keys, defaults as a browser's or nginx's would be):

- ``max_response_head_bytes`` (64 KiB) and ``max_response_headers`` (100): the status
  line and headers, enforced by the transport while it parses them;
- ``max_response_body_bytes`` (32 MiB): a whole (non-streamed) answer or error body,
  refused up front on its ``Content-Length`` and counted while it is read;
- ``max_stream_event_bytes`` (4 MiB): one event of a stream, up to its blank line (a
  ``data:`` line that never ends is an event that never ends);
- ``max_stream_bytes`` (256 MiB): a whole stream.

Passing one is an upstream failure like any other (``UpstreamUnavailable``: the next
target is tried, the circuit counts it, the client gets 502 or an error event), and the
connection is closed, so nothing past the limit is ever read. We ask every upstream for
``Accept-Encoding: identity`` and relay bytes as they came, so an answer compressed
anyway is refused rather than inflated: decoding it would be unbounded work on the
event loop (the gzip bomb), and relaying it would hand the client bytes it cannot read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.providers.exchange import BodyStream, UpstreamResponse

__all__ = [
    "AnswerTooLarge",
    "BoundedStream",
    "ResponseLimits",
    "check_encoding",
    "is_identity",
    "read_bounded",
]

_IDENTITY = frozenset({"", "identity"})


class AnswerTooLarge(httpx.RemoteProtocolError):
    """Raised by a transport when a response head passes its provider's limits."""


@dataclass(frozen=True, slots=True)
class ResponseLimits:
    """One provider's bounds on what it may send back, in bytes (headers: a count)."""

    head_bytes: int = 64 * 1024
    headers: int = 100
    body_bytes: int = 32 * 1024 * 1024
    event_bytes: int = 4 * 1024 * 1024
    stream_bytes: int = 256 * 1024 * 1024

    @classmethod
    def of(cls, provider: ProviderConfig) -> ResponseLimits:
        return cls(
            head_bytes=provider.max_response_head_bytes,
            headers=provider.max_response_headers,
            body_bytes=provider.max_response_body_bytes,
            event_bytes=provider.max_stream_event_bytes,
            stream_bytes=provider.max_stream_bytes,
        )


def _refused(provider: str, what: str, status: int) -> UpstreamUnavailable:
    return UpstreamUnavailable(
        f"provider {provider!r} {what}", provider=provider, upstream_status=status
    )


def is_identity(response: UpstreamResponse) -> bool:
    """Whether the body is sent as it is (no ``Content-Encoding`` but ``identity``)."""
    encoding = response.headers.get("content-encoding")
    return encoding is None or encoding.strip().lower() in _IDENTITY


def check_encoding(response: UpstreamResponse, provider: str) -> None:
    """Refuse an answer compressed although we asked for ``identity``."""
    if not is_identity(response):
        encoding = response.headers.get("content-encoding", "")
        raise _refused(
            provider,
            f"answered with Content-Encoding {encoding[:40]!r} although the proxy asked for"
            " identity; compressed answers are refused",
            response.status_code,
        )


async def read_bounded(response: UpstreamResponse, limit: int, provider: str) -> bytes:
    """The whole body, as it came on the wire (never decoded), of at most ``limit`` bytes.

    The body is also stored as ``response.content``. Past the limit, announced or
    counted, the response is closed (its connection dropped) and ``UpstreamUnavailable``
    raised. The caller owns the response's closing on every other path.
    """
    status = response.status_code
    if response.is_read:  # built whole (a mock transport's answer)
        body: bytes = response.content
        if len(body) > limit:
            raise _refused(
                provider,
                f"sent an answer over the {limit} bytes of max_response_body_bytes",
                status,
            )
        return body
    declared = response.headers.get("content-length")
    if declared is not None:
        try:
            announced = int(declared)
        except ValueError:
            announced = -1
        if announced > limit:
            await response.aclose()
            raise _refused(
                provider,
                f"announced an answer of {announced} bytes, over the {limit} bytes"
                " of max_response_body_bytes",
                status,
            )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > limit:
            await response.aclose()
            raise _refused(
                provider,
                f"sent an answer over the {limit} bytes of max_response_body_bytes",
                status,
            )
        chunks.append(chunk)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    response.content = body  # what ``aread`` stores
    return body


class BoundedStream:
    """A streamed body that fails once an event or the whole passes its provider's limits.

    An event is what runs up to a blank line (so a line that never ends is an event
    that never ends). Counting costs two ``rfind`` per chunk: the open event's length
    is the bytes since the last blank line seen.
    """

    __slots__ = ("_event", "_inner", "_limits", "_newline", "_provider", "_total")

    def __init__(self, inner: BodyStream, limits: ResponseLimits, provider: str) -> None:
        self._inner = inner
        self._limits = limits
        self._provider = provider
        self._event = 0
        self._total = 0
        self._newline = False  # the last chunk ended with a newline

    async def __aiter__(self) -> AsyncIterator[bytes]:
        limits = self._limits
        async for chunk in self._inner:
            size = len(chunk)
            self._total += size
            end = max(chunk.rfind(b"\n\n"), chunk.rfind(b"\n\r\n"))
            if end >= 0:
                self._event = size - end - 2
            elif self._newline and chunk[:1] == b"\n":  # the blank line split across chunks
                self._event = size - 1
            else:
                self._event += size
            self._newline = chunk[-1:] == b"\n"
            if self._event > limits.event_bytes:
                await self.aclose()
                raise _refused(
                    self._provider,
                    f"sent a stream event (or line) over the {limits.event_bytes} bytes of"
                    " max_stream_event_bytes",
                    200,
                )
            if self._total > limits.stream_bytes:
                await self.aclose()
                raise _refused(
                    self._provider,
                    f"sent a stream over the {limits.stream_bytes} bytes of max_stream_bytes",
                    200,
                )
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()
