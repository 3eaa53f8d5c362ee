"""Chaos: the real daemon in front of a fake upstream acting out every fault.

Each fault is tried alone (a model with one target) and with a healthy fallback behind
it (and a few mixed lists), asserting what the client sees (status, error shape, the
stream's last event), what the request log line says (``provider``, ``attempts``), that
nothing outlives its time limits by more than a generous margin, and that the daemon is
healthy afterwards with no upstream connection left behind.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.conftest import RunningDaemon, wait_until

# Time limits of the provider that plays the faults; the margin absorbs a loaded machine.
TOTAL = 1.5
FIRST_BYTE = 0.75
IDLE = 0.75
DEADLINE = 2.5
MARGIN = 3.0

FAULTS = [
    "fault-500",
    "fault-429-retry-1",
    "fault-429-retry-30",
    "fault-400",
    "fault-reset",
    "fault-hang",
    "fault-nonjson",
    "slow-stream-2000",
    "cut-stream",
]


def chaos_config(url: str) -> str:
    models = []
    for fault in FAULTS:
        models.append(
            f'[[models]]\nname = "solo-{fault}"\ntargets = [{{ provider = "flaky", model = "{fault}" }}]\n'
        )
        models.append(
            f'[[models]]\nname = "fb-{fault}"\ntargets = [\n'
            f'  {{ provider = "flaky", model = "{fault}" }},\n'
            f'  {{ provider = "backup", model = "healthy" }},\n]\n'
        )
    return f"""
[retry]
max_attempts = 2
backoff_initial_ms = 20
backoff_max_ms = 100
max_retry_after_secs = 2
deadline_secs = {DEADLINE}

[circuit_breaker]
failure_threshold = 10000

[[providers]]
name = "flaky"
type = "openai"
base_url = "{url}/v1"
api_key = "k"
timeout_secs = {TOTAL}
first_byte_timeout_secs = {FIRST_BYTE}
idle_timeout_secs = {IDLE}

[[providers]]
name = "second"
type = "openai"
base_url = "{url}/v1"
api_key = "k"
timeout_secs = {TOTAL}

[[providers]]
name = "backup"
type = "openai"
base_url = "{url}/v1"
api_key = "k"

[[models]]
name = "healthy"
targets = [{{ provider = "backup", model = "healthy" }}]

[[models]]
name = "mixed-recovers"
targets = [
  {{ provider = "flaky", model = "fault-500" }},
  {{ provider = "second", model = "fault-reset" }},
  {{ provider = "backup", model = "healthy" }},
]

[[models]]
name = "mixed-all-fail"
targets = [
  {{ provider = "flaky", model = "fault-429-retry-30" }},
  {{ provider = "second", model = "fault-nonjson" }},
  {{ provider = "backup", model = "fault-500" }},
]

[[models]]
name = "mixed-hang-then-ok"
targets = [
  {{ provider = "flaky", model = "fault-hang" }},
  {{ provider = "second", model = "fault-503" }},
  {{ provider = "backup", model = "healthy" }},
]

[[models]]
name = "retry-same"
targets = [{{ provider = "flaky", model = "scripted" }}]

""" + "\n".join(models)


# No request deadline here, and the provider's own limits are a minute: only the
# client going away can end these requests early.
PATIENT_CONFIG = """
[[providers]]
name = "patient"
type = "openai"
base_url = "{url}/v1"
api_key = "k"

[[models]]
name = "long-hang"
targets = [{{ provider = "patient", model = "fault-hang" }}]

[[models]]
name = "long-stream"
targets = [{{ provider = "patient", model = "slow-stream-300" }}]
"""


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    with RunningDaemon(tmp_path_factory.mktemp("chaos"), chaos_config(upstream.url)) as running:
        yield running


@pytest.fixture(scope="module", params=["h1", "httpx"])
def patient(
    request: pytest.FixtureRequest,
    upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningDaemon]:
    """Every HTTP transport: each must close an abandoned upstream call."""
    with RunningDaemon(
        tmp_path_factory.mktemp("patient"),
        PATIENT_CONFIG.format(url=upstream.url),
        env={"APP_SERVER__HTTP_TRANSPORT": request.param},
    ) as running:
        yield running


# --- helpers -----------------------------------------------------------------------------


def body(model: str, stream: bool = False, words: int = 6) -> dict[str, Any]:
    text = " ".join(f"word{i}" for i in range(words))
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}


class Outcome:
    """What the client got, how long it took, and the request's log line."""

    def __init__(
        self, daemon: RunningDaemon, response: httpx.Response, raw: bytes, elapsed: float
    ) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self.raw = raw
        self.elapsed = elapsed
        request_id = response.headers["x-request-id"]

        def found() -> dict[str, Any] | None:
            for line in reversed(daemon.logs()):
                if line.get("msg") == "request" and line.get("request_id") == request_id:
                    return line
            return None

        assert wait_until(lambda: found() is not None, timeout=10), "no request log line"
        self.log = found() or {}

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    def events(self) -> list[str]:
        """The ``data:`` payloads of an SSE body, in order."""
        return [
            line[5:].strip() for line in self.raw.decode().splitlines() if line.startswith("data:")
        ]


def call(daemon: RunningDaemon, model: str, *, stream: bool = False, words: int = 6) -> Outcome:
    started = time.monotonic()
    with httpx.stream(
        "POST",
        daemon.url + "/v1/chat/completions",
        headers=daemon.headers(),
        json=body(model, stream, words),
        timeout=30,
    ) as response:
        raw = response.read()
    return Outcome(daemon, response, raw, time.monotonic() - started)


def assert_openai_error(outcome: Outcome, status: int, code: str) -> dict[str, Any]:
    assert outcome.status == status, outcome.raw
    error = outcome.json["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == code and error["message"]
    return error


def assert_completed_stream(outcome: Outcome) -> None:
    assert outcome.status == 200
    events = outcome.events()
    assert events[-1] == "[DONE]"
    text = "".join(
        choice["delta"].get("content") or ""
        for event in events[:-1]
        for choice in json.loads(event)["choices"]
    )
    assert text.startswith("echo: word0")


def upstream_connections(pid: int, port: int) -> int:
    """Established TCP connections process ``pid`` holds to 127.0.0.1:``port``."""
    inodes = set()
    for fd in (f"/proc/{pid}/fd/{name}" for name in _listdir(f"/proc/{pid}/fd")):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


# --- each fault alone, and with a healthy fallback ----------------------------------------


class TestNonStreaming:
    @pytest.mark.parametrize(
        ("fault", "status", "code"),
        [
            ("fault-500", 502, "upstream_unavailable"),
            ("fault-429-retry-1", 502, "upstream_unavailable"),
            ("fault-429-retry-30", 502, "upstream_unavailable"),
            ("fault-reset", 502, "upstream_unavailable"),
            ("fault-nonjson", 502, "upstream_unavailable"),
            ("cut-stream", 502, "upstream_unavailable"),
            ("fault-hang", 504, "upstream_timeout"),
        ],
    )
    def test_alone_the_client_gets_a_clear_error(
        self, daemon: RunningDaemon, fault: str, status: int, code: str
    ) -> None:
        outcome = call(daemon, f"solo-{fault}")
        error = assert_openai_error(outcome, status, code)
        assert error["type"] in {"api_error", "timeout_error"}
        assert outcome.log["status"] == status and outcome.log["provider"] == "flaky"
        assert outcome.elapsed < DEADLINE + MARGIN

    def test_short_retry_after_is_honoured_then_reported(self, daemon: RunningDaemon) -> None:
        """429 with Retry-After: 1 is retried after that second; the client learns it too."""
        outcome = call(daemon, "solo-fault-429-retry-1")
        assert outcome.log["attempts"] == 2
        assert outcome.elapsed >= 1.0
        assert outcome.headers["retry-after"] == "1"

    def test_long_retry_after_is_not_waited_for(self, daemon: RunningDaemon) -> None:
        outcome = call(daemon, "solo-fault-429-retry-30")
        assert outcome.log["attempts"] == 1
        assert outcome.headers["retry-after"] == "30"
        assert outcome.elapsed < MARGIN

    def test_request_caused_400_is_passed_back_not_retried(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        for model in ("solo-fault-400", "fb-fault-400"):
            outcome = call(daemon, model)
            error = assert_openai_error(outcome, 400, "upstream_rejected")
            assert "fault-400" in error["message"]
            assert outcome.log["attempts"] == 1 and outcome.log["provider"] == "flaky"

    @pytest.mark.parametrize(
        "fault",
        [
            "fault-500",
            "fault-429-retry-1",
            "fault-429-retry-30",
            "fault-reset",
            "fault-nonjson",
            "cut-stream",
            "fault-hang",
        ],
    )
    def test_with_a_fallback_the_client_gets_its_answer(
        self, daemon: RunningDaemon, fault: str
    ) -> None:
        outcome = call(daemon, f"fb-{fault}")
        assert outcome.status == 200, outcome.raw
        assert outcome.json["choices"][0]["message"]["content"].startswith("echo: word0")
        assert outcome.log["provider"] == "backup" and outcome.log["attempts"] == 2
        assert outcome.elapsed < TOTAL + MARGIN

    def test_retrying_the_same_target_can_succeed(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        upstream.script("scripted", ["500", "ok"])
        outcome = call(daemon, "retry-same")
        assert outcome.status == 200
        assert outcome.log["provider"] == "flaky" and outcome.log["attempts"] == 2


class TestStreaming:
    @pytest.mark.parametrize(
        ("fault", "status", "code"),
        [
            ("fault-500", 502, "upstream_unavailable"),
            ("fault-reset", 502, "upstream_unavailable"),
            ("fault-nonjson", 502, "upstream_unavailable"),
            ("fault-hang", 504, "upstream_timeout"),
        ],
    )
    def test_failure_before_the_first_byte_is_a_plain_error(
        self, daemon: RunningDaemon, fault: str, status: int, code: str
    ) -> None:
        outcome = call(daemon, f"solo-{fault}", stream=True)
        assert_openai_error(outcome, status, code)
        assert outcome.elapsed < DEADLINE + MARGIN

    @pytest.mark.parametrize(
        "fault", ["fault-500", "fault-reset", "fault-nonjson", "fault-hang", "fault-429-retry-30"]
    )
    def test_failure_before_the_first_byte_falls_back(
        self, daemon: RunningDaemon, fault: str
    ) -> None:
        outcome = call(daemon, f"fb-{fault}", stream=True)
        assert_completed_stream(outcome)
        assert outcome.log["provider"] == "backup" and outcome.log["attempts"] == 2
        assert outcome.elapsed < FIRST_BYTE + MARGIN

    @pytest.mark.parametrize("prefix", ["solo", "fb"])
    def test_stream_cut_without_terminator_ends_with_an_error_event(
        self, daemon: RunningDaemon, prefix: str
    ) -> None:
        """After the first byte there is no fallback: an error event, then the end."""
        outcome = call(daemon, f"{prefix}-cut-stream", stream=True, words=20)
        assert outcome.status == 200
        events = outcome.events()
        assert "[DONE]" not in events
        first = json.loads(events[0])
        assert first["choices"][0]["delta"]["role"] == "assistant"
        error = json.loads(events[-1])["error"]
        assert error["code"] == "upstream_unavailable" and "stream" in error["message"]
        assert outcome.log["provider"] == "flaky"
        assert outcome.log["error"] == "upstream_unavailable"

    @pytest.mark.parametrize("prefix", ["solo", "fb"])
    def test_stalled_stream_ends_with_a_timeout_event(
        self, daemon: RunningDaemon, prefix: str
    ) -> None:
        """Chunks 2 s apart against a 0.75 s idle limit: one chunk, then a timeout event."""
        outcome = call(daemon, f"{prefix}-slow-stream-2000", stream=True)
        assert outcome.status == 200
        events = outcome.events()
        assert len(events) == 2 and "[DONE]" not in events
        error = json.loads(events[-1])["error"]
        assert error["code"] == "upstream_timeout" and "idle_timeout_secs" in error["message"]
        assert outcome.elapsed < IDLE + MARGIN

    def test_slow_but_steady_stream_is_relayed_whole(self, patient: RunningDaemon) -> None:
        outcome = call(patient, "long-stream", stream=True, words=4)
        assert_completed_stream(outcome)


class TestAnthropicMessages:
    """The same faults through ``/v1/messages``: same routing, Anthropic's shapes."""

    def post(self, daemon: RunningDaemon, model: str, stream: bool) -> Outcome:
        started = time.monotonic()
        payload = {**body(model, stream), "max_tokens": 100}
        with httpx.stream(
            "POST",
            daemon.url + "/v1/messages",
            headers=daemon.headers(),
            json=payload,
            timeout=30,
        ) as response:
            raw = response.read()
        return Outcome(daemon, response, raw, time.monotonic() - started)

    def test_stream_failing_before_its_first_byte_falls_back(self, daemon: RunningDaemon) -> None:
        outcome = self.post(daemon, "fb-fault-hang", stream=True)
        assert outcome.status == 200
        assert outcome.raw.decode().rstrip().splitlines()[-2] == "event: message_stop"
        assert outcome.log["provider"] == "backup" and outcome.log["attempts"] == 2
        assert outcome.elapsed < FIRST_BYTE + MARGIN

    def test_cut_stream_ends_with_an_error_event(self, daemon: RunningDaemon) -> None:
        outcome = self.post(daemon, "solo-cut-stream", stream=True)
        assert outcome.status == 200
        lines = outcome.raw.decode().rstrip().splitlines()
        assert lines[-2] == "event: error"
        error = json.loads(lines[-1][5:])
        assert error["type"] == "error" and error["error"]["type"] == "api_error"

    def test_hang_is_a_504_in_anthropic_shape(self, daemon: RunningDaemon) -> None:
        outcome = self.post(daemon, "solo-fault-hang", stream=False)
        assert outcome.status == 504
        assert outcome.json["type"] == "error"
        assert outcome.json["error"]["type"] == "timeout_error"
        assert outcome.elapsed < DEADLINE + MARGIN


class TestMixed:
    def test_two_different_failures_then_the_third_target_answers(
        self, daemon: RunningDaemon
    ) -> None:
        for stream in (False, True):
            outcome = call(daemon, "mixed-recovers", stream=stream)
            assert outcome.status == 200
            assert outcome.log["provider"] == "backup" and outcome.log["attempts"] == 3

    def test_hang_then_503_then_answer_within_the_limits(self, daemon: RunningDaemon) -> None:
        outcome = call(daemon, "mixed-hang-then-ok")
        assert outcome.status == 200
        assert outcome.log["provider"] == "backup" and outcome.log["attempts"] == 3
        assert outcome.elapsed < TOTAL + MARGIN

    def test_every_target_failing_differently_is_one_502(self, daemon: RunningDaemon) -> None:
        outcome = call(daemon, "mixed-all-fail")
        error = assert_openai_error(outcome, 502, "upstream_unavailable")
        assert "all 3 targets of model 'mixed-all-fail' failed" in error["message"]
        assert outcome.log["provider"] == "backup" and outcome.log["attempts"] >= 3
        assert outcome.elapsed < DEADLINE + MARGIN


class TestClientGoesAway:
    def test_disconnect_while_waiting_cancels_the_upstream_call(
        self, patient: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        """The upstream hangs for good (60 s limit); the client gives up after 0.5 s."""
        port = upstream.port
        before = upstream_connections(patient.pid, port)
        logged = len(patient.logs())
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                patient.url + "/v1/chat/completions",
                headers=patient.headers(),
                json=body("long-hang"),
                timeout=httpx.Timeout(5, read=0.5),
            )
        assert wait_until(lambda: upstream_connections(patient.pid, port) <= before, timeout=MARGIN)
        line = _last_request_line(patient, "long-hang", after=logged)
        assert line["status"] == 499 and line["error"] == "client_closed_request"
        assert time.monotonic() - started < MARGIN + 5

    def test_disconnect_mid_stream_closes_the_upstream_stream(
        self, patient: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        """40 chunks 300 ms apart: the client reads two events and hangs up."""
        port = upstream.port
        before = upstream_connections(patient.pid, port)
        logged = len(patient.logs())
        started = time.monotonic()
        with httpx.stream(
            "POST",
            patient.url + "/v1/chat/completions",
            headers=patient.headers(),
            json=body("long-stream", stream=True, words=40),
            timeout=30,
        ) as response:
            lines = response.iter_lines()
            seen = 0
            for line in lines:
                if line.startswith("data:"):
                    seen += 1
                if seen == 2:
                    break
        assert wait_until(lambda: upstream_connections(patient.pid, port) <= before, timeout=MARGIN)
        line = _last_request_line(patient, "long-stream", after=logged)
        assert line["status"] == 200 and line["error"] == "client_closed_request"
        assert time.monotonic() - started < MARGIN + 5

    def test_disconnect_mid_messages_stream_closes_the_upstream_stream(
        self, patient: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        """The same through ``/v1/messages``, whose events are translated from chat chunks."""
        port = upstream.port
        before = upstream_connections(patient.pid, port)
        logged = len(patient.logs())
        with httpx.stream(
            "POST",
            patient.url + "/v1/messages",
            headers=patient.headers(),
            json={**body("long-stream", stream=True, words=40), "max_tokens": 100},
            timeout=30,
        ) as response:
            deltas = 0
            for line in response.iter_lines():
                if line == "event: content_block_delta":
                    deltas += 1
                if deltas == 2:
                    break
        assert wait_until(lambda: upstream_connections(patient.pid, port) <= before, timeout=MARGIN)
        line = _last_request_line(patient, "long-stream", path="/v1/messages", after=logged)
        assert line["status"] == 200 and line["error"] == "client_closed_request"


def _last_request_line(
    daemon: RunningDaemon, model: str, path: str = "/v1/chat/completions", *, after: int = 0
) -> dict[str, Any]:
    """The request line of ``model`` among those logged after the first ``after`` lines
    (the daemon is shared by the module: an earlier test's line must not stand in for
    one not written yet)."""

    def found() -> dict[str, Any] | None:
        for line in reversed(daemon.logs()[after:]):
            if line.get("msg") == "request" and line.get("model") == model:
                return line if line.get("path") == path else None
        return None

    assert wait_until(lambda: found() is not None, timeout=10)
    return found() or {}


def test_daemon_is_healthy_afterwards_with_no_connection_left_behind(
    daemon: RunningDaemon, upstream: FakeUpstream
) -> None:
    """Runs last in this module: every fault above has been played against this daemon."""
    for fault in ("fault-hang", "cut-stream", "slow-stream-2000"):
        call(daemon, f"solo-{fault}", stream=True)
    outcome = call(daemon, "healthy")
    assert outcome.status == 200
    health = httpx.get(daemon.url + "/health", headers=daemon.headers(), timeout=10).json()
    assert health["status"] == "healthy"
    # Only idle keep-alive connections may remain: at most one per provider, as every
    # request here ran one at a time. A leaked stream or hung call would add one each.
    assert upstream_connections(daemon.pid, upstream.port) <= 4
    assert not any(line["level"] == "ERROR" for line in daemon.logs())


# --- circuit breakers through the daemon --------------------------------------------------

CIRCUIT_CONFIG = """
[retry]
max_attempts = 1

[circuit_breaker]
failure_threshold = 2
timeout_secs = 1.0
max_timeout_secs = 10.0

[[providers]]
name = "primary"
type = "openai"
base_url = "{url}/v1"
api_key = "k"

[[providers]]
name = "backup"
type = "openai"
base_url = "{url}/v1"
api_key = "k"

[[models]]
name = "guarded"
targets = [
  {{ provider = "primary", model = "breaker-up" }},
  {{ provider = "backup", model = "healthy" }},
]
"""

SOLO_CONFIG = """
[circuit_breaker]
failure_threshold = 1
timeout_secs = 30

[[providers]]
name = "solo"
type = "openai"
base_url = "{url}/v1"
api_key = "k"

[[models]]
name = "only"
targets = [{{ provider = "solo", model = "solo-up" }}]
"""


def circuits(daemon: RunningDaemon) -> dict[str, str]:
    """Each provider's circuit as the master key's ``/health`` shows it."""
    health = httpx.get(daemon.url + "/health", headers=daemon.headers(), timeout=10).json()
    return {p["name"]: p["circuit"] for p in health["providers"]}


def circuit_lines(daemon: RunningDaemon, provider: str) -> list[dict[str, Any]]:
    return [
        line
        for line in daemon.logs()
        if "circuit" in line["msg"] and line.get("provider") == provider
    ]


def upstream_calls(upstream: FakeUpstream, model: str) -> int:
    return sum(
        1 for r in upstream.requests if isinstance(r.json, dict) and r.json.get("model") == model
    )


class TestCircuits:
    def test_opens_skips_probes_reopens_longer_and_closes(
        self, start_daemon: Any, upstream: FakeUpstream
    ) -> None:
        daemon = start_daemon(CIRCUIT_CONFIG.format(url=upstream.url))
        upstream.script("breaker-up", ["500", "500", "500"])
        for _ in range(2):
            outcome = call(daemon, "guarded")
            assert outcome.status == 200 and outcome.log["provider"] == "backup"
        opened = circuit_lines(daemon, "primary")
        assert [line["msg"] for line in opened] == ["circuit opened"]
        assert opened[0]["level"] == "WARNING" and opened[0]["cooldown_secs"] == 1.0
        assert circuits(daemon) == {"primary": "open", "backup": "closed"}
        anonymous = httpx.get(daemon.url + "/health", timeout=10).json()
        assert anonymous["status"] == "degraded" and "providers" not in anonymous
        assert httpx.get(daemon.url + "/ready", timeout=10).status_code == 200

        # Open: primary is not even asked.
        outcome = call(daemon, "guarded")
        assert outcome.log["provider"] == "backup" and outcome.log["attempts"] == 1
        assert upstream_calls(upstream, "breaker-up") == 2

        # Half-open after 1 s: the probe fails, the circuit re-opens for 2 s.
        assert wait_until(lambda: circuits(daemon)["primary"] == "half_open", timeout=10)
        outcome = call(daemon, "guarded")
        assert outcome.log["attempts"] == 2 and outcome.log["provider"] == "backup"
        reopened = circuit_lines(daemon, "primary")[-1]
        assert reopened["msg"] == "circuit opened" and reopened["cooldown_secs"] == 2.0

        # Half-open again: the probe succeeds and the circuit closes.
        assert wait_until(lambda: circuits(daemon)["primary"] == "half_open", timeout=10)
        outcome = call(daemon, "guarded")
        assert outcome.log["provider"] == "primary" and outcome.log["attempts"] == 1
        assert circuit_lines(daemon, "primary")[-1]["msg"] == "circuit closed"
        assert circuits(daemon) == {"primary": "closed", "backup": "closed"}
        states = [line["state"] for line in circuit_lines(daemon, "primary")]
        assert states == ["open", "half_open", "open", "half_open", "closed"]

    def test_all_open_fails_fast_until_an_operator_resets(
        self, start_daemon: Any, upstream: FakeUpstream
    ) -> None:
        daemon = start_daemon(SOLO_CONFIG.format(url=upstream.url))
        upstream.script("solo-up", ["500"])
        assert call(daemon, "only").status == 502
        refused = call(daemon, "only")
        error = assert_openai_error(refused, 503, "no_provider_available")
        assert "every circuit is open" in error["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 30
        assert upstream_calls(upstream, "solo-up") == 1
        assert refused.log["attempts"] == 0

        ready = httpx.get(daemon.url + "/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["reason"] == "no provider available"
        health = httpx.get(daemon.url + "/health", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "unhealthy"

        reset = httpx.post(
            daemon.url + "/admin/circuits/solo/reset", headers=daemon.headers(), timeout=10
        )
        assert reset.status_code == 200 and reset.json()["state"] == "closed"
        assert any(
            line["msg"] == "circuit reset by an operator" and line["provider"] == "solo"
            for line in daemon.logs()
        )
        assert call(daemon, "only").status == 200
        assert httpx.get(daemon.url + "/ready", timeout=10).status_code == 200
