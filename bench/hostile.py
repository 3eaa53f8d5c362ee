"""``python -m bench.hostile``: issue 14's table, measured at full size with the default limits.

A real ``fkllm serve`` in front of ``fkllmproxy.testing.hostile_upstream`` (an
``openai`` provider that misbehaves as the model name says), one row at a time:
what the client got and how long it took, the daemon's RSS before, at its peak while
the row ran and a second after, and the slowest ``/health`` answer meanwhile (polled
every 50 ms). The sizes are the issue's: a 1 GiB ``Content-Length``, a gzip bomb that
inflates to 2 GiB, a 16 MiB header, 200,000 headers, a 200 MiB ``data:`` line, a 1 GiB
stream. Nothing here is asserted; ``tests/providers/test_hostile_upstream.py`` is the
test, with small sizes. Prints a Markdown table (docs/reliability.md holds one).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from fkllmproxy.testing.hostile_upstream import HostileUpstream

MASTER = "sk-bench-hostile-0123456789"
ROWS = [
    ("huge-length", False, "`Content-Length: 1 GiB` of JSON"),
    ("gzip-bomb", False, "a gzip bomb (2 GiB inflated), 200 with `Content-Encoding: gzip`"),
    ("big-header", False, "one 16 MiB header"),
    ("many-headers", False, "200,000 headers"),
    ("empty-object", False, "200 `{}`"),
    ("choices-not-list", False, '200 `{"choices": "not-a-list"}`'),
    ("long-line", True, "a stream whose `data:` line is 200 MiB with no newline"),
    ("stream-flood", True, "a 1 GiB stream"),
    ("slow-head", False, "the head one byte a second (timeout_secs = 20)"),
]
FLOOD = {"long-line": 200 * 1024 * 1024, "stream-flood": 1024 * 1024 * 1024}


def _config(base_url: str) -> str:
    models = "".join(
        f'\n[[models]]\nname = "{row}"\ntargets = [{{ provider = "hostile", model = "{row}" }}]\n'
        for row, _, _ in ROWS
    )
    return f"""
[circuit_breaker]
failure_threshold = 100000

[retry]
max_attempts = 1

[[providers]]
name = "hostile"
type = "openai"
base_url = "{base_url}"
api_key = "sk-hostile-bench"
timeout_secs = 20.0
{models}"""


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _Watch:
    """Peak RSS and the slowest /health while a row runs."""

    def __init__(self, url: str, pid: int) -> None:
        self.url, self.pid = url, pid
        self.peak = 0.0
        self.slowest = 0.0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.wait(0.05):
                self.peak = max(self.peak, _rss_mib(self.pid))
                started = time.perf_counter()
                try:
                    client.get(self.url + "/health").raise_for_status()
                except httpx.HTTPError:
                    self.failed += 1
                self.slowest = max(self.slowest, time.perf_counter() - started)

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=18990)
    parser.add_argument("--transport", choices=["h1", "aiohttp", "httpx"], default="h1")
    args = parser.parse_args(argv)
    with HostileUpstream(flood_bytes=1024 * 1024 * 1024, bomb_bytes=2 * 1024**3) as hostile:
        hostile.prepare_bomb()
        tmp = Path(tempfile.mkdtemp())
        config = tmp / "config.toml"
        config.write_text(_config(hostile.base_url))
        env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        env["APP_AUTH__MASTER_KEY"] = MASTER
        env["APP_SERVER__HTTP_TRANSPORT"] = args.transport
        command = [sys.executable, "-m", "fkllmproxy", "serve", "--config", str(config),
                   "--port", str(args.port)]  # fmt: skip
        daemon = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, start_new_session=True
        )
        url = f"http://127.0.0.1:{args.port}"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            headers = {"authorization": f"Bearer {MASTER}"}
            print(
                "| upstream answers | what the client got | RSS before → peak → after (MiB) | slowest /health |"
            )
            print("|---|---|---|---|")
            for row, stream, label in ROWS:
                hostile.flood_bytes = FLOOD.get(row, 1024 * 1024 * 1024)
                before = _rss_mib(daemon.pid)
                body = {
                    "model": row,
                    "messages": [{"role": "user", "content": "hi"}],
                    "stream": stream,
                }
                with _Watch(url, daemon.pid) as watch:
                    started = time.perf_counter()
                    answer = httpx.post(
                        url + "/v1/chat/completions", json=body, headers=headers, timeout=120
                    )
                    took = time.perf_counter() - started
                time.sleep(1.0)
                after = _rss_mib(daemon.pid)
                got = f"{answer.status_code} after {took:.2f} s"
                if stream and answer.status_code == 200:
                    got += f", {len(answer.content) / 1024 / 1024:.1f} MiB relayed, then an error event"
                try:
                    message = answer.json()["error"]["message"]
                except Exception:
                    message = answer.text[-160:].strip()
                print(
                    f"| {label} | {got}: {message[:140]} | {before:.0f} → {max(watch.peak, before):.0f}"
                    f" → {after:.0f} | {watch.slowest * 1000:.0f} ms{' (' + str(watch.failed) + ' failed)' if watch.failed else ''} |"
                )
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
