"""Budgets and tokens per minute as a client sees them, on real `fkllm serve` daemons."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import RunningDaemon, prometheus_samples, sample_sum

KEY = "sk-budget-test-key-0001"
PRICE_OUT = 0.001  # USD per completion token (output_per_mtok = 1000); input is free
MAX_TOKENS = 100  # so each call reserves MAX_TOKENS * PRICE_OUT = $0.10
ESTIMATE = MAX_TOKENS * PRICE_OUT


def key_sha() -> str:
    import hashlib

    return hashlib.sha256(KEY.encode()).hexdigest()


def config(
    tmp: Path,
    *,
    budget: float | None = 0.05,
    period: str = "month",
    tpm: int | None = None,
    state: str = "",
    usage: bool = True,
    latency_ms: int = 0,
) -> str:
    limits = ""
    if budget is not None:
        limits += f'budget_usd = {budget}\nbudget_period = "{period}"\n'
    if tpm is not None:
        limits += f"tokens_per_minute = {tpm}\n"
    return f"""
[state]
directory = "{tmp}"
{state}

[usage]
enabled = {"true" if usage else "false"}

[[auth.keys]]
name = "team-a"
key_sha256 = "{key_sha()}"
{limits}

[[providers]]
name = "mock"
type = "mock"
mock_latency_ms = {latency_ms}

[[models]]
name = "mock"
targets = [{{ provider = "mock", model = "mock-1" }}]

[[pricing]]
model = "mock-1"
input_per_mtok = 0
output_per_mtok = 1000
"""


def chat(daemon: RunningDaemon, text: str = "hello there") -> httpx.Response:
    return httpx.post(
        daemon.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEY}"},
        json={
            "model": "mock",
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": text}],
        },
        timeout=10,
    )


def spent(daemon: RunningDaemon) -> float:
    text = httpx.get(daemon.url + "/metrics/prometheus", timeout=10).text
    return sample_sum(prometheus_samples(text), "fkllm_budget_spent_usd", client="team-a")


def cost(response: httpx.Response) -> float:
    return float(response.json()["usage"]["completion_tokens"]) * PRICE_OUT


def spend_until_refused(
    daemons: list[RunningDaemon],
) -> tuple[list[httpx.Response], httpx.Response]:
    """Sequential requests (round robin over ``daemons``) until one is refused."""
    allowed: list[httpx.Response] = []
    for i in range(200):
        response = chat(daemons[i % len(daemons)], f"request {i}")
        if response.status_code != 200:
            return allowed, response
        allowed.append(response)
    raise AssertionError("the budget never ran out")


def assert_stopped_at_budget(
    daemon: RunningDaemon, allowed: list[httpx.Response], refused: httpx.Response, budget: float
) -> None:
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    total = spent(daemon)
    assert abs(total - sum(cost(r) for r in allowed)) < 1e-9
    # Sequential calls stop exactly at the budget: the last one let through started below it.
    assert total >= budget
    assert total - cost(allowed[-1]) < budget


def test_sequential_requests_stop_at_the_budget(start_daemon: Any, tmp_path: Path) -> None:
    """A budgeted key is served until its spend reaches the budget, then gets 429 budget_exceeded."""
    daemon = start_daemon(config(tmp_path))
    allowed, refused = spend_until_refused([daemon])
    assert_stopped_at_budget(daemon, allowed, refused, 0.05)
    retry = int(refused.headers["retry-after"])
    assert 0 < retry <= 31 * 86400
    assert "budget exceeded" in refused.json()["error"]["message"].lower()
    limit = sample_sum(
        prometheus_samples(httpx.get(daemon.url + "/metrics/prometheus", timeout=10).text),
        "fkllm_budget_limit_usd",
        client="team-a",
    )
    assert limit == 0.05


def test_remaining_header_counts_down(start_daemon: Any, tmp_path: Path) -> None:
    """Each answer to a budgeted key says what was left when it was admitted."""
    daemon = start_daemon(config(tmp_path, budget=10.0))
    first, second = chat(daemon), chat(daemon)
    assert float(first.headers["x-fkllm-budget-remaining-usd"]) == 10.0
    left = float(second.headers["x-fkllm-budget-remaining-usd"])
    assert abs(left - (10.0 - cost(first))) < 1e-6
    models = httpx.get(
        daemon.url + "/v1/models", headers={"authorization": f"Bearer {KEY}"}, timeout=10
    )
    assert "x-fkllm-budget-remaining-usd" in models.headers
    master = httpx.get(
        daemon.url + "/v1/models", headers=daemon.headers(), timeout=10
    )  # an unbudgeted caller's answers carry no such header
    assert "x-fkllm-budget-remaining-usd" not in master.headers


def test_concurrent_requests_overshoot_by_at_most_the_in_flight(
    start_daemon: Any, tmp_path: Path
) -> None:
    """Many concurrent requests against a small budget overshoot it by at most the
    estimates of the requests in flight."""
    budget, in_flight = 0.3, 8
    daemon = start_daemon(config(tmp_path, budget=budget))
    with concurrent.futures.ThreadPoolExecutor(in_flight) as pool:
        responses = list(pool.map(lambda i: chat(daemon, f"n{i}"), range(60)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 429}
    total = spent(daemon)
    assert budget <= total <= budget + in_flight * ESTIMATE
    assert abs(total - sum(cost(r) for r in responses if r.status_code == 200)) < 1e-9


def test_two_workers_share_one_budget(start_daemon: Any, tmp_path: Path) -> None:
    """With --workers 2 on the memory backend the budget is not doubled: both workers
    draw on one spend (new connections spread over both)."""
    daemon = start_daemon(config(tmp_path, budget=0.05), args=["--workers", "2"])
    allowed, refused = spend_until_refused([daemon])
    assert_stopped_at_budget(daemon, allowed, refused, 0.05)


def concurrently(
    daemons: list[RunningDaemon], in_flight: int, count: int
) -> list[tuple[int, httpx.Response]]:
    """``count`` requests, ``in_flight`` at a time, round robin over ``daemons``:
    (which daemon, its answer) each."""

    def one(i: int) -> tuple[int, httpx.Response]:
        return i % len(daemons), chat(daemons[i % len(daemons)], f"n{i}")

    with concurrent.futures.ThreadPoolExecutor(in_flight) as pool:
        return list(pool.map(one, range(count)))


def assert_within_in_flight(responses: list[httpx.Response], budget: float, in_flight: int) -> None:
    """Refusals came, and what got through cost at least the budget and at most the
    budget plus the estimates of the requests in flight (the one-worker bound)."""
    assert {r.status_code for r in responses} == {200, 429}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 429} == {
        "budget_exceeded"
    }
    total = sum(cost(r) for r in responses if r.status_code == 200)
    assert budget <= total <= budget + in_flight * ESTIMATE


def test_two_workers_concurrent_requests_overshoot_by_at_most_the_in_flight(
    start_daemon: Any, tmp_path: Path
) -> None:
    """Concurrent requests over two workers draw on one budget: what got through stays
    within budget + in-flight estimates (a budget per worker would let twice through),
    and both workers served some of it (told apart by the pid on their log lines)."""
    budget, in_flight = 0.5, 4  # the bound, 0.9, is below two budgets' worth
    daemon = start_daemon(config(tmp_path, budget=budget, latency_ms=40), args=["--workers", "2"])
    responses = [r for _, r in concurrently([daemon], in_flight, 120)]
    assert_within_in_flight(responses, budget, in_flight)
    served = {
        line["pid"]
        for line in daemon.logs()
        if line["msg"] == "request"
        and line["path"] == "/v1/chat/completions"
        and line["status"] == 200
    }
    assert len(served) == 2, "every request that got through went to one worker"


def test_two_daemons_concurrent_requests_overshoot_by_at_most_the_in_flight(
    start_daemon: Any, tmp_path: Path, redis_server: Any
) -> None:
    """Concurrent requests to two daemons on one redis-server: one budget, overshot by
    at most the estimates in flight over both, and both daemons let requests through."""
    state = f'backend = "redis"\nurl = "{redis_server.url}"\nkey_prefix = "budget-race:"'
    budget, in_flight = 0.5, 4
    a = start_daemon(config(tmp_path / "a", budget=budget, state=state, latency_ms=40))
    b = start_daemon(config(tmp_path / "b", budget=budget, state=state, latency_ms=40))
    answers = concurrently([a, b], in_flight, 120)
    assert_within_in_flight([r for _, r in answers], budget, in_flight)
    assert {which for which, r in answers if r.status_code == 200} == {0, 1}


def test_two_daemons_on_one_redis_share_one_budget(
    start_daemon: Any, tmp_path: Path, redis_server: Any
) -> None:
    """Two daemons on one redis-server stop together at one budget, and a restart keeps it."""
    state = f'backend = "redis"\nurl = "{redis_server.url}"\nkey_prefix = "budget-test:"'
    a = start_daemon(config(tmp_path / "a", budget=0.05, state=state))
    b = start_daemon(config(tmp_path / "b", budget=0.05, state=state))
    allowed, refused = spend_until_refused([a, b])
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    total = sum(cost(r) for r in allowed)
    assert total >= 0.05
    assert total - cost(allowed[-1]) < 0.05
    assert chat(a).status_code == chat(b).status_code == 429
    a.stop()
    again = start_daemon(config(tmp_path / "a", budget=0.05, state=state))
    assert chat(again).json()["error"]["code"] == "budget_exceeded"


def test_a_restart_rebuilds_spend_from_the_ledger(start_daemon: Any, tmp_path: Path) -> None:
    """The memory backend starts from the usage ledger's spend: a restart is no way out."""
    first = start_daemon(config(tmp_path, budget=0.05))
    spend_until_refused([first])
    first.stop()
    second = start_daemon(config(tmp_path, budget=0.05))
    refused = chat(second)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    # A larger budget after the restart leaves exactly the difference.
    second.stop()
    third = start_daemon(config(tmp_path, budget=10.0))
    left = float(chat(third).headers["x-fkllm-budget-remaining-usd"])
    assert 9.9 < left < 9.96


def test_every_route_refuses_in_its_own_shape(start_daemon: Any, tmp_path: Path) -> None:
    """A spent budget is 429 with Retry-After on the OpenAI, Anthropic, Responses and
    Gemini routes, each in its API's error shape."""
    daemon = start_daemon(config(tmp_path, budget=0.05))
    spend_until_refused([daemon])
    auth = {"authorization": f"Bearer {KEY}"}
    messages = [{"role": "user", "content": "hi"}]
    calls = {
        "/v1/chat/completions": {"model": "mock", "messages": messages},
        "/v1/messages": {"model": "mock", "max_tokens": 10, "messages": messages},
        "/v1/responses": {"model": "mock", "input": "hi"},
    }
    for path, body in calls.items():
        response = httpx.post(daemon.url + path, headers=auth, json=body, timeout=10)
        assert response.status_code == 429, path
        assert int(response.headers["retry-after"]) > 0
        error = response.json()["error"]
        if path == "/v1/messages":
            assert response.json()["type"] == "error"
            assert error["type"] == "rate_limit_error"
            assert "Budget exceeded" in error["message"]
        else:
            assert error["code"] == "budget_exceeded"
    gemini = httpx.post(
        daemon.url + "/v1beta/models/mock:generateContent",
        headers={"x-goog-api-key": KEY},
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        timeout=10,
    )
    assert gemini.status_code == 429
    assert int(gemini.headers["retry-after"]) > 0
    assert gemini.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert "Budget exceeded" in gemini.json()["error"]["message"]


def test_tokens_per_minute_refuses_after_real_usage(start_daemon: Any, tmp_path: Path) -> None:
    """A key's tokens per minute are counted on the real usage of the calls it made:
    once they are used up, the next call gets 429 rate_limit_exceeded with Retry-After."""
    daemon = start_daemon(config(tmp_path, budget=None, tpm=20))
    first = chat(daemon, "a few words to use up the tokens of this minute quickly")
    assert first.status_code == 200
    used = first.json()["usage"]["total_tokens"]
    assert used >= 20
    refused = chat(daemon)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "Tokens per minute" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 1


def test_a_stream_is_settled_at_its_real_cost(start_daemon: Any, tmp_path: Path) -> None:
    """A streamed answer's usage is what the budget is charged, before its last byte."""
    daemon = start_daemon(config(tmp_path, budget=10.0, tpm=1000))
    with httpx.stream(
        "POST",
        daemon.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEY}"},
        json={
            "model": "mock",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "stream this please"}],
        },
        timeout=10,
    ) as response:
        assert response.status_code == 200
        assert response.headers["x-fkllm-budget-remaining-usd"] == "10.000000"
        text = response.read().decode()
    usage_line = next(line for line in text.splitlines() if '"usage":{' in line)
    completion = json.loads(usage_line.removeprefix("data: "))["usage"]["completion_tokens"]
    assert abs(spent(daemon) - completion * PRICE_OUT) < 1e-9
    left = float(chat(daemon).headers["x-fkllm-budget-remaining-usd"])
    assert abs(left - (10.0 - completion * PRICE_OUT)) < 1e-6


def test_tokens_per_minute_on_redis_are_shared_by_two_daemons(
    start_daemon: Any, tmp_path: Path, redis_server: Any
) -> None:
    """On Redis the tokens-per-minute bucket is one for every daemon: tokens used
    through one are refused by the other."""
    state = f'backend = "redis"\nurl = "{redis_server.url}"\nkey_prefix = "tpm-test:"'
    a = start_daemon(config(tmp_path / "a", budget=None, tpm=20, state=state))
    b = start_daemon(config(tmp_path / "b", budget=None, tpm=20, state=state))
    first = chat(a, "a few words to use up the tokens of this minute quickly")
    assert first.status_code == 200
    assert first.json()["usage"]["total_tokens"] >= 20
    refused = chat(b)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
