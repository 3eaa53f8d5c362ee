"""Upstream errors: a provider that echoes our key never gets it to the client or logs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from fkllmproxy.providers.exchange import UpstreamRequest
from fkllmproxy.providers.http import credentials_of, scrub_credentials

PROVIDER_KEY = "sk-provider-echoed-secret-31337"


class EchoingUpstream(BaseHTTPRequestHandler):
    """Answers 400 quoting the Authorization header it got, as some providers do."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(
            length
        )  # always drain the body: an unread body makes clients see sporadic resets
        body = json.dumps(
            {"error": {"message": f"Bad request made with {self.headers['authorization']}"}}
        ).encode()
        self.send_response(400)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_provider_error_body_is_scrubbed_of_our_key(start_daemon: Any, upstream: str) -> None:
    config = f"""
[[providers]]
name = "echo"
type = "openai"
base_url = "{upstream}"
api_key_env = "ECHO_KEY"

[[models]]
name = "m"
targets = [{{ provider = "echo", model = "m" }}]
"""
    daemon = start_daemon(config, env={"ECHO_KEY": PROVIDER_KEY})
    response = httpx.post(
        daemon.url + "/v1/chat/completions",
        headers=daemon.headers(),
        json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "Bad request made with Bearer <redacted>" in message
    assert PROVIDER_KEY not in response.text
    assert PROVIDER_KEY not in "\n".join(daemon.stdout_lines())


class TestScrubCredentials:
    def test_header_and_query_credentials_are_found(self) -> None:
        request = UpstreamRequest.of(
            "POST",
            "http://127.0.0.1/v1beta/models/g:generateContent?key=query-secret-123",
            headers={"authorization": "Bearer bearer-secret-123", "x-api-key": "header-secret-1"},
        )
        assert credentials_of(request) == {
            b"query-secret-123",
            b"bearer-secret-123",
            b"header-secret-1",
        }
        body = b'{"msg": "bad key query-secret-123 / header-secret-1 / bearer-secret-123"}'
        assert scrub_credentials(body, request) == (
            b'{"msg": "bad key <redacted> / <redacted> / <redacted>"}'
        )

    def test_short_values_and_missing_request_leave_body_alone(self) -> None:
        request = UpstreamRequest.of("POST", "http://127.0.0.1/", headers={"x-api-key": "abc"})
        assert scrub_credentials(b"abc abc", request) == b"abc abc"
        assert scrub_credentials(b"anything", None) == b"anything"
