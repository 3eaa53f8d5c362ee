"""``GET /`` and ``HEAD /`` (what Claude Code knocks on at start): a 200, no key, no INFO line."""

from __future__ import annotations

import httpx

from tests.conftest import RunningDaemon, wait_until


def test_get_root_names_the_service(mock_daemon: RunningDaemon) -> None:
    """A browser or curl at the bare address gets a short text naming the service."""
    response = httpx.get(mock_daemon.url + "/")
    assert response.status_code == 200
    assert response.text.startswith("fkllmproxy ")
    assert response.headers["content-type"].startswith("text/plain")


def test_head_root_is_200_and_not_logged_at_info(mock_daemon: RunningDaemon) -> None:
    """HEAD / answers 200 without a key, and leaves no INFO request line (nor a 404)."""
    response = httpx.head(mock_daemon.url + "/", headers={"x-request-id": "knock-knock"})
    assert response.status_code == 200 and response.content == b""
    httpx.get(mock_daemon.url + "/v1/nowhere", headers={"x-request-id": "after-knock"})
    assert wait_until(
        lambda: any(line.get("request_id") == "after-knock" for line in mock_daemon.logs())
    )
    assert not [line for line in mock_daemon.logs() if line.get("request_id") == "knock-knock"]
