"""A malformed Host header is the client's 400, never a 500."""

from __future__ import annotations

import socket

import pytest

from fkllmproxy.server.host import host_is_valid
from tests.conftest import RunningDaemon


class TestHostIsValid:
    @pytest.mark.parametrize(
        "value",
        [b"127.0.0.1:4000", b"example.com", b"[::1]:443", b"gateway.internal:65535", b""],
    )
    def test_hosts_with_or_without_a_port_pass(self, value: bytes) -> None:
        """Names, addresses and bracketed IPv6, with a port up to 65535."""
        assert host_is_valid([(b"host", value)])

    @pytest.mark.parametrize("value", [b"\xff\xff\xff:99999", b"a:99999", b"a:b", b"a b", b"a/b"])
    def test_garbage_and_ports_out_of_range_fail(self, value: bytes) -> None:
        """What urllib would choke on, or what is no host at all."""
        assert not host_is_valid([(b"host", value)])

    def test_no_host_header_is_left_to_the_server(self) -> None:
        """HTTP/1.0 clients may send none."""
        assert host_is_valid([(b"accept", b"*/*")])


def test_health_with_a_broken_host_is_a_400(mock_daemon: RunningDaemon) -> None:
    """``Host: \\xff\\xff\\xff:99999`` on /health: 400 with a message, the daemon fine."""
    with socket.create_connection(("127.0.0.1", mock_daemon.port), timeout=10) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nHost: \xff\xff\xff:99999\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"Host header" in answer
    assert not any(line.get("level") == "ERROR" for line in mock_daemon.logs())
