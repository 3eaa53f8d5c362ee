"""The real Codex CLI (``codex exec``) through fkllm, on translated and passed-through providers.

Codex speaks only the Responses API. Its config (``$CODEX_HOME/config.toml``) points a
``[model_providers.fkllm]`` at the daemon with ``wire_api = "responses"``, and turns off
its two hosted tools a provider without the Responses API cannot run (``web_search =
"disabled"``, ``[agents] enabled = false``), as ``examples/codex.md`` tells users to.
The fake upstream's ``tools`` behaviour calls Codex's first tool, ``exec_command``, with
the prompt as its command, so Codex runs a real shell command and sends its output back.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
from tests.clients._responses_setup import responses_config
from tests.clients.conftest import agent_cli, agent_env
from tests.conftest import MASTER_KEY, RunningDaemon

CODEX_CONFIG = """
model = "{model}"
model_provider = "fkllm"
web_search = "disabled"

[agents]
enabled = false

[model_providers.fkllm]
name = "fkllm"
base_url = "{url}/v1"
env_key = "FKLLM_KEY"
wire_api = "responses"
"""


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    config = responses_config(upstream.url)
    with RunningDaemon(tmp_path_factory.mktemp("codex"), config) as running:
        yield running


def codex(daemon: RunningDaemon, home: Path, model: str, prompt: str) -> str:
    """Run one ``codex exec`` task; its stdout (the final answer), failing on a bad exit."""
    program = agent_cli("codex")
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(CODEX_CONFIG.format(model=model, url=daemon.url))
    work = home / "work"
    work.mkdir(exist_ok=True)
    env = agent_env(home, CODEX_HOME=str(codex_home), FKLLM_KEY=MASTER_KEY)
    done = subprocess.run(
        [str(program), "exec", "--skip-git-repo-check", prompt],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def responses_sent(upstream: FakeUpstream) -> list[RecordedRequest]:
    return [r for r in upstream.requests if r.method == "POST"]


@pytest.mark.parametrize("provider", ["oai", "native", "claude"])
def test_plain_task(
    daemon: RunningDaemon, upstream: FakeUpstream, tmp_path: Path, provider: str
) -> None:
    """Codex prints the provider's answer; the upstream got Codex's prompt in its own API."""
    upstream.clear()
    out = codex(daemon, tmp_path, f"{provider}-ok", "Hello codex")
    # The fake echoes the last user turn; Anthropic's has Codex's environment block in it too.
    assert "echo:" in out and out.rstrip().endswith("Hello codex")
    (seen,) = responses_sent(upstream)
    if provider == "oai":
        assert seen.path == "/v1/chat/completions"
        assert seen.json["messages"][-1] == {"role": "user", "content": "Hello codex"}
        assert {t["function"]["name"] for t in seen.json["tools"]} >= {"exec_command"}
    elif provider == "native":
        assert seen.path == "/v1/responses"
        assert seen.json["input"][-1]["content"] == [{"type": "input_text", "text": "Hello codex"}]
        assert "client_metadata" in seen.json  # Codex's own fields, passed through untouched
    else:
        assert seen.path == "/v1/messages"


@pytest.mark.parametrize("provider", ["oai", "native", "claude"])
def test_task_that_runs_its_shell_tool_and_continues(
    daemon: RunningDaemon, upstream: FakeUpstream, tmp_path: Path, provider: str
) -> None:
    """The model calls exec_command; Codex runs it and sends the output; the answer follows."""
    upstream.clear()
    out = codex(daemon, tmp_path, f"{provider}-tools", "echo fkllm-tool-ran")
    assert "tool said:" in out
    first, second = responses_sent(upstream)[:2]
    if provider == "oai":
        call = first.json["tools"][0]["function"]["name"]
        assert call == "exec_command"
        tool_message = second.json["messages"][-1]
        assert tool_message["role"] == "tool" and "fkllm-tool-ran" in tool_message["content"]
        assert "fkllm-tool-ran" in out
    elif provider == "native":
        outputs = [i for i in second.json["input"] if i.get("type") == "function_call_output"]
        assert outputs and "fkllm-tool-ran" in str(outputs[-1]["output"])
        assert "fkllm-tool-ran" in out
    else:
        blocks = second.json["messages"][-1]["content"]
        assert any(block.get("type") == "tool_result" for block in blocks)
