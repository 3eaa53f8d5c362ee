"""``python -m bench.soak`` (``make soak``): mixed traffic with faults for ten minutes; the RSS slope.

A real ``fkllm serve`` in front of ``fkllmproxy.testing.hostile_upstream``, with the
healthy mock provider as every model's fallback. Client threads loop over a mix of
good requests (whole and streamed), hostile answers that must fall back (``{}``, a
1 GiB ``Content-Length``, 200,000 headers, a gzip bomb), hostile streams cut at their
limit, and clients that hang up mid-stream. The daemon's RSS is sampled every few
seconds; after a warm-up (the first fifth), a least-squares line through the samples
gives the slope in MB per hour. Exit status 1 when it is above ``--max-slope`` (5 MB/h),
or when any answer was a 5xx other than the expected 502 of a cut stream, or when
``/health`` failed.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from fkllmproxy.testing.hostile_upstream import HostileUpstream

MASTER = "sk-bench-soak-0123456789"
MIX = [  # (model, stream, hang up after the first chunk)
    ("ok", False, False),
    ("ok", True, False),
    ("ok", True, True),
    ("fallback-empty-object", False, False),
    ("fallback-huge-length", False, False),
    ("fallback-many-headers", False, False),
    ("fallback-gzip-bomb", False, False),
    ("fallback-not-json", False, False),
    ("long-line", True, False),
    ("stream-flood", True, False),
]
HOSTILE = ["empty-object", "huge-length", "many-headers", "gzip-bomb", "not-json", "long-line",
           "stream-flood"]  # fmt: skip


def _config(base_url: str) -> str:
    models = '\n[[models]]\nname = "ok"\ntargets = [{ provider = "healthy", model = "m" }]\n'
    for row in HOSTILE:
        models += f'\n[[models]]\nname = "{row}"\ntargets = [{{ provider = "hostile", model = "{row}" }}]\n'
        models += (
            f'\n[[models]]\nname = "fallback-{row}"\ntargets = [{{ provider = "hostile",'
            f' model = "{row}" }}, {{ provider = "healthy", model = "m" }}]\n'
        )
    return f"""
[rate_limit]
enabled = false

[circuit_breaker]
failure_threshold = 100000

[retry]
max_attempts = 1

[[providers]]
name = "hostile"
type = "openai"
base_url = "{base_url}"
api_key = "sk-hostile-soak"
timeout_secs = 10.0
max_response_body_bytes = 1048576
max_stream_event_bytes = 262144
max_stream_bytes = 4194304

[[providers]]
name = "healthy"
type = "mock"
{models}"""


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def slope_mb_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MB per hour."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    return cov / var * 3600 * 1.048576


def _client_loop(url: str, stop: threading.Event, outcomes: collections.Counter[str]) -> None:
    headers = {"authorization": f"Bearer {MASTER}"}
    rng = random.Random()
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            model, stream, hang_up = rng.choice(MIX)
            body = {
                "model": model,
                "messages": [{"role": "user", "content": "hi"}],
                "stream": stream,
            }
            try:
                with client.stream(
                    "POST", url + "/v1/chat/completions", json=body, headers=headers
                ) as r:
                    if hang_up:
                        next(r.iter_raw(), None)
                        outcomes["hung up"] += 1
                        continue
                    r.read()
                    cut = r.status_code == 200 and b'"upstream_unavailable"' in r.content[-2048:]
                    kind = "hostile" if model in HOSTILE else "good"  # good: must succeed
                    outcomes[f"{kind} {r.status_code}{' cut' if cut else ''}"] += 1
            except httpx.HTTPError as exc:
                outcomes[type(exc).__name__] += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--max-slope", type=float, default=5.0, help="MB/h (default 5)")
    parser.add_argument("--port", type=int, default=18991)
    args = parser.parse_args(argv)
    with HostileUpstream(flood_bytes=64 * 1024 * 1024, bomb_bytes=256 * 1024 * 1024) as hostile:
        hostile.prepare_bomb()
        tmp = Path(tempfile.mkdtemp())
        config = tmp / "config.toml"
        config.write_text(_config(hostile.base_url))
        env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        env["APP_AUTH__MASTER_KEY"] = MASTER
        command = [sys.executable, "-m", "fkllmproxy", "serve", "--config", str(config),
                   "--port", str(args.port)]  # fmt: skip
        daemon = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, start_new_session=True
        )
        url = f"http://127.0.0.1:{args.port}"
        stop = threading.Event()
        outcomes: collections.Counter[str] = collections.Counter()
        samples: list[tuple[float, float]] = []
        health_failures = 0
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            threads = [
                threading.Thread(target=_client_loop, args=(url, stop, outcomes), daemon=True)
                for _ in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < args.duration:
                time.sleep(min(5.0, args.duration / 60))
                samples.append((elapsed, _rss_mib(daemon.pid)))
                try:
                    httpx.get(url + "/health", timeout=2).raise_for_status()
                except httpx.HTTPError:
                    health_failures += 1
            stop.set()
            for thread in threads:
                thread.join(90)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
    steady = [s for s in samples if s[0] >= args.duration / 5]
    slope = slope_mb_per_hour(steady)
    total = sum(outcomes.values())
    print(f"soak: {args.duration:.0f} s, {args.clients} clients, {total} requests"
          f" ({total / args.duration:.0f}/s): {dict(sorted(outcomes.items()))}")  # fmt: skip
    print(f"RSS: {samples[0][1]:.1f} MiB at start, {steady[0][1]:.1f} after warm-up,"
          f" {samples[-1][1]:.1f} at the end; slope {slope:+.2f} MB/h (limit {args.max_slope})")  # fmt: skip
    print(f"/health failures: {health_failures}")
    unexpected = {
        k: v
        for k, v in outcomes.items()
        if (k.startswith("good ") and k != "good 200")
        or (k.startswith("hostile ") and k not in ("hostile 200 cut", "hostile 502"))
    }
    ok = slope <= args.max_slope and health_failures == 0 and not unexpected
    if unexpected:
        print(f"unexpected answers: {unexpected}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
