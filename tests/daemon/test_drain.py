"""SIGTERM with upstream streams in flight: they finish within the grace period, or are
closed when it runs out; either way the process exits 0."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import httpx

from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.conftest import wait_until

CONFIG = """
[server]
drain_timeout_secs = {grace}

[[providers]]
name = "up"
type = "openai"
base_url = "{url}/v1"
api_key = "k"

[[models]]
name = "slow"
targets = [{{ provider = "up", model = "slow-stream-{gap}" }}]

[[models]]
name = "hang"
targets = [{{ provider = "up", model = "fault-hang" }}]
"""


class Reader(threading.Thread):
    """Reads one streamed completion in the background, recording how it ended."""

    def __init__(self, url: str, headers: dict[str, str], words: int) -> None:
        super().__init__(daemon=True)
        self.url, self.headers, self.words = url, headers, words
        self.first_event = threading.Event()
        self.body = b""
        self.error: Exception | None = None
        self.ended_at = 0.0

    def run(self) -> None:
        text = " ".join(f"w{i}" for i in range(self.words))
        try:
            with httpx.stream(
                "POST",
                self.url + "/v1/chat/completions",
                headers=self.headers,
                json={
                    "model": "slow",
                    "stream": True,
                    "messages": [{"role": "user", "content": text}],
                },
                timeout=60,
            ) as response:
                for chunk in response.iter_raw():
                    self.body += chunk
                    self.first_event.set()
        except httpx.HTTPError as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self.first_event.set()


def test_streams_in_flight_finish_within_the_grace_period(start_daemon: Any) -> None:
    """A 2 s stream, a 20 s grace: SIGTERM lets it end with [DONE], then exit 0."""
    with FakeUpstream() as upstream:
        daemon = start_daemon(CONFIG.format(grace=20, url=upstream.url, gap=200))
        readers = [Reader(daemon.url, daemon.headers(), words=8) for _ in range(3)]
        for reader in readers:
            reader.start()
        assert all(reader.first_event.wait(20) for reader in readers)
        daemon.signal(signal.SIGTERM)
        assert daemon.process.wait(30) == 0
        for reader in readers:
            reader.join(10)
            assert reader.error is None
            assert reader.body.endswith(b"data: [DONE]\n\n")
        messages = [line["msg"] for line in daemon.logs()]
        assert "stop requested; draining" in messages and messages[-1] == "fkllmproxy stopped"


def refused(url: str) -> bool:
    try:
        httpx.get(url + "/ready", timeout=2)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        return False
    return False


def test_past_the_grace_period_requests_end_with_a_readable_503_and_exit_is_0(
    start_daemon: Any,
) -> None:
    """A 30 s stream and a hung call, a 1 s grace: both end with ``shutting_down``."""
    with FakeUpstream() as upstream:
        daemon = start_daemon(CONFIG.format(grace=1, url=upstream.url, gap=1000))
        reader = Reader(daemon.url, daemon.headers(), words=30)
        reader.start()
        hung: dict[str, httpx.Response] = {}

        def call_hang() -> None:
            hung["response"] = httpx.post(
                daemon.url + "/v1/chat/completions",
                headers=daemon.headers(),
                json={"model": "hang", "messages": [{"role": "user", "content": "x"}]},
                timeout=60,
            )

        waiter = threading.Thread(target=call_hang, daemon=True)
        waiter.start()
        assert reader.first_event.wait(20)
        assert wait_until(lambda: len(upstream.requests) == 2, timeout=20)
        stopped_at = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert wait_until(lambda: refused(daemon.url), timeout=10), "still accepting"
        assert daemon.process.wait(30) == 0
        exited = time.monotonic() - stopped_at
        reader.join(10)
        waiter.join(10)
        assert exited < 1 + 10, f"exit took {exited:.1f}s for a 1 s grace"

        # The stream: what had arrived, then an error event, then a clean end.
        assert reader.error is None
        events = [
            line[5:].strip()
            for line in reader.body.decode().splitlines()
            if line.startswith("data:")
        ]
        assert "[DONE]" not in events and len(events) >= 2
        assert json.loads(events[-1])["error"]["code"] == "shutting_down"
        # The waiting call: a 503 in OpenAI's shape.
        response = hung["response"]
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "shutting_down"

        logs = daemon.logs()
        assert any(line["msg"].startswith("drain deadline passed") for line in logs)
        assert not any(line["level"] == "ERROR" for line in logs)
        # Nothing was left open towards the upstream either.
        assert wait_until(lambda: not upstream._connections, timeout=10)
