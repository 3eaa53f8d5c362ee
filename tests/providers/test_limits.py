"""Bounded reads of upstream answers: what passes, what is refused, and with which words."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.providers.http import build_client, read_error_body
from fkllmproxy.providers.httpx_transport import from_httpx
from fkllmproxy.providers.limits import BoundedStream, ResponseLimits, read_bounded
from tests.conftest import mock_transport

LIMITS = ResponseLimits(body_bytes=1000, event_bytes=100, stream_bytes=1000)


class _Chunks(httpx.AsyncByteStream):
    """A body arriving in the given pieces; remembers being closed."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


async def _all(stream: BoundedStream) -> bytes:
    return b"".join([chunk async for chunk in stream])


class TestReadBounded:
    async def test_a_body_within_the_limit_is_read_raw(self) -> None:
        """The bytes as they came, also stored as ``response.content``."""
        response = from_httpx(httpx.Response(200, stream=_Chunks(b'{"a":', b" 1}")))
        assert await read_bounded(response, 1000, "p") == b'{"a": 1}'
        assert response.content == b'{"a": 1}'

    async def test_an_announced_length_over_the_limit_is_refused_unread(self) -> None:
        """Content-Length past the limit: refused before a byte is read, stream closed."""
        body = _Chunks(b"x")
        response = from_httpx(
            httpx.Response(200, headers={"content-length": str(1 << 30)}, stream=body)
        )
        with pytest.raises(UpstreamUnavailable, match="announced an answer of 1073741824 bytes"):
            await read_bounded(response, 1000, "p")
        assert body.closed

    async def test_a_body_growing_past_the_limit_is_cut(self) -> None:
        """No Content-Length (chunked): counted as read, cut at the limit."""
        body = _Chunks(*[b"x" * 400] * 10)
        response = from_httpx(httpx.Response(200, stream=body))
        with pytest.raises(UpstreamUnavailable, match="max_response_body_bytes"):
            await read_bounded(response, 1000, "p")
        assert body.closed


class TestBoundedStream:
    async def test_events_within_the_limits_pass_untouched(self) -> None:
        """Many small events: every byte relayed as it came."""
        frames = [b"data: {}\n\n"] * 50
        assert await _all(BoundedStream(_Chunks(*frames), LIMITS, "p")) == b"".join(frames)

    async def test_a_line_that_never_ends_is_cut(self) -> None:
        """A data: line with no newline passes max_stream_event_bytes."""
        stream = BoundedStream(_Chunks(b"data: " + b"a" * 60, b"a" * 60), LIMITS, "p")
        with pytest.raises(UpstreamUnavailable, match="max_stream_event_bytes"):
            await _all(stream)

    async def test_an_event_of_many_short_lines_is_cut(self) -> None:
        """Lines end, but the event never does (no blank line): cut too."""
        stream = BoundedStream(_Chunks(*[b"data: x\n"] * 20), LIMITS, "p")
        with pytest.raises(UpstreamUnavailable, match="max_stream_event_bytes"):
            await _all(stream)

    async def test_a_blank_line_split_across_chunks_ends_the_event(self) -> None:
        """``\\n`` at the end of one chunk and at the start of the next is a blank line."""
        chunks = [b"data: " + b"a" * 80 + b"\n", b"\ndata: " + b"b" * 80 + b"\n\n"] * 3
        assert await _all(BoundedStream(_Chunks(*chunks), LIMITS, "p")) == b"".join(chunks)

    async def test_a_stream_past_its_total_is_cut(self) -> None:
        """Valid events forever: max_stream_bytes ends it."""
        stream = BoundedStream(_Chunks(*[b"data: {}\n\n"] * 200), LIMITS, "p")
        with pytest.raises(UpstreamUnavailable, match="max_stream_bytes"):
            await _all(stream)


def _client(response: httpx.Response) -> object:
    config = ProviderConfig(name="p", type="openai", max_response_body_bytes=1024)
    transport = mock_transport(lambda request: response)
    return build_client(config, lambda _: transport, base_url="http://up/v1", headers={})


class TestUpstreamClient:
    @pytest.mark.parametrize("stream", [False, True])
    async def test_a_compressed_answer_is_refused(self, stream: bool) -> None:
        """We ask for identity; a gzip 200 is refused, never inflated."""
        response = httpx.Response(
            200, headers={"content-encoding": "gzip"}, stream=_Chunks(b"\x1f\x8b")
        )
        client = _client(response)
        request = client.build_request("POST", "/chat/completions", content=b"{}")  # type: ignore[attr-defined]
        with pytest.raises(UpstreamUnavailable, match="Content-Encoding 'gzip'"):
            await client.send(request, stream=stream)  # type: ignore[attr-defined]

    async def test_a_compressed_error_body_reads_as_empty(self) -> None:
        """A 4xx body we could not relay as it is: empty, the status still tells."""
        response = httpx.Response(
            400, headers={"content-encoding": "br"}, stream=_Chunks(b"\x00\x01")
        )
        client = _client(response)
        request = client.build_request("POST", "/chat/completions", content=b"{}")  # type: ignore[attr-defined]
        answer = await client.send(request, stream=True)  # type: ignore[attr-defined]
        assert await read_error_body(answer) == b""
