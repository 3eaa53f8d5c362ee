"""The console's Keys page with budgets: the form takes one, the table shows spend and what is left."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.server.ui.conftest import FORM, csrf_of, make_client, sign_in

PRICES = '\n[[pricing]]\nmodel = "mock-1"\ninput_per_mtok = 0\noutput_per_mtok = 1000\n'


def test_a_key_created_with_a_budget_shows_and_enforces_it(tmp_path: Path) -> None:
    """Create with a budget: the table shows budget, spend and what is left, and the
    new key's answers carry the remaining budget."""
    with make_client(tmp_path, PRICES) as client:
        sign_in(client)
        html = client.get("/ui/keys").text
        assert '<label for="key-budget">Budget (USD)</label>' in html
        token = csrf_of(html)
        made = client.post(
            "/ui/keys",
            content=f"name=team-b&budget_usd=3&budget_period=week&csrf={token}",
            headers=FORM,
        )
        assert made.status_code == 200, made.text
        key = re.search(r'<code id="new-key">(sk-fkllm-[0-9a-f]+)</code>', made.text)
        assert key
        assert "$3.00/week: spent $0.0000, left $3.0000" in client.get("/ui/keys").text
        answer = client.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {key.group(1)}"},
            json={"model": "mock", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert answer.status_code == 200
        assert answer.headers["x-fkllm-budget-remaining-usd"] == "3.000000"
        spent = answer.json()["usage"]["completion_tokens"] * 0.001
        assert f"spent ${spent:.4f}, left ${3 - spent:.4f}" in client.get("/ui/keys").text


def test_a_budget_over_unpriced_models_is_refused(tmp_path: Path) -> None:
    """The form refuses a budget for a key that may use a model without a price."""
    with make_client(tmp_path) as client:
        sign_in(client)
        token = csrf_of(client.get("/ui/keys").text)
        made = client.post(
            "/ui/keys", content=f"name=team-c&budget_usd=3&csrf={token}", headers=FORM
        )
        assert made.status_code == 400
        assert "without a price" in made.text


def test_a_key_created_with_tokens_per_minute_shows_and_enforces_it(tmp_path: Path) -> None:
    """The form's "Tokens per minute": the table shows it and the key is refused with 429
    rate_limit_exceeded once its minute's tokens are used; a bad value is refused."""
    with make_client(tmp_path) as client:
        sign_in(client)
        html = client.get("/ui/keys").text
        assert '<label for="key-tpm">Tokens per minute</label>' in html
        assert '<input id="key-tpm" name="tokens_per_minute"' in html
        token = csrf_of(html)
        for bad in ("0", "many", "1.5"):
            refused = client.post(
                "/ui/keys",
                content=f"name=team-t&tokens_per_minute={bad}&csrf={token}",
                headers=FORM,
            )
            assert refused.status_code == 400, (bad, refused.text)
            assert "Tokens per minute must be a whole number of at least 1" in refused.text
        made = client.post(
            "/ui/keys", content=f"name=team-t&tokens_per_minute=20&csrf={token}", headers=FORM
        )
        assert made.status_code == 200, made.text
        key = re.search(r'<code id="new-key">(sk-fkllm-[0-9a-f]+)</code>', made.text)
        assert key
        row = re.search(
            r"<tr><th scope=\"row\">team-t</th>.*?</tr>", client.get("/ui/keys").text, re.S
        )
        assert row and "default; 20 tokens/min" in row.group(0)

        def chat(words: str) -> Any:
            return client.post(
                "/v1/chat/completions",
                headers={"authorization": f"Bearer {key.group(1)}"},
                json={"model": "mock", "messages": [{"role": "user", "content": words}]},
            )

        first = chat("a few words to use up the tokens of this minute quickly")
        assert first.status_code == 200
        assert first.json()["usage"]["total_tokens"] >= 20
        refused = chat("hi")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
