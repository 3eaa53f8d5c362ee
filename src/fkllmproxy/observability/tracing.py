"""Optional OpenTelemetry traces: one span per request, one child span per upstream attempt.

Off unless the ``otel`` extra is installed (``pip install 'fkllmproxy[otel]'``) and
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set.
Spans go out over OTLP/HTTP in batches; the standard ``OTEL_*`` variables (service name,
headers, sampler, batch delays, ``OTEL_SDK_DISABLED``) apply. A client's ``traceparent``
header makes the request span part of the client's trace.

The daemon's bootstrap makes one ``Tracing`` per serving process and hands it to the
runtime (the request middleware and the router's attempt recorder use it from there);
with tracing off there is none, and each hook costs one ``is None`` check. The request
span is kept in a context variable set by the middleware (each request runs in its own
task, so it is that request's), which is how an attempt span finds its parent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from fkllmproxy import __version__
from fkllmproxy.observability.logging import get_logger

__all__ = ["Tracing", "finish_request", "setup_tracing"]

_log = get_logger("tracing")
_request_span: ContextVar[Any] = ContextVar("fkllm_request_span", default=None)


def setup_tracing(environ: Mapping[str, str] | None = None) -> Tracing | None:
    """This process's tracing, if the environment asks for it and OpenTelemetry is there.

    Called once per serving process by the daemon's bootstrap (after a worker's fork,
    so no exporter thread is shared across processes); the result is handed to what
    records spans (the request middleware through the runtime, the router's attempts).
    """
    env = os.environ if environ is None else environ
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        _log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed "
            "(pip install 'fkllmproxy[otel]'); tracing stays off"
        )
        return None
    attributes = {"service.version": __version__}
    if not env.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = "fkllmproxy"
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _log.info("tracing on", extra={"otlp_endpoint": endpoint})
    return Tracing(provider)


class Tracing:
    """A tracer provider exporting over OTLP, and the spans fkllm makes with it."""

    __slots__ = ("_provider", "_tracer")

    def __init__(self, provider: Any) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("fkllmproxy", __version__)

    def shutdown(self) -> None:
        """Send the spans still batched (called on stop, after the drain)."""
        self._provider.shutdown()

    def start_request(self, scope: dict[str, Any]) -> Any:
        """Open this request's span (a child of the client's ``traceparent``, if any)."""
        from opentelemetry.propagate import extract
        from opentelemetry.trace import SpanKind

        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"traceparent", b"tracestate")
        }
        span = self._tracer.start_span(
            f"{scope['method']} {scope['path']}",
            context=extract(carrier) if carrier else None,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
        )
        _request_span.set(span)
        return span

    def attempt(
        self,
        provider: str,
        upstream_model: str,
        attempt: int,
        started: float,
        outcome: str,
        status: int | None,
        error: str | None,
    ) -> None:
        """Record one finished upstream attempt as a child of the request's span."""
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

        parent = _request_span.get()
        now_ns = time.time_ns()
        start_ns = now_ns - int((time.perf_counter() - started) * 1e9)
        span = self._tracer.start_span(
            f"upstream {provider}",
            context=set_span_in_context(parent) if parent is not None else None,
            kind=SpanKind.CLIENT,
            start_time=start_ns,
            attributes={
                "fkllm.provider": provider,
                "gen_ai.request.model": upstream_model,
                "fkllm.attempt": attempt,
                "fkllm.outcome": outcome,
            },
        )
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if outcome not in ("success", "rejected"):
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=now_ns)


def finish_request(span: Any, route: str, status: int, attributes: Mapping[str, Any]) -> None:
    """Name the span after its route template, record the outcome, and end it."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.update_name(f"{span.attributes.get('http.request.method', '')} {route}".strip())
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    for key, value in attributes.items():
        if value is not None:
            span.set_attribute(key, value)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()
