"""The real Gemini CLI (``gemini -p``) through a daemon, against Google and non-Google providers.

The CLI is pointed at the proxy with ``GOOGLE_GEMINI_BASE_URL`` and a proxy key in
``GEMINI_API_KEY``; ``~/.gemini/settings.json`` (in a temp HOME) selects the API-key
auth type: with a base URL set, ``-p`` refuses the auth type it would otherwise pick. ``-m`` names a proxy model, which also
keeps the CLI's model router (a classifier call on another model) out of the way. Each
provider type answers from the fake upstream: a ``gemini`` provider gets the CLI's
bytes untouched, ``openai`` and ``anthropic`` get them translated.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
from tests.clients.conftest import agent_cli, agent_env
from tests.conftest import MASTER_KEY, RunningDaemon

CONFIG = """
[[providers]]
name = "gem"
type = "gemini"
base_url = "{url}"
api_key_env = "FAKE_GOOGLE_KEY"

[[providers]]
name = "oai"
type = "openai"
base_url = "{url}/v1"
api_key_env = "FAKE_OPENAI_KEY"

[[providers]]
name = "claude"
type = "anthropic"
base_url = "{url}"
api_key_env = "FAKE_ANTHROPIC_KEY"
{models}
"""
PROVIDERS = ("gem", "oai", "claude")
MODELS = "".join(
    f'\n[[models]]\nname = "{provider}-{kind}"\n'
    f'targets = [{{ provider = "{provider}", model = "{model}" }}]\n'
    for provider in PROVIDERS
    for kind, model in (("plain", "ok"), ("reader", "tool-read_file"))
)


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    with RunningDaemon(
        tmp_path_factory.mktemp("gemini-cli"),
        CONFIG.format(url=upstream.url, models=MODELS),
        env={
            "FAKE_GOOGLE_KEY": "google-upstream-key",
            "FAKE_OPENAI_KEY": "sk-upstream-openai",
            "FAKE_ANTHROPIC_KEY": "sk-ant-upstream",
        },
    ) as running:
        yield running


def run_gemini(daemon: RunningDaemon, tmp: Path, model: str, prompt: str) -> str:
    """Run ``gemini -m model -p prompt`` in ``tmp/work``; its stdout (fails on a non-zero exit)."""
    home = tmp / "home"
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    settings = {"security": {"auth": {"selectedType": "gemini-api-key"}}}
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    env = agent_env(
        home,
        GOOGLE_GEMINI_BASE_URL=daemon.url,
        GEMINI_API_KEY=MASTER_KEY,
        GEMINI_CLI_TRUST_WORKSPACE="true",
    )
    done = subprocess.run(
        [str(agent_cli("gemini")), "-m", model, "-p", prompt],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-3000:]}"
    return done.stdout


def model_calls(upstream: FakeUpstream) -> list[RecordedRequest]:
    return [r for r in upstream.requests if r.path != "/token"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_plain_answer(
    daemon: RunningDaemon, upstream: FakeUpstream, tmp_path: Path, provider: str
) -> None:
    """The CLI prints the provider's answer; the upstream got the CLI's prompt."""
    upstream.clear()
    out = run_gemini(daemon, tmp_path, f"{provider}-plain", "Say hello to the proxy")
    assert out.startswith("echo: ") and "Say hello to the proxy" in out
    calls = model_calls(upstream)
    assert calls, "the upstream saw no model call"
    first = calls[0]
    if provider == "gem":
        assert first.path == "/v1beta/models/ok:streamGenerateContent"
        assert first.query == {"alt": "sse"}
        assert first.json["generationConfig"]["thinkingConfig"]["includeThoughts"] is True
        assert first.json["contents"][-1]["parts"][-1]["text"] == "Say hello to the proxy"
    elif provider == "oai":
        assert first.path == "/v1/chat/completions" and first.json["stream"] is True
        last = first.json["messages"][-1]
        assert last["role"] == "user"
        assert last["content"][-1] == {"type": "text", "text": "Say hello to the proxy"}
        assert {t["function"]["name"] for t in first.json["tools"]} >= {"read_file"}
    else:
        assert first.path == "/v1/messages" and first.json["stream"] is True
        assert first.json["messages"][-1]["content"][-1]["text"] == "Say hello to the proxy"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_round_trip_reads_a_file(
    daemon: RunningDaemon, upstream: FakeUpstream, tmp_path: Path, provider: str
) -> None:
    """The model calls the CLI's read_file; the CLI runs it and sends the content back."""
    upstream.clear()
    work = tmp_path / "work"
    work.mkdir()
    notes = work / "notes.txt"
    notes.write_text("the secret word is pelican\n")
    out = run_gemini(daemon, tmp_path, f"{provider}-reader", str(notes))
    assert "pelican" in out
    calls = model_calls(upstream)
    assert len(calls) >= 2
    second = calls[1].json
    if provider == "gem":
        turn = second["contents"][-1]["parts"][0]["functionResponse"]
        assert turn["name"] == "read_file" and "pelican" in json.dumps(turn["response"])
    elif provider == "oai":
        tool = [m for m in second["messages"] if m["role"] == "tool"][-1]
        assert "pelican" in tool["content"]
    else:
        results = [
            block
            for message in second["messages"]
            if isinstance(message["content"], list)
            for block in message["content"]
            if block.get("type") == "tool_result"
        ]
        assert results and "pelican" in json.dumps(results[-1])
