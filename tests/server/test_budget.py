"""Budgets and tokens per minute as a client sees them, on real `fkllm serve` daemons."""

from __future__ import annotations

import concurrent.futures
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
