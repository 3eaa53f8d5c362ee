"""A broken or hostile upstream never takes the daemon down.

One real daemon in front of ``HostileUpstream`` (each misbehaviour is a model name)
with small limits, so floods are cut after a megabyte or two. Every row ends in a clean
error or a fallback to the healthy mock target, ``/health`` keeps answering, and the
daemon's memory stays within a generous bound of where it started. Most rows go
through ``/v1/chat/completions`` to an ``openai`` provider; the wrong-answer rows also
through ``/v1/responses`` (passed through), ``/v1/messages`` (translated, and passed
through to an ``anthropic`` provider) and the Gemini API (passed through to a
``gemini`` provider), each answered in its own API's error shape.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from fkllmproxy.testing.hostile_upstream import HostileUpstream
from tests.conftest import MASTER_KEY, RunningDaemon

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
KIB = 1024
MIB = 1024 * KIB
BODY_LIMIT = 1 * MIB
EVENT_LIMIT = 256 * KIB
STREAM_LIMIT = 2 * MIB
WAIT = 30.0  # a bound on every client wait, far above what any row needs
RSS_BOUND_MIB = 96  # generous: the unbounded daemon grew by gigabytes on these rows

# Transfer-Encoding tricks around a valid answer: only the framing is wrong.
FRAMING_ROWS = [
    "length-and-chunked",
    "bad-chunk-size",
    "conflicting-lengths",
    "negative-length",
    "gzip-chunked",
]
WHOLE_ROWS = [
    "huge-length",
    "chunked-flood",
    "gzip-bomb",
    "big-header",
    "many-headers",
    "empty-object",
    "choices-not-list",
    "not-json",
    "reset-after-head",
    *FRAMING_ROWS,
]
STREAM_ROWS = [
    "long-line",
    "stream-flood",
    "gzip-bomb",
    "big-header",
    "many-headers",
    *FRAMING_ROWS,
]
# 200s that are not an answer in any format: for the routes other than chat completions.
NOT_ANSWER_ROWS = ["empty-object", "choices-not-list", "not-json"]


LIMITS = f"""
timeout_secs = 4.0
max_response_head_bytes = 65536
max_response_headers = 100
max_response_body_bytes = {BODY_LIMIT}
max_stream_event_bytes = {EVENT_LIMIT}
max_stream_bytes = {STREAM_LIMIT}
"""


def _models(prefix: str, provider: str, rows: list[str]) -> str:
    """``{prefix}{row}`` on ``provider`` alone, ``fallback-{prefix}{row}`` then the mock."""
    return "".join(
        f"""
[[models]]
name = "{prefix}{row}"
targets = [{{ provider = "{provider}", model = "{row}" }}]

[[models]]
name = "fallback-{prefix}{row}"
targets = [{{ provider = "{provider}", model = "{row}" }}, {{ provider = "healthy", model = "m" }}]
"""
        for row in rows
    )


def _config(hostile: HostileUpstream) -> str:
    rows = sorted(set(WHOLE_ROWS + STREAM_ROWS + ["slow-head", "bad-utf8-stream", "ok"]))
    return f"""
[circuit_breaker]
failure_threshold = 100000

[retry]
max_attempts = 1

[[providers]]
name = "hostile"
type = "openai"
base_url = "{hostile.base_url}"
api_key = "sk-hostile-test-0000"
responses_api = true
{LIMITS}
[[providers]]
name = "hostile-anthropic"
type = "anthropic"
base_url = "{hostile.root_url}"
api_key = "sk-hostile-test-0000"
{LIMITS}
[[providers]]
name = "hostile-gemini"
type = "gemini"
base_url = "{hostile.root_url}"
api_key = "hostile-test-0000"
{LIMITS}
[[providers]]
name = "healthy"
type = "mock"
{_models("", "hostile", rows)}
{_models("anthropic-", "hostile-anthropic", NOT_ANSWER_ROWS)}
{_models("gemini-", "hostile-gemini", NOT_ANSWER_ROWS)}"""


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileUpstream]:
    with HostileUpstream(flood_bytes=64 * MIB, bomb_bytes=256 * MIB) as server:
        yield server


@pytest.fixture(scope="module")
def daemon(
    tmp_path_factory: pytest.TempPathFactory, hostile: HostileUpstream
) -> Iterator[RunningDaemon]:
    with RunningDaemon(tmp_path_factory.mktemp("hostile-up"), _config(hostile)) as d:
        # Warm the paths once (imports, pools) so the memory baseline is the steady state.
        for stream in (False, True):
            body = {"model": "fallback-ok", "messages": [{"role": "user", "content": "hi"}]}
            httpx.post(d.url + "/v1/chat/completions", json={**body, "stream": stream},
                       headers=AUTH, timeout=WAIT)  # fmt: skip
        yield d


@pytest.fixture(scope="module")
def baseline(daemon: RunningDaemon) -> float:
    return rss_mib(daemon.pid)


def chat(daemon: RunningDaemon, model: str, *, stream: bool = False) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return httpx.post(daemon.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=WAIT)


def respond(daemon: RunningDaemon, model: str, *, stream: bool = False) -> httpx.Response:
    body = {"model": model, "input": "hi", "stream": stream}
    return httpx.post(daemon.url + "/v1/responses", json=body, headers=AUTH, timeout=WAIT)


def message(daemon: RunningDaemon, model: str, *, stream: bool = False) -> httpx.Response:
    body = {
        "model": model,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }
    return httpx.post(daemon.url + "/v1/messages", json=body, headers=AUTH, timeout=WAIT)


def generate(daemon: RunningDaemon, model: str, *, stream: bool = False) -> httpx.Response:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    url = f"{daemon.url}/v1beta/models/{model}:{method}"
    return httpx.post(url, json=body, headers={"x-goog-api-key": MASTER_KEY}, timeout=WAIT)


def assert_healthy(daemon: RunningDaemon) -> None:
    """The daemon still answers after the row."""
    assert httpx.get(daemon.url + "/health", timeout=WAIT).status_code == 200


class _HealthWatch:
    """Polls ``/health`` on a thread while a row runs; every probe must answer 200."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.failures: list[str] = []
        self.probes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.wait(0.05):
                try:
                    status = client.get(self.url + "/health").status_code
                    if status != 200:
                        self.failures.append(str(status))
                except httpx.HTTPError as exc:
                    self.failures.append(type(exc).__name__)
                self.probes += 1

    def __enter__(self) -> _HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.parametrize("row", WHOLE_ROWS)
def test_a_bad_whole_answer_is_a_502_naming_it(
    daemon: RunningDaemon, baseline: float, row: str
) -> None:
    """Each hostile non-streamed answer ends in 502 with a message, /health answering."""
    with _HealthWatch(daemon.url) as watch:
        response = chat(daemon, row)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_unavailable"
    assert "hostile" in error["message"]
    assert watch.failures == []
    assert rss_mib(daemon.pid) - baseline < RSS_BOUND_MIB


@pytest.mark.parametrize("row", WHOLE_ROWS)
def test_a_bad_whole_answer_falls_back_to_the_next_target(daemon: RunningDaemon, row: str) -> None:
    """After a hostile answer the healthy second target answers the client."""
    response = chat(daemon, "fallback-" + row)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("row", STREAM_ROWS)
def test_a_bad_stream_ends_cleanly(daemon: RunningDaemon, baseline: float, row: str) -> None:
    """A hostile stream is cut at its limit: 502 before the first chunk, else an error event."""
    with _HealthWatch(daemon.url) as watch:
        response = chat(daemon, row, stream=True)
    if response.status_code == 200:
        assert b'"upstream_unavailable"' in response.content[-2048:]
        assert len(response.content) < STREAM_LIMIT + 512 * KIB
    else:
        assert response.status_code == 502, response.text
        assert "hostile" in response.json()["error"]["message"]
    assert watch.failures == []
    assert rss_mib(daemon.pid) - baseline < RSS_BOUND_MIB


def test_the_limit_is_named_in_the_message(daemon: RunningDaemon) -> None:
    """The client's message says which bound the provider passed."""
    assert "max_response_body_bytes" in chat(daemon, "huge-length").json()["error"]["message"]
    assert "max_response_headers" in chat(daemon, "many-headers").json()["error"]["message"]
    assert "max_response_head_bytes" in chat(daemon, "big-header").json()["error"]["message"]
    assert "Content-Encoding" in chat(daemon, "gzip-bomb").json()["error"]["message"]


def test_a_head_sent_one_byte_a_second_times_out(daemon: RunningDaemon) -> None:
    """An upstream that trickles its head gets the attempt's timeout: 504."""
    with _HealthWatch(daemon.url) as watch:
        response = chat(daemon, "slow-head")
    assert response.status_code == 504, response.text
    assert watch.failures == []


def test_invalid_utf8_in_a_stream_is_relayed_as_it_came(daemon: RunningDaemon) -> None:
    """Passthrough stays byte for byte: the daemon neither crashes nor rewrites it."""
    response = chat(daemon, "bad-utf8-stream", stream=True)
    assert response.status_code == 200
    assert b"\xff\xfe" in response.content
    assert response.content.rstrip().endswith(b"data: [DONE]")


def test_memory_is_back_near_where_it_started(daemon: RunningDaemon, baseline: float) -> None:
    """After every whole-answer row once more, RSS is within the bound and /health answers."""
    for row in WHOLE_ROWS:
        chat(daemon, row)
    assert rss_mib(daemon.pid) - baseline < RSS_BOUND_MIB
    assert httpx.get(daemon.url + "/health", timeout=5).status_code == 200


def test_bad_answers_count_against_the_circuit(
    tmp_path_factory: pytest.TempPathFactory, hostile: HostileUpstream
) -> None:
    """Limit breaches and non-answers are provider failures: the circuit opens on them."""
    config = _config(hostile).replace(
        "failure_threshold = 100000", "failure_threshold = 2\ntimeout_secs = 600"
    )
    with RunningDaemon(tmp_path_factory.mktemp("circuit"), config) as d:
        assert chat(d, "fallback-empty-object").status_code == 200
        assert chat(d, "fallback-huge-length").status_code == 200
        health = httpx.get(d.url + "/health", headers=AUTH, timeout=WAIT).json()
        circuits = {p["name"]: p["circuit"] for p in health["providers"]}
        assert {name: circuits[name] for name in ("hostile", "healthy")} == {
            "hostile": "open",
            "healthy": "closed",
        }
        assert chat(d, "fallback-ok").status_code == 200  # straight to the healthy target


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("row", NOT_ANSWER_ROWS)
def test_responses_passthrough_refuses_a_200_that_is_not_a_response(
    daemon: RunningDaemon, row: str, stream: bool
) -> None:
    """/v1/responses passed through: 502 in OpenAI's error shape, the next target's answer
    when there is one."""
    response = respond(daemon, row, stream=stream)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_unavailable" and "'hostile'" in error["message"]
    fallback = respond(daemon, "fallback-" + row, stream=stream)
    assert fallback.status_code == 200, fallback.text
    if stream:
        assert b"event: response.completed" in fallback.content
    else:
        assert fallback.json()["output"][0]["content"][0]["text"]
    assert_healthy(daemon)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("row", NOT_ANSWER_ROWS)
def test_gemini_passthrough_refuses_a_200_that_is_not_an_answer(
    daemon: RunningDaemon, row: str, stream: bool
) -> None:
    """The Gemini API passed through to a gemini provider: 502 in Google's error shape,
    the next target's answer when there is one."""
    response = generate(daemon, "gemini-" + row, stream=stream)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == 502 and "'hostile-gemini'" in error["message"]
    fallback = generate(daemon, "fallback-gemini-" + row, stream=stream)
    assert fallback.status_code == 200, fallback.text
    if stream:
        assert b'"finishReason"' in fallback.content
    else:
        assert fallback.json()["candidates"][0]["content"]["parts"][0]["text"]
    assert_healthy(daemon)


@pytest.mark.parametrize(
    "model",
    ["empty-object", "choices-not-list", "anthropic-empty-object", "anthropic-choices-not-list"],
)
def test_messages_refuse_a_200_that_is_not_an_answer(daemon: RunningDaemon, model: str) -> None:
    """/v1/messages, translated to an openai provider or passed through to an anthropic
    one: 502 in Anthropic's error shape, the next target's answer when there is one."""
    response = message(daemon, model)
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "hostile" in body["error"]["message"]
    fallback = message(daemon, "fallback-" + model)
    assert fallback.status_code == 200, fallback.text
    assert fallback.json()["content"][0]["text"]
    assert_healthy(daemon)


def test_invalid_utf8_in_a_translated_stream_ends_it_with_an_error_event(
    daemon: RunningDaemon,
) -> None:
    """/v1/messages streamed from an openai provider whose chunk holds invalid UTF-8:
    the chunk cannot be translated, so the stream ends with Anthropic's error event."""
    response = message(daemon, "bad-utf8-stream", stream=True)
    if response.status_code == 200:
        assert b"event: error" in response.content
        assert b"message_stop" not in response.content
    else:
        assert response.status_code == 502, response.text
        assert response.json()["type"] == "error"
    assert_healthy(daemon)
