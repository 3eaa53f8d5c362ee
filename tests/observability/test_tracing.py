"""Optional tracing: spans for a request and its upstream attempts reach an OTLP endpoint."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, wait_until

trace_service = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="the otel extra is not installed",
)

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def collector() -> Iterator[tuple[str, list[Any]]]:
    """A stand-in OTLP/HTTP collector on 127.0.0.1 that keeps every span it receives."""
    spans: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            request = trace_service.ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    spans.extend(scope.spans)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", spans
    server.shutdown()
    server.server_close()


def attributes(span: Any) -> dict[str, Any]:
    values = {}
    for item in span.attributes:
        value = item.value
        values[item.key] = getattr(value, value.WhichOneof("value"))
    return values


def test_request_and_attempt_spans(start_daemon: Any, collector: tuple[str, list[Any]]) -> None:
    endpoint, spans = collector
    config = f"""
[[providers]]
name = "dead"
type = "openai"
base_url = "http://127.0.0.1:{free_port()}/v1"

[[providers]]
name = "mock"
type = "mock"

[[models]]
name = "mock"
targets = [{{ provider = "dead", model = "x" }}, {{ provider = "mock", model = "m1" }}]
"""
    daemon = start_daemon(
        config,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"},
    )
    reply = httpx.post(
        daemon.url + "/v1/chat/completions",
        headers={**daemon.headers(), "traceparent": TRACEPARENT},
        json={"model": "mock", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert reply.status_code == 200
    httpx.get(daemon.url + "/health")  # probes are not traced
    assert daemon.stop() == 0  # the stop flushes what is still batched
    assert wait_until(lambda: len(spans) >= 3, timeout=10)

    by_name = {span.name: span for span in spans}
    assert set(by_name) == {"POST /v1/chat/completions", "upstream dead", "upstream mock"}
    request = by_name["POST /v1/chat/completions"]
    assert request.trace_id.hex() == CLIENT_TRACE, "the client's traceparent is honoured"
    fields = attributes(request)
    assert fields["http.response.status_code"] == 200
    assert fields["fkllm.request_id"] == reply.headers["x-request-id"]
    assert fields["fkllm.provider"] == "mock" and fields["fkllm.attempts"] == 2
    for name, outcome in (("upstream dead", "error"), ("upstream mock", "success")):
        attempt = by_name[name]
        assert attempt.parent_span_id == request.span_id
        assert attempt.trace_id == request.trace_id
        assert attributes(attempt)["fkllm.outcome"] == outcome
    assert by_name["upstream dead"].status.code == 2  # ERROR
    assert (
        by_name["upstream mock"].start_time_unix_nano >= by_name["upstream dead"].end_time_unix_nano
    )
