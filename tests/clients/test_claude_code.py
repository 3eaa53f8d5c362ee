"""Claude Code itself (``claude -p``) through a running ``fkllm serve``, per provider kind.

Each provider kind gets its own daemon whose one provider is the fake upstream, and
whose models are the names Claude Code 2.1 sends: ``claude-opus-4-8`` (its default)
answers plainly, ``claude-sonnet-5`` (``--model sonnet``) calls Claude Code's own
``Read`` tool on the file the prompt names (the fake's ``tool-read`` behaviour), and
``claude-haiku-4-5-20251001`` (its background model) answers plainly. Each test checks
what Claude Code printed and what the upstream was sent: the newer models' system
message inside ``messages`` and their ``anthropic-beta``, passed through to Anthropic and
mapped for the others, and the tool result of the round trip.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
from tests.clients.conftest import agent_cli, agent_env
from tests.conftest import MASTER_KEY, RunningDaemon

MID_SYSTEM_BETA = "mid-conversation-system-2026-04-07"
SECRET = "marmalade-7731"

CONFIG = """
[[providers]]
name = "up"
type = "{kind}"
base_url = "{base_url}"
api_key_env = "FAKE_PROVIDER_KEY"

[[models]]
name = "claude-opus-4-8"
targets = [{{ provider = "up", model = "{plain}" }}]

[[models]]
name = "claude-sonnet-5"
targets = [{{ provider = "up", model = "tool-read" }}]

[[models]]
name = "claude-haiku-4-5-20251001"
targets = [{{ provider = "up", model = "{plain}" }}]
"""

KINDS = {
    "anthropic": ("", "ok"),
    "openai": ("/v1", "ok"),
    "gemini": ("", "gemini-2.5-flash"),
}
MODEL_PATHS = ("/v1/messages", "/v1/chat/completions", ":generateContent", ":streamGenerateContent")


@pytest.fixture(scope="module", params=sorted(KINDS))
def proxy(
    request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, RunningDaemon]]:
    kind: str = request.param
    suffix, plain = KINDS[kind]
    tmp = tmp_path_factory.mktemp(f"claude-code-{kind}")
    config = CONFIG.format(kind=kind, base_url=upstream.url + suffix, plain=plain)
    with RunningDaemon(tmp, config, env={"FAKE_PROVIDER_KEY": "upstream-key"}) as daemon:
        yield kind, daemon


def run_claude(daemon: RunningDaemon, workdir: Path, prompt: str, *args: str) -> dict[str, Any]:
    """``claude -p PROMPT --output-format json`` against the proxy; its JSON result."""
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    env = agent_env(
        home,
        ANTHROPIC_BASE_URL=daemon.url,
        ANTHROPIC_AUTH_TOKEN=MASTER_KEY,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    command = [str(agent_cli("claude")), "-p", prompt, "--output-format", "json", *args]
    done = subprocess.run(
        command, env=env, cwd=workdir, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["is_error"] is False, result
    return result


def model_calls(upstream: FakeUpstream) -> list[RecordedRequest]:
    return [r for r in upstream.requests if r.path.endswith(MODEL_PATHS)]


def system_texts(kind: str, seen: RecordedRequest) -> list[str]:
    """The system instructions the upstream got from inside ``messages`` (not the top one)."""
    body = seen.json
    if kind == "anthropic":
        return [m["content"] for m in body["messages"] if m["role"] == "system"]
    if kind == "openai":
        return [m["content"] for m in body["messages"][1:] if m["role"] == "system"]
    return [part["text"] for part in body["systemInstruction"]["parts"][1:]]


def saw_tool_result(kind: str, seen: RecordedRequest) -> str:
    """The text of the tool result the upstream got back, as one string."""
    if kind == "anthropic":
        blocks = [
            b for m in seen.json["messages"] if isinstance(m["content"], list) for b in m["content"]
        ]
        return json.dumps([b for b in blocks if b.get("type") == "tool_result"])
    if kind == "openai":
        return json.dumps([m for m in seen.json["messages"] if m["role"] == "tool"])
    parts = [p for c in seen.json["contents"] for p in c["parts"]]
    return json.dumps([p["functionResponse"] for p in parts if "functionResponse" in p])


def test_plain_answer_with_the_default_model(
    proxy: tuple[str, RunningDaemon], upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Claude Code's default model answers; the system message it puts inside messages arrives."""
    kind, daemon = proxy
    upstream.clear()
    result = run_claude(daemon, tmp_path, "say hello to the proxy")
    assert "say hello to the proxy" in result["result"]
    calls = model_calls(upstream)
    assert calls, "the upstream got no model call"
    first = calls[0]
    assert any("Available agent types" in text for text in system_texts(kind, first))
    if kind == "anthropic":
        assert MID_SYSTEM_BETA in first.headers["anthropic-beta"]
        assert first.json["model"] == "ok"
    lines = [e for e in daemon.logs() if e.get("model") == "claude-opus-4-8"]
    assert lines and lines[-1]["status"] == 200 and lines[-1]["provider"] == "up"
    # Claude Code retries a refused request in an older form: none may have been refused.
    assert [e["status"] for e in lines] == [200] * len(lines)
    assert not [e for e in daemon.logs() if e.get("path") == "/" and e.get("level") == "INFO"]


def test_tool_round_trip_with_sonnet(
    proxy: tuple[str, RunningDaemon], upstream: FakeUpstream, tmp_path: Path
) -> None:
    """--model sonnet: the upstream calls Read, Claude Code runs it, and its result goes back."""
    kind, daemon = proxy
    upstream.clear()
    note = tmp_path / "note.txt"
    note.write_text(f"the password is {SECRET}\n")
    result = run_claude(
        daemon, tmp_path, f"Show me {note}", "--model", "sonnet", "--allowedTools", "Read"
    )
    assert SECRET in result["result"]
    assert result["num_turns"] >= 2
    calls = model_calls(upstream)
    assert any(SECRET in saw_tool_result(kind, seen) for seen in calls), kind
    names = {e.get("model") for e in daemon.logs() if e.get("status") == 200}
    assert "claude-sonnet-5" in names
