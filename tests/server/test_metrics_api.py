"""``/metrics`` and ``/metrics/prometheus`` against a real daemon: the numbers match
the requests actually sent, labels stay bounded, and the access settings hold."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import MOCK_CONFIG, free_port, prometheus_samples, sample_sum

CHAT = "/v1/chat/completions"


def chat(daemon: Any, model: str = "mock", **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "count these words"}]}
    return httpx.post(daemon.url + CHAT, headers=daemon.headers(), json={**body, **extra})


def scrape(daemon: Any, **kwargs: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(daemon.url + "/metrics/prometheus", **kwargs)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return prometheus_samples(response.text)


def test_counts_and_labels_match_the_requests_sent(start_daemon: Any) -> None:
    daemon = start_daemon()
    prompt_tokens = 0
    for _ in range(3):
        reply = chat(daemon)
        assert reply.status_code == 200
        prompt_tokens += reply.json()["usage"]["prompt_tokens"]
    streamed = chat(daemon, stream=True)
    assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
    assert chat(daemon, model="made-up-model").status_code == 404
    assert httpx.get(daemon.url + "/v1/models", headers=daemon.headers("wrong")).status_code == 401
    embedded = httpx.post(
        daemon.url + "/v1/embeddings",
        headers=daemon.headers(),
        json={"model": "mock", "input": "x y"},
    )
    assert embedded.status_code == 200
    for _ in range(3):  # probes and scrapes are not requests
        httpx.get(daemon.url + "/health")
        httpx.get(daemon.url + "/metrics")

    samples = scrape(daemon)
    requests = "fkllm_requests_total"
    assert sample_sum(samples, requests) == 7
    assert (
        sample_sum(samples, requests, route=CHAT, model="mock", provider="mock", status="200") == 4
    )
    assert (
        sample_sum(samples, requests, route=CHAT, model="unknown", provider="", status="404") == 1
    )
    assert sample_sum(samples, requests, route="/v1/models", status="401") == 1
    assert sample_sum(samples, requests, route="/v1/embeddings", status="200") == 1
    models = {dict(labels).get("model") for name, labels in samples if name == requests}
    assert models == {"mock", "unknown", ""}, "model labels come from the config only"
    routes = {dict(labels)["route"] for name, labels in samples if name == requests}
    assert routes == {CHAT, "/v1/models", "/v1/embeddings"}
    assert sample_sum(samples, "fkllm_failed_requests_total", reason="model_not_found") == 1
    assert sample_sum(samples, "fkllm_auth_failures_total") == 1
    assert sample_sum(samples, "fkllm_rate_limit_hits_total") == 0
    assert sample_sum(samples, "fkllm_request_latency_seconds_count") == 7
    assert (
        sample_sum(samples, "fkllm_upstream_requests_total", provider="mock", outcome="success")
        == 5
    )
    assert sample_sum(samples, "fkllm_upstream_latency_seconds_count", provider="mock") == 5
    assert sample_sum(samples, "fkllm_time_to_first_token_seconds_count", provider="mock") == 1
    tokens = sample_sum(samples, "fkllm_tokens_total", provider="mock", model="mock", kind="prompt")
    assert tokens == prompt_tokens + 3 + 2  # the stream's prompt, and the embedding input
    assert sample_sum(samples, "fkllm_circuit_breaker_state", provider="mock") == 0
    assert sample_sum(samples, "fkllm_in_flight_requests") == 0
    assert sample_sum(samples, "process_resident_memory_bytes") > 0

    body = httpx.get(daemon.url + "/metrics").json()
    assert body["total_requests"] == 7
    assert body["successful_requests"] == 5
    assert body["failed_requests"] == 2
    assert body["success_rate"] == round(5 / 7, 4)
    assert body["auth_failures"] == 1
    assert body["rate_limited_requests"] == 0
    assert body["latency_ms"]["samples"] == 7
    assert 0 < body["latency_ms"]["p50"] <= body["latency_ms"]["p95"] <= body["latency_ms"]["p99"]
    assert body["providers"]["mock"]["attempts"] == 5
    assert body["providers"]["mock"]["circuit"] == "closed"
    assert body["providers"]["mock"]["recent_error_rate"] == 0.0
    assert body["uptime"] > 0


def test_rate_limit_hits_are_counted(start_daemon: Any) -> None:
    daemon = start_daemon(MOCK_CONFIG + "\n[rate_limit]\ncapacity = 2\nrefill_per_second = 0.001\n")
    statuses = [chat(daemon).status_code for _ in range(5)]
    assert statuses.count(429) == 3
    samples = scrape(daemon)
    assert sample_sum(samples, "fkllm_rate_limit_hits_total") == 3
    assert sample_sum(samples, "fkllm_failed_requests_total", reason="rate_limit_exceeded") == 3
    assert httpx.get(daemon.url + "/metrics").json()["rate_limited_requests"] == 3


def test_failed_attempt_then_fallback(start_daemon: Any) -> None:
    """A dead provider's attempt counts as an error; the fallback answers."""
    config = f"""
[[providers]]
name = "dead"
type = "openai"
base_url = "http://127.0.0.1:{free_port()}/v1"
connect_timeout_secs = 2

[[providers]]
name = "mock"
type = "mock"

[[models]]
name = "mock"
targets = [{{ provider = "dead", model = "x" }}, {{ provider = "mock", model = "m" }}]
"""
    daemon = start_daemon(config)
    assert chat(daemon).status_code == 200
    samples = scrape(daemon)
    assert (
        sample_sum(samples, "fkllm_upstream_requests_total", provider="dead", outcome="error") == 1
    )
    assert (
        sample_sum(samples, "fkllm_upstream_requests_total", provider="mock", outcome="success")
        == 1
    )
    assert sample_sum(samples, "fkllm_requests_total", provider="mock", status="200") == 1
    body = httpx.get(daemon.url + "/metrics").json()
    assert body["providers"]["dead"]["recent_error_rate"] == 1.0
    assert body["providers"]["mock"]["recent_error_rate"] == 0.0
    daemon.stop()
    attempts = [line for line in daemon.logs() if line["msg"] == "upstream attempt"]
    assert len(attempts) == 1  # the success is DEBUG, the failure WARNING
    failed = attempts[0]
    assert failed["level"] == "WARNING"
    assert failed["provider"] == "dead" and failed["attempt"] == 1
    assert failed["outcome"] == "error" and failed["latency_ms"] >= 0
    request = next(line for line in daemon.logs() if line["msg"] == "request")
    assert failed["request_id"] == request["request_id"]
    assert request["attempts"] == 2 and request["provider"] == "mock"


def test_require_auth_wants_the_master_key(start_daemon: Any) -> None:
    daemon = start_daemon(MOCK_CONFIG + "\n[metrics]\nrequire_auth = true\n")
    for path in ("/metrics", "/metrics/prometheus"):
        refused = httpx.get(daemon.url + path)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(daemon.url + path, headers=daemon.headers("wrong")).status_code == 401
        assert httpx.get(daemon.url + path, headers=daemon.headers()).status_code == 200


def test_disabled_metrics_answer_404(start_daemon: Any) -> None:
    daemon = start_daemon(MOCK_CONFIG + "\n[metrics]\nenabled = false\n")
    for path in ("/metrics", "/metrics/prometheus"):
        response = httpx.get(daemon.url + path)
        assert response.status_code == 404
        assert "metrics.enabled" in response.json()["error"]["message"]


def test_unmatched_routes_are_logged_counted_and_tagged(start_daemon: Any) -> None:
    """404 and 405 never reach a route handler; they still get X-Request-ID, a log line,
    and a count under route="unmatched" (never the raw path)."""
    daemon = start_daemon()
    missing = httpx.get(daemon.url + "/wp-admin/setup.php")
    assert missing.status_code == 404 and missing.headers["x-request-id"]
    wrong_method = httpx.delete(daemon.url + "/v1/models", headers={"x-request-id": "abc-1"})
    assert wrong_method.status_code == 405 and wrong_method.headers["x-request-id"] == "abc-1"
    samples = scrape(daemon)
    assert sample_sum(samples, "fkllm_requests_total", route="unmatched", status="404") == 1
    assert sample_sum(samples, "fkllm_failed_requests_total", reason="route_not_found") == 1
    routes = {dict(labels)["route"] for name, labels in samples if name == "fkllm_requests_total"}
    assert "/wp-admin/setup.php" not in routes
    daemon.stop()
    lines = [line for line in daemon.logs() if line["msg"] == "request"]
    assert {(line["path"], line["status"]) for line in lines} >= {
        ("/wp-admin/setup.php", 404),
        ("/v1/models", 405),
    }


def test_an_open_circuit_shows_in_the_gauge(start_daemon: Any) -> None:
    """The breaker's state change reaches fkllm_circuit_breaker_state (2 = open)."""
    config = f"""
[circuit_breaker]
failure_threshold = 1
timeout_secs = 600

[[providers]]
name = "dead"
type = "openai"
base_url = "http://127.0.0.1:{free_port()}/v1"
connect_timeout_secs = 2

[[models]]
name = "mock"
targets = [{{ provider = "dead", model = "x" }}]
"""
    daemon = start_daemon(config)
    assert chat(daemon).status_code in (502, 503)
    health = httpx.get(daemon.url + "/health", headers=daemon.headers()).json()
    circuit = {p["name"]: p["circuit"] for p in health["providers"]}["dead"]
    assert circuit == "open"
    samples = scrape(daemon)
    assert sample_sum(samples, "fkllm_circuit_breaker_state", provider="dead") == 2
    assert httpx.get(daemon.url + "/metrics").json()["providers"]["dead"]["circuit"] == "open"
