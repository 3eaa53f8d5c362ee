"""The httpx transport on asyncio (``H1Transport``) against real servers on 127.0.0.1.

A well-behaved aiohttp.web server for answers (whole, chunked, streamed, with cookies),
and raw asyncio servers for the faults: refusing, hanging up before answering, never
answering, cutting a body short, resetting. Each fault must surface as the httpx
exception ``map_exception`` (providers/http.py) turns into the right upstream error.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from fkllmproxy.errors import UpstreamTimeout, UpstreamUnavailable
from fkllmproxy.providers.exchange import UpstreamRequest, UpstreamResponse
from fkllmproxy.providers.h1_transport import H1Transport
from fkllmproxy.providers.http import map_exception

WAIT = 20.0  # bound on every wait in these tests (a loaded machine is slow, never stuck)
TIMEOUTS = httpx.Timeout(connect=5.0, read=10.0, write=10.0, pool=10.0).as_dict()


def _request(
    url: str, *, content: bytes = b"{}", timeout: dict[str, float] = TIMEOUTS
) -> UpstreamRequest:
    return UpstreamRequest.of(
        "POST",
        url,
        content=content,
        headers={"content-type": "application/json", "accept-encoding": "identity"},
        timeouts=timeout,
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
        # Always drain the body: an unread body makes clients see sporadic resets.
        body = await request.read()
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


Transport = H1Transport
KINDS = {"h1": H1Transport}


@pytest.fixture(params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> type[Transport]:
    return KINDS[request.param]


@pytest.fixture
async def transport(kind: type[Transport]) -> AsyncIterator[Transport]:
    t = kind(max_connections=4)
    yield t
    await t.aclose()


async def _send(transport: Transport, request: UpstreamRequest) -> UpstreamResponse:
    return await asyncio.wait_for(transport.handle_async_request(request), WAIT)


class TestAnswers:
    async def test_content_length_answer_arrives_whole(
        self, transport: Transport, upstream: Upstream
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
        self, transport: Transport, upstream: Upstream
    ) -> None:
        response = await _send(transport, _request(upstream.url + "/chunked"))
        assert response.headers["transfer-encoding"] == "chunked"
        assert await asyncio.wait_for(response.aread(), WAIT) == b"one,two,three"

    async def test_stream_yields_each_event_as_it_comes(
        self, transport: Transport, upstream: Upstream
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
        self, transport: Transport, upstream: Upstream
    ) -> None:
        for _ in range(3):
            response = await _send(transport, _request(upstream.url + "/whole"))
            await asyncio.wait_for(response.aread(), WAIT)
        ports = {port for port, _, _ in upstream.seen}
        assert len(upstream.seen) == 3 and len(ports) == 1

    async def test_closing_a_stream_early_drops_its_connection(
        self, transport: Transport, upstream: Upstream
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
        self, transport: Transport, upstream: Upstream
    ) -> None:
        for _ in range(2):
            response = await _send(transport, _request(upstream.url + "/whole"))
            await asyncio.wait_for(response.aread(), WAIT)
            assert "session=from-upstream" in response.headers["set-cookie"]
        assert "Cookie" not in upstream.seen[1][1]

    async def test_headers_and_query_go_out_as_given(
        self, transport: Transport, upstream: Upstream
    ) -> None:
        request = _request(upstream.url + "/whole?alt=sse&key=a%2Fb")
        request.headers += [(b"x-goog-api-key", b"secret"), (b"user-agent", b"fkllmproxy/test")]
        response = await _send(transport, request)
        await asyncio.wait_for(response.aread(), WAIT)
        headers = upstream.seen[0][1]
        assert headers["x-goog-api-key"] == "secret"
        assert headers["User-Agent"] == "fkllmproxy/test"
        assert headers["Accept-Encoding"] == "identity"

    async def test_a_closed_transport_opens_a_new_session(
        self, kind: type[Transport], upstream: Upstream
    ) -> None:
        transport = kind(max_connections=1)
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
    async def test_refused_is_connect_error_and_unavailable(self, transport: Transport) -> None:
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
        self, transport: Transport, behaviour: Behaviour, expected: type[Exception]
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
        self, transport: Transport
    ) -> None:
        server = await _serve(_never_answer)
        timeout = {**TIMEOUTS, "read": 0.2}
        try:
            with pytest.raises(httpx.ReadTimeout) as caught:
                await _send(transport, _request(_url(server), timeout=timeout))
        finally:
            server.close()
        assert isinstance(map_exception(caught.value, "up"), UpstreamTimeout)

    async def test_no_free_connection_in_time_is_connect_timeout(
        self, kind: type[Transport]
    ) -> None:
        """With the one connection busy, the next request gives up after ``pool``."""
        arrived = asyncio.Event()

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_head(reader)
            arrived.set()
            await asyncio.sleep(WAIT)

        server = await _serve(hold)
        transport = kind(max_connections=1)
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

    async def test_body_cut_short_raises_while_reading(self, transport: Transport) -> None:
        server = await _serve(_cut_body)
        try:
            response = await _send(transport, _request(_url(server)))
            assert response.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):
                await asyncio.wait_for(response.aread(), WAIT)
        finally:
            server.close()


# --- HTTP/1.1 details the h1 transport handles itself -----------------------------------------


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> None:
    await _read_head(reader)
    writer.write(raw)
    await writer.drain()


class TestHttp11:
    async def test_connection_close_answer_is_not_reused(self, transport: Transport) -> None:
        """``Connection: close`` from the upstream: the next request opens a new connection."""
        peers: list[int] = []

        async def close_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peers.append(writer.get_extra_info("peername")[1])
            await _answer(
                reader,
                writer,
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
            )

        server = await _serve(close_after)
        try:
            for _ in range(2):
                response = await _send(transport, _request(_url(server)))
                assert await asyncio.wait_for(response.aread(), WAIT) == b"ok"
        finally:
            server.close()
        assert len(peers) == 2 and peers[0] != peers[1]

    async def test_body_ending_with_the_connection_arrives_whole(
        self, transport: Transport
    ) -> None:
        """No length, not chunked: the body is everything until the upstream closes."""

        async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _answer(reader, writer, b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
            writer.close()

        server = await _serve(until_close)
        try:
            response = await _send(transport, _request(_url(server)))
            assert await asyncio.wait_for(response.aread(), WAIT) == b"all of it"
        finally:
            server.close()

    async def test_interim_continue_is_skipped(self, transport: Transport) -> None:
        async def interim(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _answer(
                reader,
                writer,
                b"HTTP/1.1 100 Continue\r\n\r\n"
                b"HTTP/1.1 201 Created\r\ncontent-length: 4\r\nx-final: yes\r\n\r\ndone",
            )

        server = await _serve(interim)
        try:
            response = await _send(transport, _request(_url(server)))
            assert response.status_code == 201 and response.headers["x-final"] == "yes"
            assert await asyncio.wait_for(response.aread(), WAIT) == b"done"
        finally:
            server.close()

    async def test_a_large_body_arrives_intact(self, transport: Transport) -> None:
        """Several MiB, more than the transport buffers before it stops reading."""
        payload = bytes(range(256)) * (3 * 4096)

        async def large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(payload)}\r\n\r\n".encode()
            await _answer(reader, writer, head + payload)

        server = await _serve(large)
        try:
            response = await _send(transport, _request(_url(server)))
            received = b""
            async for chunk in response.aiter_raw():
                received += chunk
                await asyncio.sleep(0)  # a slow reader
        finally:
            server.close()
        assert received == payload

    async def test_requests_beyond_the_limit_wait_for_a_free_connection(
        self, kind: type[Transport], upstream: Upstream
    ) -> None:
        transport = kind(max_connections=1)
        try:

            async def one() -> bytes:
                response = await _send(transport, _request(upstream.url + "/whole"))
                return await asyncio.wait_for(response.aread(), WAIT)

            bodies = await asyncio.gather(*(one() for _ in range(5)))
        finally:
            await transport.aclose()
        assert bodies == [b'{"ok": true}'] * 5
        assert len({port for port, _, _ in upstream.seen}) == 1


# --- TLS ----------------------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fkllm test upstream")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def _tls_server(directory: Path) -> tuple[asyncio.Server, Path]:
    cert, key = _self_signed(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _answer(reader, writer, b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret")
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context), cert


class TestTls:
    async def test_an_untrusted_certificate_is_connect_error(
        self, transport: Transport, tmp_path: Path
    ) -> None:
        server, _ = await _tls_server(tmp_path)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(httpx.ConnectError):
                await _send(transport, _request(f"https://127.0.0.1:{port}/v1"))
        finally:
            server.close()

    async def test_a_trusted_certificate_gets_the_answer(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The system's trust store decides (here pointed at the test's own CA)."""
        server, cert = await _tls_server(tmp_path)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        port = server.sockets[0].getsockname()[1]
        transport = H1Transport(max_connections=2)
        try:
            response = await _send(transport, _request(f"https://127.0.0.1:{port}/v1"))
            assert await asyncio.wait_for(response.aread(), WAIT) == b"secret"
        finally:
            await transport.aclose()
            server.close()


async def test_a_response_dropped_unread_frees_its_connection(upstream: Upstream) -> None:
    """With one connection allowed, forgetting an unread answer must not block the next."""
    import gc

    transport = H1Transport(max_connections=1)
    try:
        response = await _send(transport, _request(upstream.url + "/whole"))
        del response
        gc.collect()
        response = await _send(
            transport, _request(upstream.url + "/whole", timeout={**TIMEOUTS, "pool": WAIT})
        )
        assert await asyncio.wait_for(response.aread(), WAIT) == b'{"ok": true}'
    finally:
        await transport.aclose()


class TestRequestHead:
    async def test_a_streamed_request_body_goes_out_with_its_length(
        self, transport: Transport, upstream: Upstream
    ) -> None:
        async def parts() -> AsyncIterator[bytes]:
            yield b'{"a": '
            yield b"1}"

        request = UpstreamRequest.of(
            "POST",
            upstream.url + "/whole",
            content=parts(),
            headers={"content-type": "application/json"},
            timeouts=TIMEOUTS,
        )
        response = await _send(transport, request)
        await asyncio.wait_for(response.aread(), WAIT)
        assert response.status_code == 200
        assert upstream.seen[0][2] == b'{"a": 1}'

    async def test_a_line_break_in_a_header_is_refused_before_sending(
        self, kind: type[Transport], upstream: Upstream
    ) -> None:
        """Nothing may smuggle a second header (or request) to the upstream."""
        transport = kind(max_connections=1)
        request = _request(upstream.url + "/whole")
        request.headers.append((b"x-note", b"a\r\nx-injected: yes"))
        try:
            with pytest.raises((httpx.LocalProtocolError, ValueError)):
                await _send(transport, request)
        finally:
            await transport.aclose()
        assert not upstream.seen


async def test_a_burst_of_new_connections_looks_the_name_up_once(upstream: Upstream) -> None:
    """Five requests at once need five new connections to ``localhost``: one lookup."""
    loop = asyncio.get_running_loop()
    lookups: list[object] = []
    real_getaddrinfo = loop.getaddrinfo

    async def counting(host: object, *args: object, **kwargs: object) -> object:
        lookups.append(host)
        return await real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    loop.getaddrinfo = counting  # type: ignore[method-assign]
    transport = H1Transport(max_connections=5)
    url = upstream.url.replace("127.0.0.1", "localhost") + "/whole"
    try:

        async def one() -> bytes:
            response = await _send(transport, _request(url))
            return await asyncio.wait_for(response.aread(), WAIT)

        bodies = await asyncio.gather(*(one() for _ in range(5)))
    finally:
        del loop.getaddrinfo
        await transport.aclose()
    assert bodies == [b'{"ok": true}'] * 5
    assert lookups == ["localhost"]


async def test_an_answer_still_out_at_close_hangs_up_when_it_ends(upstream: Upstream) -> None:
    """Closing the transport (a reload retiring a provider) while a stream is still being
    read: the stream finishes, then its connection is closed, not kept idle unowned."""
    transport = H1Transport(max_connections=2)
    response = await _send(transport, _request(upstream.url + "/stream"))
    chunks = response.aiter_raw()
    assert await asyncio.wait_for(anext(chunks), WAIT) == b"data: first\n\n"
    await transport.aclose()
    upstream.release.set()
    rest = b"".join([chunk async for chunk in chunks])
    await response.aclose()
    assert rest == b"data: second\n\n"
    assert transport.open == 0
