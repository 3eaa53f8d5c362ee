"""A broken or hostile ``openai`` upstream never takes the daemon down.

One real daemon in front of ``HostileUpstream`` (each misbehaviour is a model name)
with small limits, so floods are cut after a megabyte or two. Every row ends in a clean
error or a fallback to the healthy mock target, ``/health`` keeps answering, and the
daemon's memory stays within a generous bound of where it started.
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
]
STREAM_ROWS = ["long-line", "stream-flood", "gzip-bomb", "big-header", "many-headers"]


def _config(base_url: str) -> str:
    rows = sorted(set(WHOLE_ROWS + STREAM_ROWS + ["slow-head", "bad-utf8-stream", "ok"]))
    models = "".join(
        f"""
[[models]]
name = "{row}"
targets = [{{ provider = "hostile", model = "{row}" }}]

[[models]]
name = "fallback-{row}"
targets = [{{ provider = "hostile", model = "{row}" }}, {{ provider = "healthy", model = "m" }}]
"""
        for row in rows
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
api_key = "sk-hostile-test-0000"
timeout_secs = 4.0
max_response_head_bytes = 65536
max_response_headers = 100
max_response_body_bytes = {BODY_LIMIT}
max_stream_event_bytes = {EVENT_LIMIT}
max_stream_bytes = {STREAM_LIMIT}

[[providers]]
name = "healthy"
type = "mock"
{models}"""


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
    with RunningDaemon(tmp_path_factory.mktemp("hostile-up"), _config(hostile.base_url)) as d:
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
    config = _config(hostile.base_url).replace(
        "failure_threshold = 100000", "failure_threshold = 2\ntimeout_secs = 600"
    )
    with RunningDaemon(tmp_path_factory.mktemp("circuit"), config) as d:
        assert chat(d, "fallback-empty-object").status_code == 200
        assert chat(d, "fallback-huge-length").status_code == 200
        health = httpx.get(d.url + "/health", headers=AUTH, timeout=WAIT).json()
        circuits = {p["name"]: p["circuit"] for p in health["providers"]}
        assert circuits == {"hostile": "open", "healthy": "closed"}
        assert chat(d, "fallback-ok").status_code == 200  # straight to the healthy target
