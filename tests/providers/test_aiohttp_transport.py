"""``AiohttpTransport`` (providers/aiohttp_transport.py) against real servers on 127.0.0.1.

A well-behaved aiohttp.web server for answers (whole, chunked, streamed, with cookies),
and raw asyncio servers for the faults: refusing, hanging up before answering, never
answering, cutting a body short, resetting. Each fault must surface as the httpx
exception ``map_exception`` (providers/http.py) turns into the right upstream error.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiohttp import web

from fkllmproxy.errors import UpstreamTimeout, UpstreamUnavailable
from fkllmproxy.providers.aiohttp_transport import AiohttpTransport
from fkllmproxy.providers.http import map_exception

WAIT = 20.0  # bound on every wait in these tests (a loaded machine is slow, never stuck)
TIMEOUTS = httpx.Timeout(connect=5.0, read=10.0, write=10.0, pool=10.0).as_dict()


def _request(
    url: str, *, content: bytes = b"{}", timeout: dict[str, float] = TIMEOUTS
) -> httpx.Request:
    return httpx.Request(
        "POST",
        url,
        content=content,
        headers={"content-type": "application/json", "accept-encoding": "identity"},
        extensions={"timeout": timeout},
    )


# --- a well-behaved server ----------------------------------------------------------------


class Upstream:
    """aiohttp.web on a free port; remembers each request's headers and client port."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, dict[str, str], bytes]] = []
        self.release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/whole", self.whole)
        app.router.add_post("/chunked", self.chunked)
        app.router.add_post("/stream", self.stream)
        self.runner = web.AppRunner(app, access_log=None)
        self.url = ""

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def _note(self, request: web.Request) -> None:
        body = await request.read()  # always drain the body (see PITFALLS)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.seen.append((peer[1] if peer else 0, dict(request.headers), body))

    async def whole(self, request: web.Request) -> web.Response:
        await self._note(request)
        response = web.Response(body=b'{"ok": true}', content_type="application/json")
        response.set_cookie("session", "from-upstream")
        return response

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        await self._note(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"one,", b"two,", b"three"):
            await response.write(part)
        await response.write_eof()
        return response

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """A first event at once, the second only after the test says so."""
        await self._note(request)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        await asyncio.wait_for(self.release.wait(), WAIT)
        await response.write(b"data: second\n\n")
        await response.write_eof()
        return response


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    await up.start()
    yield up
    await up.runner.cleanup()


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    t = AiohttpTransport(max_connections=4)
    yield t
    await t.aclose()


async def _send(transport: AiohttpTransport, request: httpx.Request) -> httpx.Response:
    return await asyncio.wait_for(transport.handle_async_request(request), WAIT)


class TestAnswers:
    async def test_content_length_answer_arrives_whole(
        self, transport: AiohttpTransport, upstream: Upstream
    ) -> None:
        response = await _send(transport, _request(upstream.url + "/whole", content=b'{"a": 1}'))
        body = await asyncio.wait_for(response.aread(), WAIT)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert body == b'{"ok": true}'
        _, headers, sent = upstream.seen[0]
        assert sent == b'{"a": 1}'
        assert headers["Content-Type"] == "application/json"
        assert headers["Content-Length"] == "8"

    async def test_chunked_answer_is_reassembled(
        self, transport: AiohttpTransport, upstream: Upstream
    ) -> None:
        response = await _send(transport, _request(upstream.url + "/chunked"))
        assert response.headers["transfer-encoding"] == "chunked"
        assert await asyncio.wait_for(response.aread(), WAIT) == b"one,two,three"

    async def test_stream_yields_each_event_as_it_comes(
        self, transport: AiohttpTransport, upstream: Upstream
    ) -> None:
        """The first event is readable while the server still holds back the second."""
        response = await _send(transport, _request(upstream.url + "/stream"))
        chunks = response.aiter_raw()
        first = await asyncio.wait_for(anext(chunks), WAIT)
        assert first == b"data: first\n\n"
        upstream.release.set()
        rest = b""
        async for chunk in chunks:
            rest += chunk
        assert rest == b"data: second\n\n"
        await response.aclose()

    async def test_sequential_requests_share_one_connection(
        self, transport: AiohttpTransport, upstream: Upstream
    ) -> None:
        for _ in range(3):
            response = await _send(transport, _request(upstream.url + "/whole"))
            await asyncio.wait_for(response.aread(), WAIT)
        ports = {port for port, _, _ in upstream.seen}
        assert len(upstream.seen) == 3 and len(ports) == 1

    async def test_closing_a_stream_early_drops_its_connection(
        self, transport: AiohttpTransport, upstream: Upstream
    ) -> None:
        """An abandoned stream is hung up on; the next request gets a new connection."""
        response = await _send(transport, _request(upstream.url + "/stream"))
        await asyncio.wait_for(anext(response.aiter_raw()), WAIT)
        await response.aclose()
        upstream.release.set()
        response = await _send(transport, _request(upstream.url + "/whole"))
        await asyncio.wait_for(response.aread(), WAIT)
        assert upstream.seen[0][0] != upstream.seen[1][0]

    async def test_upstream_cookies_are_not_kept(
        self, transport: AiohttpTransport, upstream: Upstream
    ) -> None:
        for _ in range(2):
            response = await _send(transport, _request(upstream.url + "/whole"))
            await asyncio.wait_for(response.aread(), WAIT)
            assert "session=from-upstream" in response.headers["set-cookie"]
        assert "Cookie" not in upstream.seen[1][1]

    async def test_headers_and_query_go_out_as_given(
        self, transport: AiohttpTransport, upstream: Upstream
    ) -> None:
        request = _request(upstream.url + "/whole?alt=sse&key=a%2Fb")
        request.headers["x-goog-api-key"] = "secret"
        request.headers["user-agent"] = "fkllmproxy/test"
        response = await _send(transport, request)
        await asyncio.wait_for(response.aread(), WAIT)
        headers = upstream.seen[0][1]
        assert headers["x-goog-api-key"] == "secret"
        assert headers["User-Agent"] == "fkllmproxy/test"
        assert headers["Accept-Encoding"] == "identity"

    async def test_a_closed_transport_opens_a_new_session(self, upstream: Upstream) -> None:
        transport = AiohttpTransport(max_connections=1)
        for _ in range(2):
            response = await _send(transport, _request(upstream.url + "/whole"))
            await asyncio.wait_for(response.aread(), WAIT)
            await transport.aclose()
        assert len(upstream.seen) == 2


# --- faults ---------------------------------------------------------------------------------


Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_head(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    writer.close()


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    await asyncio.sleep(WAIT)


async def _cut_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 10)
    await writer.drain()
    writer.close()


async def _not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    await writer.drain()
    writer.close()


async def _serve(behaviour: Behaviour) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await behaviour(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _url(server: asyncio.Server) -> str:
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"


class TestFaults:
    async def test_refused_is_connect_error_and_unavailable(
        self, transport: AiohttpTransport
    ) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with pytest.raises(httpx.ConnectError) as caught:
            await _send(transport, _request(f"http://127.0.0.1:{port}/v1"))
        error = map_exception(caught.value, "up")
        assert isinstance(error, UpstreamUnavailable) and "could not be reached" in str(error)

    @pytest.mark.parametrize(
        ("behaviour", "expected"),
        [
            (_hang_up, httpx.RemoteProtocolError),
            (_reset, httpx.ReadError),
            (_not_http, httpx.RemoteProtocolError),
        ],
    )
    async def test_no_answer_is_a_transport_error_and_unavailable(
        self, transport: AiohttpTransport, behaviour: Behaviour, expected: type[Exception]
    ) -> None:
        server = await _serve(behaviour)
        try:
            with pytest.raises(expected) as caught:
                await _send(transport, _request(_url(server)))
        finally:
            server.close()
        error = map_exception(caught.value, "up")
        assert isinstance(error, UpstreamUnavailable) and not isinstance(error, UpstreamTimeout)

    async def test_silence_past_the_read_timeout_is_read_timeout(
        self, transport: AiohttpTransport
    ) -> None:
        server = await _serve(_never_answer)
        timeout = {**TIMEOUTS, "read": 0.2}
        try:
            with pytest.raises(httpx.ReadTimeout) as caught:
                await _send(transport, _request(_url(server), timeout=timeout))
        finally:
            server.close()
        assert isinstance(map_exception(caught.value, "up"), UpstreamTimeout)

    async def test_no_free_connection_in_time_is_connect_timeout(self) -> None:
        """With the one connection busy, the next request gives up after ``pool``."""
        arrived = asyncio.Event()

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_head(reader)
            arrived.set()
            await asyncio.sleep(WAIT)

        server = await _serve(hold)
        transport = AiohttpTransport(max_connections=1)
        busy = asyncio.ensure_future(transport.handle_async_request(_request(_url(server))))
        try:
            await asyncio.wait_for(arrived.wait(), WAIT)  # the one connection is taken
            with pytest.raises(httpx.ConnectTimeout):
                await _send(transport, _request(_url(server), timeout={**TIMEOUTS, "pool": 0.2}))
        finally:
            busy.cancel()
            await asyncio.gather(busy, return_exceptions=True)
            await transport.aclose()
            server.close()

    async def test_body_cut_short_raises_while_reading(self, transport: AiohttpTransport) -> None:
        server = await _serve(_cut_body)
        try:
            response = await _send(transport, _request(_url(server)))
            assert response.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):
                await asyncio.wait_for(response.aread(), WAIT)
        finally:
            server.close()
