"""``/admin/circuits``: the master key sees and resets circuits; nobody else does."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningDaemon

CLIENT_KEY = "sk-team-a-0123456789"

CONFIG = f"""
[circuit_breaker]
failure_threshold = 1
timeout_secs = 300

[[auth.keys]]
name = "team-a"
key_sha256 = "{hashlib.sha256(CLIENT_KEY.encode()).hexdigest()}"

[[providers]]
name = "dead"
type = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "k"
connect_timeout_secs = 2

[[providers]]
name = "mock"
type = "mock"

[[models]]
name = "m"
targets = [{{ provider = "dead", model = "x" }}, {{ provider = "mock", model = "y" }}]
"""


@pytest.fixture
def daemon(start_daemon: object) -> RunningDaemon:
    """A fresh daemon, for tests that change circuit state."""
    running: RunningDaemon = start_daemon(CONFIG)  # type: ignore[operator]
    return running


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    """One daemon for the tests that change nothing."""
    with RunningDaemon(tmp_path_factory.mktemp("admin"), CONFIG) as running:
        yield running


def open_dead_circuit(daemon: RunningDaemon) -> None:
    """Nothing listens on port 9: one refused connection opens ``dead``'s circuit."""
    response = httpx.post(
        daemon.url + "/v1/chat/completions",
        headers=daemon.headers(),
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert response.status_code == 200


def test_list_shows_an_open_circuit_and_reset_closes_it(daemon: RunningDaemon) -> None:
    open_dead_circuit(daemon)
    response = httpx.get(daemon.url + "/admin/circuits", headers=daemon.headers(), timeout=10)
    assert response.status_code == 200
    circuits = {c["provider"]: c for c in response.json()["circuits"]}
    assert circuits["mock"]["state"] == "closed" and circuits["mock"]["retry_in_secs"] is None
    dead = circuits["dead"]
    assert dead["state"] == "open" and dead["type"] == "openai"
    assert dead["consecutive_failures"] == 1 and dead["cooldown_secs"] == 300
    assert 0 < dead["retry_in_secs"] <= 300

    response = httpx.post(
        daemon.url + "/admin/circuits/dead/reset", headers=daemon.headers(), timeout=10
    )
    assert response.status_code == 200
    assert response.json()["state"] == "closed" and response.json()["consecutive_failures"] == 0
    health = httpx.get(daemon.url + "/health", headers=daemon.headers(), timeout=10).json()
    assert {p["name"]: p["circuit"] for p in health["providers"]}["dead"] == "closed"


def test_unknown_provider_is_404_listing_the_known_ones(shared: RunningDaemon) -> None:
    response = httpx.post(
        shared.url + "/admin/circuits/nope/reset", headers=shared.headers(), timeout=10
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "provider_not_found" and "dead, mock" in error["message"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer sk-wrong"}, 401),
        ({"authorization": f"Bearer {CLIENT_KEY}"}, 403),
        ({"x-api-key": CLIENT_KEY}, 403),
    ],
)
def test_only_the_master_key_gets_in(
    shared: RunningDaemon, headers: dict[str, str], status: int
) -> None:
    for method, path in (("GET", "/admin/circuits"), ("POST", "/admin/circuits/dead/reset")):
        response = httpx.request(method, shared.url + path, headers=headers, timeout=10)
        assert response.status_code == status
        assert set(response.json()["error"]) == {"message", "type", "code", "param"}
