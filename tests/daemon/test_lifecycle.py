"""The daemon's life: JSON logs on stdout, clean SIGTERM stop, a stream that drains."""

from __future__ import annotations

import threading

import httpx

from tests.conftest import MASTER_KEY


def test_every_stdout_line_is_json_with_contract_fields(start_daemon: object) -> None:
    daemon = start_daemon()  # type: ignore[operator]
    httpx.post(
        daemon.url + "/v1/chat/completions",
        headers=daemon.headers(),
        json={"model": "mock", "messages": [{"role": "user", "content": "secret prompt text"}]},
    )
    httpx.post(
        daemon.url + "/v1/chat/completions", headers={"authorization": "Bearer wrong"}, json={}
    )
    assert daemon.stop() == 0
    logs = daemon.logs()
    assert all({"ts", "level", "msg", "logger"} <= set(line) for line in logs)
    assert all(line["ts"].endswith("Z") for line in logs)
    request = next(line for line in logs if line["msg"] == "request" and line["status"] == 200)
    for field in (
        "request_id",
        "method",
        "path",
        "status",
        "latency_ms",
        "model",
        "provider",
        "attempts",
        "client",
    ):
        assert field in request
    assert request["client"] == "master"
    assert any("unauthorized" in line["msg"] for line in logs)
    raw = "\n".join(daemon.stdout_lines())
    assert MASTER_KEY not in raw and "secret prompt text" not in raw and "wrong" not in raw
    assert logs[-1]["msg"] == "fkllmproxy stopped"


def test_sigterm_lets_an_active_stream_finish(start_daemon: object) -> None:
    """SIGTERM mid-stream: the stream completes with [DONE] and the process exits 0."""
    config = """
[[providers]]
name = "slow"
type = "mock"
mock_latency_ms = 1500

[[models]]
name = "mock"
targets = [{ provider = "slow", model = "m" }]
"""
    daemon = start_daemon(config)  # type: ignore[operator]
    result: dict[str, bytes] = {}
    started = threading.Event()

    def consume() -> None:
        with httpx.stream(
            "POST",
            daemon.url + "/v1/chat/completions",
            headers=daemon.headers(),
            json={"model": "mock", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        ) as response:
            started.set()
            result["body"] = b"".join(response.iter_bytes())

    reader = threading.Thread(target=consume)
    reader.start()
    assert started.wait(10), "the stream did not start"
    assert daemon.stop(timeout=20) == 0
    reader.join(20)
    assert result["body"].endswith(b"data: [DONE]\n\n")
    assert any(line["msg"] == "stop requested; draining" for line in daemon.logs())


def test_standard_event_loop_on_request(start_daemon: object) -> None:
    """`event_loop = "asyncio"` runs the daemon on the standard library's loop, fully working."""
    daemon = start_daemon(env={"APP_SERVER__EVENT_LOOP": "asyncio"})  # type: ignore[operator]
    answer = httpx.post(
        daemon.url + "/v1/chat/completions",
        headers=daemon.headers(),
        json={"model": "mock", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    assert answer.status_code == 200 and answer.text.endswith("data: [DONE]\n\n")
    assert daemon.stop() == 0
    started = next(line for line in daemon.logs() if line["msg"] == "fkllmproxy started")
    assert started["event_loop"] == "asyncio"


def test_unknown_event_loop_is_a_config_error(start_daemon: object) -> None:
    daemon = start_daemon(env={"APP_SERVER__EVENT_LOOP": "trio"}, wait=False)  # type: ignore[operator]
    assert daemon.process.wait(timeout=30) == 78
    problems = daemon.stderr_path.read_text()
    assert "APP_SERVER__EVENT_LOOP" in problems and "'trio'" in problems
