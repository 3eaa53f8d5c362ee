"""``H1Transport`` opens at most ``connects_at_once`` connections to an origin at a time.

A burst of requests on an empty pool must not start one TLS handshake per request: the
upstream here accepts each TCP connection and holds its handshake until told, so the
test sees how many the transport tried to open at once.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from bench.tls import make_certificates

from fkllmproxy.providers.exchange import UpstreamRequest
from fkllmproxy.providers.h1_transport import H1Transport

WAIT = 10.0
BODY = b'{"ok": true}'
TIMEOUTS = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": None}


class HeldHandshakes:
    """A TLS server that starts each handshake only once ``go`` is set.

    It accepts on a plain listening socket and leaves the client's hello unread in the
    kernel until then (a stream reader would swallow it before TLS could see it)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.accepted = 0
        self.go = asyncio.Event()
        self.enough = asyncio.Event()
        self.expected = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            client, _ = await loop.sock_accept(self.listener)
            self.accepted += 1
            if self.accepted >= self.expected:
                self.enough.set()
            task = asyncio.create_task(self._answer(client))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, client: socket.socket) -> None:
        await self.go.wait()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop.connect_accepted_socket(
            lambda: protocol, client, ssl=self.context
        )
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + b"content-length: %d\r\n\r\n" % len(BODY)
                    + BODY
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.listener.close()


async def _post(transport: H1Transport, url: str) -> bytes:
    request = UpstreamRequest.of(
        "POST",
        url,
        content=b"{}",
        headers={"content-type": "application/json", "host": httpx.URL(url).netloc.decode()},
        timeouts=TIMEOUTS,
    )
    response = await transport.handle_async_request(request)
    return await response.aread()


async def test_a_burst_opens_connections_a_few_at_a_time(tmp_path: Path) -> None:
    """Twelve requests at once with room for four handshakes: the upstream sees four
    connections until they are done, then every request is answered."""
    files = make_certificates(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(files.cert_file, files.key_file)
    client_side = ssl.create_default_context(cafile=str(files.ca_file))
    upstream = HeldHandshakes(server_side)
    upstream.expected = 4
    serving = asyncio.create_task(upstream.serve())
    transport = H1Transport(max_connections=100, tls=client_side, connects_at_once=4)
    url = f"https://127.0.0.1:{upstream.port}/v1/chat/completions"
    try:
        calls = [asyncio.create_task(_post(transport, url)) for _ in range(12)]
        await asyncio.wait_for(upstream.enough.wait(), WAIT)
        # Give any further connection attempt every chance to reach the server: each
        # round lets the loop run its ready callbacks and poll the sockets once.
        for _ in range(200):
            await asyncio.sleep(0)
        assert upstream.accepted == 4
        upstream.go.set()
        answers = await asyncio.wait_for(asyncio.gather(*calls), WAIT)
        assert answers == [BODY] * 12
        assert 4 <= upstream.accepted <= 12
    finally:
        await transport.aclose()
        serving.cancel()
        upstream.close()


@pytest.mark.parametrize("limit", [1, 3])
async def test_a_failed_handshake_frees_its_turn(tmp_path: Path, limit: int) -> None:
    """Handshakes that fail (an untrusted certificate) give their turn to the next
    request, which fails the same way instead of waiting for ever."""
    files = make_certificates(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(files.cert_file, files.key_file)
    upstream = HeldHandshakes(server_side)
    upstream.go.set()
    serving = asyncio.create_task(upstream.serve())
    untrusting = ssl.create_default_context()  # the system's CAs, not this one
    transport = H1Transport(max_connections=100, tls=untrusting, connects_at_once=limit)
    url = f"https://127.0.0.1:{upstream.port}/v1/chat/completions"
    try:
        calls = [asyncio.create_task(_post(transport, url)) for _ in range(6)]
        done = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), WAIT)
        assert all(isinstance(outcome, httpx.ConnectError) for outcome in done)
        assert upstream.accepted == 6
    finally:
        await transport.aclose()
        serving.cancel()
        upstream.close()
