"""``UpstreamClient`` (providers/http.py): what each provider's upstream requests look like.

A real HTTP server on 127.0.0.1 records what arrives, so both transports (h1 and
httpx's own) are checked the way a provider uses them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fkllmproxy import __version__
from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.providers.http import build_client, default_transport


class _Recorder(BaseHTTPRequestHandler):
    """Answers every POST with JSON and a Set-Cookie, remembering the request."""

    seen: list[dict[str, str]]
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(
            length
        )  # always drain the body: an unread body makes clients see sporadic resets
        self.seen.append({**{k.lower(): v for k, v in self.headers.items()}, "_path": self.path})
        answer = b'{"ok": true, "echo": ' + str(len(body)).encode() + b"}"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.send_header("set-cookie", "session=from-upstream; Path=/")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # "localhost", not the IP: cookie jars refuse cookies from bare IP addresses.
    yield f"http://localhost:{server.server_port}/v1", seen
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _provider(**extra: object) -> ProviderConfig:
    return ProviderConfig(name="up", type="openai", timeout_secs=10, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["h1", "httpx"])
class TestUpstreamClient:
    async def test_upstream_cookies_are_never_sent_back(
        self, kind: str, upstream: tuple[str, list[dict[str, str]]]
    ) -> None:
        """A Set-Cookie from upstream does not ride along on the next (anyone's) request."""
        url, seen = upstream
        client = build_client(_provider(), default_transport(kind), base_url=url, headers={})
        try:
            for _ in range(2):
                request = client.build_request("POST", "/chat/completions", content=b"{}")
                response = await client.send(request)
                assert response.status_code == 200
        finally:
            await client.aclose()
        assert len(seen) == 2
        assert "cookie" not in seen[1]

    async def test_request_carries_path_query_and_every_header_layer(
        self, kind: str, upstream: tuple[str, list[dict[str, str]]]
    ) -> None:
        """Base URL + path + params; preset, provider and per-request headers all arrive."""
        url, seen = upstream
        client = build_client(
            _provider(headers={"x-team": "blue"}),
            default_transport(kind),
            base_url=url + "/",
            headers={"authorization": "Bearer upstream-key"},
        )
        try:
            request = client.build_request(
                "POST",
                "/deployments/d1/chat?api-version=1",
                content=b'{"a": 1}',
                headers={"content-type": "application/json"},
                params={"extra": "yes"},
            )
            response = await client.send(request)
        finally:
            await client.aclose()
        assert response.json() == {"ok": True, "echo": 8}
        arrived = seen[0]
        assert arrived["_path"] == "/v1/deployments/d1/chat?api-version=1&extra=yes"
        assert arrived["authorization"] == "Bearer upstream-key"
        assert arrived["x-team"] == "blue"
        assert arrived["content-type"] == "application/json"
        assert arrived["accept-encoding"] == "identity"
        assert arrived["user-agent"] == f"fkllmproxy/{__version__}"

    async def test_stream_is_left_open_for_the_caller(
        self, kind: str, upstream: tuple[str, list[dict[str, str]]]
    ) -> None:
        """With stream=True the body is read by the caller, chunk by chunk, then closed."""
        url, _ = upstream
        client = build_client(_provider(), default_transport(kind), base_url=url, headers={})
        try:
            request = client.build_request("POST", "chat/completions", content=b"{}")
            response = await client.send(request, stream=True)
            body = b"".join([chunk async for chunk in response.aiter_raw()])
            await response.aclose()
        finally:
            await client.aclose()
        assert body == b'{"ok": true, "echo": 2}'
