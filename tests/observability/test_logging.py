"""Log lines of a whole daemon run: every stdout line JSON with the contract's fields."""

from __future__ import annotations

import signal
from typing import Any

import httpx

from tests.conftest import MASTER_KEY, MOCK_CONFIG, wait_until


def test_a_daemon_run_logs_only_json_with_the_contract_fields(start_daemon: Any) -> None:
    daemon = start_daemon(MOCK_CONFIG + '\n[logging]\nlevel = "DEBUG"\n')
    reply = httpx.post(
        daemon.url + "/v1/chat/completions",
        headers={**daemon.headers(), "X-Request-ID": "trace-me-1"},
        json={"model": "mock", "messages": [{"role": "user", "content": "very private words"}]},
    )
    assert reply.status_code == 200
    httpx.get(daemon.url + "/v1/models", headers=daemon.headers("sk-wrong-key"))
    daemon.signal(signal.SIGHUP)
    assert wait_until(lambda: any(x["msg"] == "configuration reloaded" for x in daemon.logs()))
    assert daemon.stop() == 0

    logs = daemon.logs()  # json.loads of every line: one non-JSON line fails here
    assert logs, "the daemon logged nothing"
    for line in logs:
        assert {"ts", "level", "msg", "logger"} <= set(line), line
        assert line["level"] in {"DEBUG", "INFO", "WARNING", "ERROR"}
        assert line["ts"].endswith("Z") and "T" in line["ts"]

    started = next(x for x in logs if x["msg"] == "fkllmproxy started")
    assert started["version"] and started["listen"] == f"127.0.0.1:{daemon.port}"
    assert started["providers"] == ["mock:mock"] and started["models"] == ["mock"]
    assert started["event_loop"] == "uvloop"  # the default

    request = next(x for x in logs if x["msg"] == "request" and x["request_id"] == "trace-me-1")
    assert request["status"] == 200 and request["method"] == "POST"
    assert request["path"] == "/v1/chat/completions" and request["latency_ms"] > 0
    assert (request["model"], request["provider"], request["attempts"]) == ("mock", "mock", 1)
    assert request["client"] == "master"
    assert request["prompt_tokens"] == 3 and request["completion_tokens"] > 0

    attempt = next(x for x in logs if x["msg"] == "upstream attempt")
    assert attempt["level"] == "DEBUG" and attempt["request_id"] == "trace-me-1"
    assert attempt["provider"] == "mock" and attempt["attempt"] == 1
    assert attempt["status"] == 200 and attempt["outcome"] == "success"
    assert attempt["latency_ms"] >= 0

    refused = next(x for x in logs if "unauthorized" in x["msg"])
    assert refused["level"] == "WARNING" and refused["path"] == "/v1/models"

    reloaded = next(x for x in logs if x["msg"] == "configuration reloaded")
    assert reloaded["models"] == ["mock"]
    assert logs[-1]["msg"] == "fkllmproxy stopped"

    raw = "\n".join(daemon.stdout_lines())
    for secret in (MASTER_KEY, "sk-wrong-key", "very private words", "Bearer"):
        assert secret not in raw


def test_text_format_is_for_people(start_daemon: Any) -> None:
    daemon = start_daemon(MOCK_CONFIG + '\n[logging]\nformat = "text"\n')
    httpx.get(daemon.url + "/v1/models", headers=daemon.headers())
    daemon.stop()
    lines = daemon.stdout_lines()
    assert any("fkllmproxy started" in line and "listen=" in line for line in lines)
    assert any(" request " in line and "status=200" in line for line in lines)
    assert not any(line.startswith("{") for line in lines)
