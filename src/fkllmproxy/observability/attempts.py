"""One upstream attempt, observed: its outcome, a log line, the metrics and (when tracing
is on) a span.

The router calls its ``AttemptRecorder`` once per attempt (success or failure), so a
request that fell back from one provider to another leaves one line and one count per
try. The recorder is built with the runtime and handed to the router, with the metrics
to count in, or none when ``[metrics] enabled = false``.
Failed attempts are logged at WARNING (an operator wants to see a provider failing even
when a fallback saved the request); successes and client-caused refusals at DEBUG,
since the request line already names the provider and the number of attempts.
"""

from __future__ import annotations

import logging
import time

from fkllmproxy.errors import ClientError, UpstreamError, UpstreamRejected, UpstreamTimeout
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.observability.metrics import Metrics
from fkllmproxy.observability.tracing import Tracing

__all__ = ["AttemptRecorder", "outcome_of"]

_log = get_logger("upstream")


def outcome_of(error: BaseException | None) -> str:
    """The ``outcome`` label for an attempt that raised ``error`` (``None``: success)."""
    if error is None:
        return "success"
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    if isinstance(error, UpstreamRejected | ClientError):
        return "rejected"
    if isinstance(error, UpstreamError) and error.upstream_status == 429:
        return "rate_limited"
    return "error"


class AttemptRecorder:
    """Counts (in ``metrics``, if any), logs and traces (with ``tracing``, if any) each
    upstream attempt."""

    __slots__ = ("_metrics", "_tracing")

    def __init__(self, metrics: Metrics | None, tracing: Tracing | None = None) -> None:
        self._metrics = metrics
        self._tracing = tracing

    def __call__(
        self,
        provider: str,
        upstream_model: str,
        attempt: int,
        started: float,
        error: BaseException | None = None,
    ) -> None:
        """Count and log one attempt that began at ``started`` (``time.perf_counter()``)."""
        _record(self._metrics, self._tracing, provider, upstream_model, attempt, started, error)


def _record(
    metrics: Metrics | None,
    tracing: Tracing | None,
    provider: str,
    upstream_model: str,
    attempt: int,
    started: float,
    error: BaseException | None,
) -> None:
    seconds = time.perf_counter() - started
    outcome = outcome_of(error)
    if metrics is not None:
        metrics.upstream_attempt(provider, outcome, seconds)
    status = 200 if error is None else getattr(error, "upstream_status", None)
    if status is None and isinstance(error, ClientError):
        status = error.status
    message = None if error is None else getattr(error, "message", None) or type(error).__name__
    if tracing is not None:
        tracing.attempt(provider, upstream_model, attempt, started, outcome, status, message)
    level = logging.DEBUG if outcome in ("success", "rejected") else logging.WARNING
    if not _log.isEnabledFor(level):
        return
    extra: dict[str, object] = {
        "provider": provider,
        "upstream_model": upstream_model,
        "attempt": attempt,
        "outcome": outcome,
        "status": status,
        "latency_ms": round(seconds * 1000, 3),
    }
    if message is not None:
        extra["error"] = message
    _log.log(level, "upstream attempt", extra=extra)
