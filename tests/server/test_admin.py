"""``/admin``: master key only, secrets redacted, reload over HTTP with the key store."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from tests.conftest import MASTER_KEY, MOCK_CONFIG, fkllm

TEAM_KEY = "sk-team-admin-test-000001"
PROVIDER_KEY = "sk-provider-secret-999999"
CONFIG = (
    MOCK_CONFIG
    + f"""
[[providers]]
name = "upstream"
type = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "UPSTREAM_KEY"
headers = {{ "X-Custom-Token" = "header-secret-value-1", "X-Trace" = "visible" }}

[[auth.keys]]
name = "team"
key_sha256 = "{hashlib.sha256(TEAM_KEY.encode()).hexdigest()}"
"""
)


def test_admin_needs_the_master_key(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG, env={"UPSTREAM_KEY": PROVIDER_KEY})
    for method, path in (("GET", "/admin/config"), ("POST", "/admin/reload")):
        missing = httpx.request(method, daemon.url + path)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = httpx.request(method, daemon.url + path, headers={"x-api-key": "not-a-key-123"})
        assert wrong.status_code == 401
        client = httpx.request(method, daemon.url + path, headers={"x-api-key": TEAM_KEY})
        assert client.status_code == 403
        assert client.json()["error"]["code"] == "master_key_required"
        assert "x-ratelimit-limit" in client.headers


def test_admin_config_is_redacted(start_daemon: Any) -> None:
    daemon = start_daemon(
        CONFIG,
        env={"UPSTREAM_KEY": PROVIDER_KEY, "APP_AUTH__PREVIOUS_MASTER_KEY": "old-master-key-777"},
    )
    response = httpx.get(daemon.url + "/admin/config", headers=daemon.headers())
    assert response.status_code == 200
    body = response.json()
    assert body["config"]["auth"]["master_key"] == "<redacted>"
    assert body["config"]["auth"]["previous_master_key"] == "<redacted>"
    upstream = body["config"]["providers"][1]
    assert upstream["api_key"] == "<redacted>"
    assert upstream["headers"] == {"X-Custom-Token": "<redacted>", "X-Trace": "visible"}
    assert body["client_keys"] == 1
    assert body["config_file"] == str(daemon.config_path)
    for secret in (MASTER_KEY, PROVIDER_KEY, "header-secret-value-1", "old-master-key-777"):
        assert secret not in response.text
        assert secret not in "\n".join(daemon.stdout_lines())


def test_reload_over_http_picks_up_the_key_store(start_daemon: Any, tmp_path: Any) -> None:
    state = tmp_path / "state"
    daemon = start_daemon(MOCK_CONFIG, env={"APP_STATE__DIRECTORY": str(state)})
    created = fkllm("keys", "create", "ci-bot", "--models", "mock", "--state-dir", str(state))
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("sk-fkllm-")
    listed = fkllm("keys", "list", "--state-dir", str(state))
    assert "ci-bot" in listed.stdout and key not in listed.stdout
    probe = {"authorization": f"Bearer {key}"}
    assert httpx.get(daemon.url + "/v1/models", headers=probe).status_code == 401

    reloaded = httpx.post(daemon.url + "/admin/reload", headers=daemon.headers())
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["status"] == "reloaded"
    assert reloaded.json()["client_keys"] == 1
    assert httpx.get(daemon.url + "/v1/models", headers=probe).status_code == 200
    forbidden = httpx.post(
        daemon.url + "/v1/chat/completions",
        headers=probe,
        json={"model": "other", "messages": [{"role": "user", "content": "x"}]},
    )
    assert forbidden.status_code == 404  # unknown model is 404 before the allow-list

    assert fkllm("keys", "revoke", "ci-bot", "--state-dir", str(state)).returncode == 0
    assert httpx.post(daemon.url + "/admin/reload", headers=daemon.headers()).status_code == 200
    assert httpx.get(daemon.url + "/v1/models", headers=probe).status_code == 401
    assert key not in "\n".join(daemon.stdout_lines())


def test_reload_over_http_refuses_an_invalid_config(start_daemon: Any) -> None:
    daemon = start_daemon()
    daemon.config_path.write_text(MOCK_CONFIG + "\n[rate_limit]\ncapacity = 'lots'\n")
    response = httpx.post(daemon.url + "/admin/reload", headers=daemon.headers())
    assert response.status_code == 422
    body = response.json()
    assert body["error"]["code"] == "invalid_config"
    assert any("rate_limit.capacity" in problem for problem in body["problems"])
    assert httpx.get(daemon.url + "/v1/models", headers=daemon.headers()).status_code == 200
