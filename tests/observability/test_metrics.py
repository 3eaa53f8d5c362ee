"""The metric series and the JSON summary, recorded and read in one process."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fkllmproxy.config import load_config
from fkllmproxy.observability.metrics import Metrics, process_metrics
from fkllmproxy.server import build_runtime


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def finish(metrics: Metrics, status: int, seconds: float = 0.1, **labels: str) -> None:
    metrics.request_started()
    metrics.request_finished(
        route=labels.get("route", "/v1/chat/completions"),
        model=labels.get("model", "gpt"),
        provider=labels.get("provider", "primary"),
        status=status,
        seconds=seconds,
        reason=labels.get("reason"),
    )


class TestRecording:
    def test_requests_counted_by_their_labels(self) -> None:
        metrics = Metrics(window=64)
        finish(metrics, 200)
        finish(metrics, 200)
        finish(metrics, 502, reason="upstream_unavailable")
        found = samples(metrics)
        key = (("model", "gpt"), ("provider", "primary"), ("route", "/v1/chat/completions"))
        assert found[("fkllm_requests_total", (*key, ("status", "200")))] == 2
        assert found[("fkllm_requests_total", (*key, ("status", "502")))] == 1
        failed = (("reason", "upstream_unavailable"), ("route", "/v1/chat/completions"))
        assert found[("fkllm_failed_requests_total", failed)] == 1
        assert found[("fkllm_request_latency_seconds_count", ())] == 3
        assert found[("fkllm_in_flight_requests", ())] == 0

    def test_every_contract_series_is_exported(self) -> None:
        metrics = Metrics(window=64)
        finish(metrics, 200)
        finish(metrics, 429, reason="rate_limit_exceeded")
        metrics.upstream_attempt("primary", "success", 0.05)
        metrics.first_token("primary", 0.02)
        metrics.tokens("primary", "gpt", 10, 5)
        metrics.rate_limited()
        metrics.auth_failed()
        metrics.circuit_state("primary", "open")
        names = {name for name, _ in samples(metrics)}
        for name in (
            "fkllm_requests_total",
            "fkllm_request_latency_seconds_bucket",
            "fkllm_failed_requests_total",
            "fkllm_upstream_requests_total",
            "fkllm_upstream_latency_seconds_bucket",
            "fkllm_time_to_first_token_seconds_bucket",
            "fkllm_tokens_total",
            "fkllm_rate_limit_hits_total",
            "fkllm_auth_failures_total",
            "fkllm_circuit_breaker_state",
            "fkllm_in_flight_requests",
            "process_resident_memory_bytes",
        ):
            assert name in names, name
        assert not any(name.endswith("_created") for name in names)

    def test_circuit_gauge_values(self) -> None:
        """0 closed, 1 half-open, 2 open; unconfigured providers drop out."""
        metrics = Metrics(window=64)
        metrics.sync_providers({"a": "closed", "b": "half_open", "c": "open"})
        found = samples(metrics)
        assert found[("fkllm_circuit_breaker_state", (("provider", "a"),))] == 0
        assert found[("fkllm_circuit_breaker_state", (("provider", "b"),))] == 1
        assert found[("fkllm_circuit_breaker_state", (("provider", "c"),))] == 2
        metrics.sync_providers({"a": "open"})
        found = samples(metrics)
        assert found[("fkllm_circuit_breaker_state", (("provider", "a"),))] == 2
        assert ("fkllm_circuit_breaker_state", (("provider", "b"),)) not in found

    def test_label_children_are_reused(self) -> None:
        """The hot path looks each label set up once, then only increments."""
        metrics = Metrics(window=64)
        finish(metrics, 200)
        children = len(metrics._children)
        for _ in range(50):
            finish(metrics, 200)
            metrics.upstream_attempt("primary", "success", 0.01)
        assert len(metrics._children) == children + 2


class TestSnapshot:
    def test_totals_rates_and_percentiles(self) -> None:
        metrics = Metrics(window=1000)
        for ms in range(1, 101):
            finish(metrics, 200, seconds=ms / 1000)
        finish(metrics, 401, seconds=0.001, reason="invalid_api_key")
        metrics.auth_failed()
        metrics.rate_limited()
        snap = metrics.snapshot(uptime=12.5)
        assert snap["total_requests"] == 101
        assert snap["successful_requests"] == 100
        assert snap["failed_requests"] == 1
        assert snap["success_rate"] == round(100 / 101, 4)
        assert snap["auth_failures"] == 1
        assert snap["rate_limited_requests"] == 1
        assert snap["latency_ms"]["samples"] == 101
        assert 49 <= snap["latency_ms"]["p50"] <= 51
        assert 94 <= snap["latency_ms"]["p95"] <= 96
        assert snap["uptime"] == 12.5

    def test_latency_window_keeps_the_most_recent(self) -> None:
        """Percentiles cover the last ``window`` requests only."""
        metrics = Metrics(window=16)
        for _ in range(100):
            finish(metrics, 200, seconds=5.0)
        for _ in range(16):
            finish(metrics, 200, seconds=0.01)
        latency = metrics.snapshot(uptime=1)["latency_ms"]
        assert latency["samples"] == 16
        assert latency["p99"] == 10.0

    def test_providers_recent_error_rate(self) -> None:
        metrics = Metrics(window=64)
        metrics.sync_providers({"primary": "closed", "backup": "open"})
        for outcome in ("success", "success", "error", "timeout", "rejected"):
            metrics.upstream_attempt("primary", outcome, 0.1)
        snap = metrics.snapshot(uptime=1)
        primary = snap["providers"]["primary"]
        assert primary["attempts"] == 5
        assert primary["failures"] == 2  # "rejected" was the client's fault
        assert primary["recent_error_rate"] == 0.4
        assert primary["outcomes"] == {"error": 1, "rejected": 1, "success": 2, "timeout": 1}
        assert snap["providers"]["backup"]["circuit"] == "open"
        assert snap["providers"]["backup"]["recent_error_rate"] is None

    def test_empty(self) -> None:
        snap = Metrics(window=16).snapshot(uptime=0)
        assert snap["total_requests"] == 0
        assert snap["success_rate"] == 1.0
        assert snap["latency_ms"] == {"p50": None, "p95": None, "p99": None, "samples": 0}


class TestWorkerFiles:
    """With several workers each process's series live in files one directory holds."""

    def test_a_file_a_starting_worker_has_not_sized_yet_is_skipped(self, tmp_path: Path) -> None:
        from fkllmproxy.observability.metrics import use_multiprocess

        # Another worker has just created its file and not yet sized it.
        (tmp_path / "counter_424242.db").write_bytes(b"")
        use_multiprocess(str(tmp_path))
        try:
            metrics = Metrics(window=64, directory=tmp_path)  # read every file once
            finish(metrics, 200)
            found = samples(metrics)
        finally:
            use_multiprocess(None)
        key = (("model", "gpt"), ("provider", "primary"), ("route", "/v1/chat/completions"))
        assert found[("fkllm_requests_total", (*key, ("status", "200")))] == 1


@pytest.mark.parametrize("enabled", [True, False])
def test_a_circuit_change_reaches_the_gauge_only_with_metrics_on(
    tmp_path: Path, enabled: bool
) -> None:
    """The runtime hands the breakers the process's metrics, or none with
    ``[metrics] enabled = false``: an opened circuit shows as 2, or not at all."""
    name = f"gauge-{'on' if enabled else 'off'}-{tmp_path.name}"[:60]
    config = tmp_path / "config.toml"
    config.write_text(
        f'[[providers]]\nname = "{name}"\ntype = "mock"\n\n'
        f'[[models]]\nname = "m"\ntargets = [{{ provider = "{name}", model = "x" }}]\n\n'
        f"[circuit_breaker]\nfailure_threshold = 1\n\n[metrics]\nenabled = {str(enabled).lower()}\n"
    )
    runtime = build_runtime(load_config(config_path=config, environ={}))
    runtime.router.breakers[name].record_failure()
    assert runtime.router.breakers[name].state == "open"
    gauge = samples(process_metrics()).get(("fkllm_circuit_breaker_state", (("provider", name),)))
    assert gauge == (2 if enabled else None)
