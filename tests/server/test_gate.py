"""Keys and limits at the door, through a real daemon: statuses, headers, logs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from fkllmproxy.auth import AUTH_FAILURE, RATE_LIMIT_HIT
from fkllmproxy.config import load_config
from fkllmproxy.server import RuntimeHolder, build_runtime, create_app
from tests.conftest import MASTER_KEY, RunningDaemon, free_port

TEAM_KEY = "sk-team-key-for-tests-0001"
TINY_KEY = "sk-tiny-key-for-tests-0002"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def gate_config(dead_port: int) -> str:
    return f"""
[server]
max_request_size = 2000

[[providers]]
name = "mock"
type = "mock"

[[providers]]
name = "dead"
type = "openai"
base_url = "http://127.0.0.1:{dead_port}/v1"
api_key = "sk-upstream-provider-key-000"
connect_timeout_secs = 2

[[models]]
name = "mock"
targets = [{{ provider = "mock", model = "mock-1" }}]

[[models]]
name = "dead"
targets = [{{ provider = "dead", model = "gpt-x" }}]

[[auth.keys]]
name = "team"
key_sha256 = "{sha(TEAM_KEY)}"
models = ["mock"]

[[auth.keys]]
name = "tiny"
key_sha256 = "{sha(TINY_KEY)}"
rate_limit = {{ capacity = 1, refill_per_second = 0.001 }}
"""


@pytest.fixture(scope="module")
def gate_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    daemon = RunningDaemon(tmp_path_factory.mktemp("gate"), gate_config(free_port()))
    daemon.wait_ready()
    yield daemon
    daemon.stop()


def chat(daemon: RunningDaemon, key: str | None, model: str = "mock", **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = kw.pop("body", None)
    if body is None:
        return httpx.post(
            daemon.url + "/v1/chat/completions",
            headers=headers,
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
    return httpx.post(
        daemon.url + "/v1/chat/completions", headers=headers, content=body, timeout=30
    )


def rate_headers(response: httpx.Response) -> dict[str, int]:
    return {
        name: int(response.headers[name])
        for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
    }


class TestAuthHeaders:
    @pytest.mark.parametrize(
        "headers",
        [
            {"authorization": f"Bearer {MASTER_KEY}"},
            {"authorization": f"bearer {MASTER_KEY}"},
            {"x-api-key": MASTER_KEY},
            {"authorization": "Basic dXNlcjpwdw==", "x-api-key": MASTER_KEY},
        ],
    )
    def test_each_header_form_is_accepted(
        self, gate_daemon: RunningDaemon, headers: dict[str, str]
    ) -> None:
        response = httpx.get(gate_daemon.url + "/v1/models", headers=headers)
        assert response.status_code == 200, response.text

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"authorization": "Bearer wrong-key-123456789"},
            {"authorization": MASTER_KEY},
            {"x-api-key": MASTER_KEY + "x"},
            {"authorization": "Bearer"},
        ],
    )
    def test_missing_or_wrong_key_is_401_with_challenge(
        self, gate_daemon: RunningDaemon, headers: dict[str, str]
    ) -> None:
        response = httpx.get(gate_daemon.url + "/v1/models", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="fkllmproxy"'
        assert response.json()["error"]["type"] == "authentication_error"

    def test_refusal_is_logged_as_unauthorized_without_the_key(
        self, gate_daemon: RunningDaemon
    ) -> None:
        wrong = "sk-wrong-but-distinctive-4242"
        httpx.get(gate_daemon.url + "/v1/models", headers={"authorization": f"Bearer {wrong}"})
        raw = "\n".join(gate_daemon.stdout_lines())
        refused = [line for line in gate_daemon.logs() if "unauthorized" in line["msg"]]
        assert refused and refused[-1]["level"] == "WARNING"
        assert refused[-1]["path"] == "/v1/models"
        assert wrong not in raw and MASTER_KEY not in raw and TEAM_KEY not in raw

    def test_disallowed_model_is_403(self, gate_daemon: RunningDaemon) -> None:
        response = chat(gate_daemon, TEAM_KEY, "dead")
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["type"] == "permission_error" and error["param"] == "model"
        assert "'team'" in error["message"]
        assert chat(gate_daemon, TEAM_KEY, "mock").status_code == 200

    def test_models_list_shows_only_allowed_models(self, gate_daemon: RunningDaemon) -> None:
        response = httpx.get(gate_daemon.url + "/v1/models", headers={"x-api-key": TEAM_KEY})
        assert [m["id"] for m in response.json()["data"]] == ["mock"]


class TestRateLimitHeadersOnEveryResponse:
    """X-RateLimit-* on every authenticated API answer, whatever its status."""

    def test_200(self, gate_daemon: RunningDaemon) -> None:
        response = chat(gate_daemon, MASTER_KEY)
        assert response.status_code == 200
        assert rate_headers(response)["x-ratelimit-limit"] == 1000

    def test_400(self, gate_daemon: RunningDaemon) -> None:
        response = chat(gate_daemon, MASTER_KEY, body=b'{"model": "mock", "messages": []}')
        assert response.status_code == 400
        assert rate_headers(response)["x-ratelimit-limit"] == 1000

    def test_403(self, gate_daemon: RunningDaemon) -> None:
        response = chat(gate_daemon, TEAM_KEY, "dead")
        assert response.status_code == 403
        assert rate_headers(response)["x-ratelimit-limit"] == 1000

    def test_404(self, gate_daemon: RunningDaemon) -> None:
        response = chat(gate_daemon, MASTER_KEY, "no-such-model")
        assert response.status_code == 404
        assert "Available models: dead, mock" in response.json()["error"]["message"]
        assert rate_headers(response)

    def test_413(self, gate_daemon: RunningDaemon) -> None:
        response = chat(gate_daemon, MASTER_KEY, body=b"x" * 5000)
        assert response.status_code == 413
        assert rate_headers(response)

    def test_429_with_retry_after(self, gate_daemon: RunningDaemon) -> None:
        first = chat(gate_daemon, TINY_KEY)
        assert first.status_code == 200
        assert rate_headers(first) == {
            "x-ratelimit-limit": 1,
            "x-ratelimit-remaining": 0,
            "x-ratelimit-reset": 1000,
        }
        limited = chat(gate_daemon, TINY_KEY)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 900
        assert rate_headers(limited)["x-ratelimit-remaining"] == 0
        assert limited.json()["error"]["type"] == "rate_limit_error"
        # Another key has its own bucket.
        assert chat(gate_daemon, MASTER_KEY).status_code == 200

    def test_502_without_leaking_the_provider_key(self, gate_daemon: RunningDaemon) -> None:
        response = chat(gate_daemon, MASTER_KEY, "dead")
        assert response.status_code == 502
        assert rate_headers(response)
        assert "sk-upstream-provider-key-000" not in response.text
        assert "sk-upstream-provider-key-000" not in "\n".join(gate_daemon.stdout_lines())


class TestWithoutKeys:
    def test_limited_per_client_ip(self, start_daemon: Any) -> None:
        daemon = start_daemon(
            env={
                "APP_AUTH__MASTER_KEY": "",
                "APP_RATE_LIMIT__CAPACITY": "2",
                "APP_RATE_LIMIT__REFILL_PER_SECOND": "0.001",
            }
        )
        statuses = [httpx.get(daemon.url + "/v1/models").status_code for _ in range(3)]
        assert statuses == [200, 200, 429]

    def test_key_guessing_is_slowed_to_429(self, start_daemon: Any) -> None:
        daemon = start_daemon(
            env={"APP_RATE_LIMIT__CAPACITY": "3", "APP_RATE_LIMIT__REFILL_PER_SECOND": "0.001"}
        )
        headers = {"authorization": "Bearer guess-000000000"}
        statuses = [
            httpx.get(daemon.url + "/v1/models", headers=headers).status_code for _ in range(5)
        ]
        assert statuses == [401, 401, 401, 429, 429]
        # The real key has its own bucket and still works.
        assert httpx.get(daemon.url + "/v1/models", headers=daemon.headers()).status_code == 200


def test_access_events_count_refusals_for_metrics(tmp_path: Path) -> None:
    """The metrics hook: totals on the holder and a listener called per event."""
    config = tmp_path / "c.toml"
    config.write_text(gate_config(free_port()))
    loaded = load_config(
        config_path=config,
        environ={
            "APP_AUTH__MASTER_KEY": MASTER_KEY,
            "APP_STATE__DIRECTORY": str(tmp_path),
        },
    )
    holder = RuntimeHolder(build_runtime(loaded))
    seen: list[str] = []
    holder.access.subscribe(seen.append)
    with TestClient(create_app(holder)) as client:
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers={"x-api-key": "nope-nope-nope"}).status_code == 401
        assert client.get("/v1/models", headers={"x-api-key": TINY_KEY}).status_code == 200
        assert client.get("/v1/models", headers={"x-api-key": TINY_KEY}).status_code == 429
    assert (holder.access.auth_failures, holder.access.rate_limit_hits) == (2, 1)
    assert seen == [AUTH_FAILURE, AUTH_FAILURE, RATE_LIMIT_HIT]
