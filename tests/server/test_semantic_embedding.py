"""The semantic cache's embedding call is the caller's: a ledger row, spend and tokens.

On a real daemon with the fake upstream, whose embeddings count one token per word of
the input (``testing.behaviour.count_tokens``): the embedding model is priced at one
dollar a token and the chat model at nothing, so a key's spend is exactly the words
its questions were embedded with.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.conftest import MASTER_KEY, RunningDaemon, prometheus_samples, sample_sum, wait_until

BUDGET_KEY = "sk-semantic-budgeted-0001"
TPM_KEY = "sk-semantic-per-minute-0001"
QUESTION = "Where do penguins live mostly?"  # 5 words: 5 embedding tokens, $5
PARAPHRASE = "Mostly, where do penguins live"
WORDS = 5


def config(url: str, tmp: Path) -> str:
    def sha(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    return f"""
[state]
directory = "{tmp}"

[usage]
enabled = true
path = "{tmp / "usage.db"}"

[[auth.keys]]
name = "team-budget"
key_sha256 = "{sha(BUDGET_KEY)}"
budget_usd = 1000
budget_period = "month"

[[auth.keys]]
name = "team-tpm"
key_sha256 = "{sha(TPM_KEY)}"
tokens_per_minute = 6

[[providers]]
name = "up"
type = "openai"
base_url = "{url}/v1"
api_key = "sk-upstream"

[[models]]
name = "embed"
targets = [{{ provider = "up", model = "text-embedding-3-small" }}]

[[models]]
name = "chat"
targets = [{{ provider = "up", model = "gpt-4o-mini" }}]
cache = "semantic"
semantic = {{ embedding_model = "embed", shared_across_keys = true }}

[[pricing]]
model = "gpt-4o-mini"
input_per_mtok = 0
output_per_mtok = 0

[[pricing]]
model = "text-embedding-3-small"
input_per_mtok = 1_000_000
output_per_mtok = 0
"""


def ask(daemon: RunningDaemon, text: str, key: str, request_id: str) -> httpx.Response:
    return httpx.post(
        daemon.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", "x-request-id": request_id},
        json={"model": "chat", "messages": [{"role": "user", "content": text}]},
        timeout=10,
    )


def ledger_rows(daemon: RunningDaemon, request_id: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(daemon.config_path.parent / "usage.db", timeout=10) as db:
        return db.execute(
            "SELECT model, key_name, provider, upstream_model, prompt_tokens,"
            " completion_tokens, status, cost_usd, budget_name FROM usage"
            " WHERE request_id = ? ORDER BY model",
            (request_id,),
        ).fetchall()


def spent(daemon: RunningDaemon, client: str) -> float:
    text = httpx.get(daemon.url + "/metrics/prometheus", timeout=10).text
    return sample_sum(prometheus_samples(text), "fkllm_budget_spent_usd", client=client)


def test_the_embedding_call_has_its_ledger_row_and_is_charged_to_the_budget(
    start_daemon: Any, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """A miss and a hit each write an ``embed`` row for the caller and spend its cost."""
    daemon = start_daemon(config(fake_upstream.url, tmp_path))
    miss = ask(daemon, QUESTION, BUDGET_KEY, "semantic-charge-miss")
    assert miss.headers["x-fkllm-cache"] == "miss"
    assert wait_until(lambda: len(ledger_rows(daemon, "semantic-charge-miss")) == 2)
    chat_row, embed_row = ledger_rows(daemon, "semantic-charge-miss")
    assert chat_row[:2] == ("chat", "team-budget") and chat_row[7] == 0
    assert embed_row == (
        "embed",
        "team-budget",
        "up",
        "text-embedding-3-small",
        WORDS,
        0,
        200,
        float(WORDS),
        "team-budget",
    )
    assert spent(daemon, "team-budget") == WORDS

    hit = ask(daemon, PARAPHRASE, BUDGET_KEY, "semantic-charge-hit")
    assert hit.headers["x-fkllm-cache"] == "semantic-hit"
    assert wait_until(lambda: len(ledger_rows(daemon, "semantic-charge-hit")) == 2)
    models = [
        (row[0], row[2], row[4], row[7]) for row in ledger_rows(daemon, "semantic-charge-hit")
    ]
    # The hit's own row has no tokens and no cost; its embedding call has both.
    assert models == [("chat", "cache", 0, None), ("embed", "up", WORDS, float(WORDS))]
    assert spent(daemon, "team-budget") == 2 * WORDS
    tokens = prometheus_samples(httpx.get(daemon.url + "/metrics/prometheus").text)
    assert sample_sum(tokens, "fkllm_tokens_total", model="embed", kind="prompt") == 2 * WORDS


def test_the_embedding_tokens_count_against_tokens_per_minute(
    start_daemon: Any, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Hits cost no chat tokens but their embeddings' do: 6 a minute allow two 5-token
    questions (the second admitted with 1 left), then refuse with 429."""
    daemon = start_daemon(config(fake_upstream.url, tmp_path))
    assert ask(daemon, QUESTION, MASTER_KEY, "tpm-seed").headers["x-fkllm-cache"] == "miss"
    statuses = []
    for attempt in range(3):
        answer = ask(daemon, PARAPHRASE, TPM_KEY, f"tpm-{attempt}")
        statuses.append(answer.status_code)
        if answer.status_code == 200:
            assert answer.headers["x-fkllm-cache"] == "semantic-hit"
    assert statuses == [200, 200, 429]
    assert answer.json()["error"]["code"] == "rate_limit_exceeded"
