"""``python -m bench.hostile``: issue 14's table, measured at full size with the default limits.

A real ``fkllm serve`` in front of ``fkllmproxy.testing.hostile_upstream`` (an
``openai`` provider that misbehaves as the model name says), one row at a time:
what the client got and how long it took, the daemon's RSS before, at its peak while
the row ran and a second after, and the slowest ``/health`` answer meanwhile (polled
every 50 ms). The sizes are the issue's: a 1 GiB ``Content-Length``, a gzip bomb that
inflates to 2 GiB, a 16 MiB header, 200,000 headers, a 200 MiB ``data:`` line, a 1 GiB
stream; then the rows added since (Transfer-Encoding tricks, a reset after the head,
invalid UTF-8, wrong answers on the other routes). Nothing here is asserted;
``tests/providers/test_hostile_upstream.py`` is the test, with small sizes. Prints a
Markdown table (docs/reliability.md holds one); ``--rows`` picks rows by behaviour name.
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
# (behaviour, streamed, what the table calls it, route): the route is the API the client
# speaks and the provider type behind it (see _send).
ROWS = [
    ("huge-length", False, "`Content-Length: 1 GiB` of JSON", "chat"),
    ("gzip-bomb", False, "a gzip bomb (2 GiB inflated), 200 with `Content-Encoding: gzip`", "chat"),
    ("big-header", False, "one 16 MiB header", "chat"),
    ("many-headers", False, "200,000 headers", "chat"),
    ("empty-object", False, "200 `{}`", "chat"),
    ("choices-not-list", False, '200 `{"choices": "not-a-list"}`', "chat"),
    ("long-line", True, "a stream whose `data:` line is 200 MiB with no newline", "chat"),
    ("stream-flood", True, "a 1 GiB stream", "chat"),
    ("slow-head", False, "the head one byte a second (timeout_secs = 20)", "chat"),
    ("length-and-chunked", False, "`Content-Length` and `Transfer-Encoding: chunked`", "chat"),
    ("bad-chunk-size", False, "a chunk size that is not hex", "chat"),
    ("conflicting-lengths", False, "two different `Content-Length` headers", "chat"),
    ("negative-length", False, "`Content-Length: -1`", "chat"),
    ("gzip-chunked", False, "`Transfer-Encoding: gzip, chunked`", "chat"),
    ("gzip-chunked", True, "`Transfer-Encoding: gzip, chunked`, streamed", "chat"),
    ("reset-after-head", False, "a reset after the head", "chat"),
    ("not-json", False, "200 HTML", "chat"),
    ("bad-utf8-stream", True, "invalid UTF-8 in a `data:` line, passed through", "chat"),
    (
        "bad-utf8-stream",
        True,
        "invalid UTF-8 in a `data:` line, `/v1/messages` translated",
        "messages",
    ),
    ("empty-object", False, "200 `{}` to `/v1/messages` (translated)", "messages"),
    ("empty-object", False, "200 `{}` from an `anthropic` provider to `/v1/messages`", "anthropic"),
    ("empty-object", False, "200 `{}` to `/v1/responses` (passed through)", "responses"),
    ("not-json", True, "200 HTML to a streamed `/v1/responses`", "responses"),
    ("empty-object", False, "200 `{}` to the Gemini API (passed through)", "gemini"),
    ("not-json", True, "200 HTML to `streamGenerateContent`", "gemini"),
]
FLOOD = {"long-line": 200 * 1024 * 1024, "stream-flood": 1024 * 1024 * 1024}
_PROVIDERS = {"chat": "hostile", "messages": "hostile", "responses": "hostile",
              "anthropic": "hostile-anthropic", "gemini": "hostile-gemini"}  # fmt: skip


def _model(row: str, route: str) -> str:
    return row if _PROVIDERS[route] == "hostile" else f"{route}-{row}"


def _config(hostile: HostileUpstream) -> str:
    names = {(_model(row, route), _PROVIDERS[route], row) for row, _, _, route in ROWS}
    models = "".join(
        f'\n[[models]]\nname = "{name}"\ntargets = [{{ provider = "{provider}", model = "{row}" }}]\n'
        for name, provider, row in sorted(names)
    )
    return f"""
[circuit_breaker]
failure_threshold = 100000

[retry]
max_attempts = 1

[[providers]]
name = "hostile"
type = "openai"
base_url = "{hostile.base_url}"
api_key = "sk-hostile-bench"
timeout_secs = 20.0
responses_api = true

[[providers]]
name = "hostile-anthropic"
type = "anthropic"
base_url = "{hostile.root_url}"
api_key = "sk-hostile-bench"
timeout_secs = 20.0

[[providers]]
name = "hostile-gemini"
type = "gemini"
base_url = "{hostile.root_url}"
api_key = "hostile-bench"
timeout_secs = 20.0
{models}"""


def _send(url: str, row: str, stream: bool, route: str) -> httpx.Response:
    """One request of ``route``'s API for the model that answers as ``row``."""
    model = _model(row, route)
    headers = {"authorization": f"Bearer {MASTER}"}
    hi = [{"role": "user", "content": "hi"}]
    if route == "chat":
        path, body = "/v1/chat/completions", {"model": model, "messages": hi, "stream": stream}
    elif route in ("messages", "anthropic"):
        path = "/v1/messages"
        body = {"model": model, "max_tokens": 16, "messages": hi, "stream": stream}
    elif route == "responses":
        path, body = "/v1/responses", {"model": model, "input": "hi", "stream": stream}
    else:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        path = f"/v1beta/models/{model}:{method}"
        body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        headers = {"x-goog-api-key": MASTER}
    return httpx.post(url + path, json=body, headers=headers, timeout=120)


def _message(answer: httpx.Response) -> str:
    """The error message of any API's error body, else the end of what came."""
    try:
        error = answer.json()["error"]
        return str(error["message"])
    except Exception:
        text = answer.content[-400:].decode("utf-8", "backslashreplace")
        found = text.rfind('"message":"')
        if found >= 0:
            return text[found + 11 :].split('"', 1)[0]
        return "ends `" + " ".join(text.split())[-100:] + "`"


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
    parser.add_argument("--transport", choices=["h1", "httpx"], default="h1")
    parser.add_argument(
        "--rows", nargs="+", metavar="BEHAVIOUR", help="only these behaviours (default: all)"
    )
    args = parser.parse_args(argv)
    rows = [r for r in ROWS if args.rows is None or r[0] in args.rows]
    with HostileUpstream(flood_bytes=1024 * 1024 * 1024, bomb_bytes=2 * 1024**3) as hostile:
        if any(row == "gzip-bomb" for row, *_ in rows):
            hostile.prepare_bomb()
        tmp = Path(tempfile.mkdtemp())
        config = tmp / "config.toml"
        config.write_text(_config(hostile))
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
            print(
                "| upstream answers | what the client got | RSS before → peak → after (MiB) | slowest /health |"
            )
            print("|---|---|---|---|")
            for row, stream, label, route in rows:
                hostile.flood_bytes = FLOOD.get(row, 1024 * 1024 * 1024)
                before = _rss_mib(daemon.pid)
                with _Watch(url, daemon.pid) as watch:
                    started = time.perf_counter()
                    answer = _send(url, row, stream, route)
                    took = time.perf_counter() - started
                time.sleep(1.0)
                after = _rss_mib(daemon.pid)
                got = f"{answer.status_code} after {took:.2f} s"
                if stream and answer.status_code == 200:
                    relayed = f", {len(answer.content) / 1024 / 1024:.1f} MiB relayed"
                    ended = b'"error"' in answer.content[-2048:]
                    got += relayed + (", then an error event" if ended else ", as it came")
                message = _message(answer)
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
