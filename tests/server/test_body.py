"""Request bodies: broken framing is a 400, a body trickled past its deadline a 408."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.conftest import MASTER_KEY, MOCK_CONFIG, RunningDaemon

WAIT = 20.0  # a bound on every socket wait


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    env = {"APP_SERVER__BODY_TIMEOUT_SECS": "1.5"}
    with RunningDaemon(tmp_path_factory.mktemp("body"), MOCK_CONFIG, env=env) as running:
        yield running


def _head(extra: str, target: str = "POST /v1/chat/completions") -> bytes:
    return (
        f"{target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {MASTER_KEY}\r\nContent-Type: application/json\r\n{extra}\r\n"
    ).encode()


def _answer(sock: socket.socket) -> bytes:
    """Everything the daemon sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_malformed_chunked_framing_is_a_400(daemon: RunningDaemon) -> None:
    """A chunk size that is not hex: the client's mistake, not a disconnect (499)."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=WAIT) as sock:
        sock.sendall(_head("Transfer-Encoding: chunked\r\n") + b"zz\r\nabc\r\n0\r\n\r\n")
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"chunked framing is malformed" in answer
    assert b"connection: close" in answer.lower()


def test_a_body_sent_a_byte_at_a_time_gets_408_and_the_connection_closes(
    daemon: RunningDaemon,
) -> None:
    """Past body_timeout_secs the read ends, the answer says why, the socket is closed."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=WAIT) as sock:
        sock.sendall(_head("Content-Length: 1000\r\n") + b"{")
        answer = _answer(sock)  # we never send the rest: only the deadline can end this
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"body_timeout_secs" in answer
    assert b'"code":"request_timeout"' in answer


def test_a_body_that_never_starts_gets_408(daemon: RunningDaemon) -> None:
    """Headers announce a body and nothing follows: the same deadline ends it."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=WAIT) as sock:
        sock.sendall(_head("Content-Length: 10\r\n"))
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]


@pytest.mark.parametrize(
    "target",
    [
        "POST /v1/messages",
        "POST /v1/responses",
        "POST /v1beta/models/mock:generateContent",
        "POST /v1/embeddings",
        "POST /admin/config/validate",
        "PUT /admin/config/source",
        "POST /admin/config/restore",
    ],
)
def test_every_route_with_a_body_has_the_deadline(daemon: RunningDaemon, target: str) -> None:
    """The deadline is the daemon's, not one route's: a body trickled to any of them ends."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=WAIT) as sock:
        sock.sendall(_head("Content-Length: 1000\r\n", target) + b"{")
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), (target, answer[:300])
