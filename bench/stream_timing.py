"""Sequential streaming requests: time to the first body byte and to the last one.

This is a latency measurement, not a throughput one, so a plain Python client on one
keep-alive connection is fine: its own cost is the same for every target and cancels
out in the difference to the direct upstream. The first byte is the first byte of
the body (the first SSE frame), not of the headers: a gateway may answer with
headers at once and still hold the first frame back.
"""

from __future__ import annotations

import http.client
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["StreamTiming", "measure_streams", "percentile"]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class StreamTiming:
    """Per-request times in milliseconds, and how many requests failed."""

    ttfb_ms: list[float]
    total_ms: list[float]
    errors: int
    sample_error: str | None = None

    def summary(self) -> dict[str, float]:
        return {
            "ttfb_p50": percentile(self.ttfb_ms, 50),
            "ttfb_p90": percentile(self.ttfb_ms, 90),
            "ttfb_mean": statistics.fmean(self.ttfb_ms) if self.ttfb_ms else 0.0,
            "total_p50": percentile(self.total_ms, 50),
            "total_p90": percentile(self.total_ms, 90),
            "count": float(len(self.ttfb_ms)),
            "errors": float(self.errors),
        }


def measure_streams(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    count: int,
    max_seconds: float,
    expect: bytes = b"[DONE]",
    timeout_s: float = 30.0,
) -> StreamTiming:
    """Send up to ``count`` streaming requests one after another (bounded by time)."""
    parts = urlsplit(url)
    path = parts.path or "/"
    send_headers = {"content-type": "application/json", **headers}
    ttfb: list[float] = []
    total: list[float] = []
    errors = 0
    sample_error: str | None = None
    conn: http.client.HTTPConnection | None = None
    deadline = time.monotonic() + max_seconds
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        if conn is None:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
        try:
            start = time.perf_counter()
            conn.request("POST", path, body=body, headers=send_headers)
            response = conn.getresponse()
            first = response.read1(65536)
            first_at = time.perf_counter()
            data = bytearray(first)
            while chunk := response.read1(65536):
                data += chunk
            # read1 never marks a Content-Length response as finished; read() does.
            data += response.read()
            end = time.perf_counter()
            if response.status != 200 or expect not in data:
                raise ValueError(f"status {response.status}: {bytes(data[:200])!r}")
            if response.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            errors += 1
            sample_error = sample_error or f"{type(exc).__name__}: {exc}"
            if conn is not None:
                conn.close()
            conn = None
            continue
        ttfb.append((first_at - start) * 1000)
        total.append((end - start) * 1000)
    if conn is not None:
        conn.close()
    return StreamTiming(ttfb_ms=ttfb, total_ms=total, errors=errors, sample_error=sample_error)
