"""cli/locate.py's client (``send``, ``fetch``, ``reason``) against httpx_mock: what it
sends, and how each way of failing reads to an operator."""

from __future__ import annotations

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fkllmproxy.cli.locate import DaemonAddress, Unreachable, fetch, reason, send

URL = "http://127.0.0.1:4000"


def address(key: str | None = "sk-master") -> DaemonAddress:
    return DaemonAddress(url=URL, key=key, usage_path=None)  # type: ignore[arg-type]


class TestSend:
    def test_the_master_key_goes_as_a_bearer_token(self, httpx_mock: HTTPXMock) -> None:
        """A configured master key is sent; the answer comes back as it is."""
        httpx_mock.add_response(url=f"{URL}/health", json={"status": "healthy"})
        response = fetch(address(), "/health")
        assert response.status_code == 200 and response.json() == {"status": "healthy"}
        (request,) = httpx_mock.get_requests()
        assert request.headers["authorization"] == "Bearer sk-master"

    def test_no_key_no_authorization_header(self, httpx_mock: HTTPXMock) -> None:
        """Without a key nothing is sent in its place (the daemon then answers 401)."""
        httpx_mock.add_response(url=f"{URL}/metrics", status_code=401)
        assert fetch(address(key=None), "/metrics").status_code == 401
        assert "authorization" not in httpx_mock.get_requests()[0].headers

    def test_method_body_and_headers(self, httpx_mock: HTTPXMock) -> None:
        """``send`` carries the method, the body and extra headers next to the key."""
        httpx_mock.add_response(method="PUT", url=f"{URL}/admin/config/source", status_code=204)
        headers = {"content-type": "application/toml"}
        send(address(), "PUT", "/admin/config/source", content=b"x = 1", headers=headers)
        (request,) = httpx_mock.get_requests()
        assert request.content == b"x = 1"
        assert request.headers["content-type"] == "application/toml"
        assert request.headers["authorization"] == "Bearer sk-master"

    def test_refused_is_unreachable(self, httpx_mock: HTTPXMock) -> None:
        """Nothing listening reads as "connection refused"."""
        httpx_mock.add_exception(httpx.ConnectError("[Errno 111] Connection refused"))
        with pytest.raises(
            Unreachable, match=r"cannot reach fkllmproxy at .* \(connection refused\)"
        ):
            fetch(address(), "/health")

    def test_a_timeout_is_unreachable(self, httpx_mock: HTTPXMock) -> None:
        """A daemon that accepts and never answers reads as "no answer in time"."""
        httpx_mock.add_exception(httpx.ReadTimeout("timed out"))
        with pytest.raises(Unreachable, match="no answer in time"):
            fetch(address(), "/health", timeout=0.1)

    def test_a_malformed_url_is_unreachable(self) -> None:
        """A --url httpx cannot use is said to be the address's fault."""
        broken = DaemonAddress(url="http://[::1", key=None, usage_path=None)  # type: ignore[arg-type]
        with pytest.raises(Unreachable, match="cannot use the address"):
            fetch(broken, "/health")


class TestReason:
    def test_each_failure_in_a_few_words(self) -> None:
        """Refused, other connect errors, timeouts and the rest each read plainly."""
        assert reason(httpx.ConnectError("Connection refused")) == "connection refused"
        assert reason(httpx.ConnectError("Name or service not known")) == (
            "cannot connect: Name or service not known"
        )
        assert reason(httpx.ConnectTimeout("")) == "no answer in time"
        assert reason(httpx.RemoteProtocolError("")) == "RemoteProtocolError"
