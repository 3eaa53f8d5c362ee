"""``fkllm smoke`` against real daemons: all passing, a failing upstream, a wrong key, a dead port."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.conftest import MASTER_KEY, MOCK_CONFIG, fkllm, free_port

API_CHECKS = ["chat", "chat-stream", "messages", "responses", "gemini"]
ALL_CHECKS = ["health", "ready", "models", *API_CHECKS]
TEAM_KEY = "sk-team-smoke-0123456789"


def report_lines(stdout: str) -> dict[str, list[str]]:
    """The report's check lines by check name: ``{name: [outcome, detail words...]}``."""
    lines = {}
    for line in stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1] in ("ok", "FAIL", "skip"):
            lines[words[0]] = words[1:]
    return lines


def upstream_config(up: FakeUpstream) -> str:
    """An OpenAI-type provider on the fake upstream: ``good`` answers, ``broken`` 500s."""
    return f"""
[retry]
max_attempts = 1

[[providers]]
name = "up"
type = "openai"
base_url = "{up.url}/v1"
api_key = "sk-upstream-0000"

[[models]]
name = "good"
targets = [{{ provider = "up", model = "ok-model" }}]

[[models]]
name = "broken"
targets = [{{ provider = "up", model = "fault-500" }}]
"""


class TestPassing:
    def test_every_check_passes_on_the_mock_provider(self, mock_daemon: Any) -> None:
        """One ok line per check, in order, each with a latency, and exit 0."""
        result = fkllm("smoke", "--url", mock_daemon.url, "--key", MASTER_KEY)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = report_lines(result.stdout)
        assert list(lines) == ALL_CHECKS
        assert all(words[0] == "ok" and words[-1] == "ms" for words in lines.values())
        assert "using 'mock'" in " ".join(lines["models"])
        assert "[DONE]" in " ".join(lines["chat-stream"])
        assert f"8 of 8 checks passed at {mock_daemon.url} with model 'mock'" in result.stdout
        assert result.stderr == ""

    def test_stream_streams_every_api(self, mock_daemon: Any) -> None:
        """--stream adds a streamed Messages, Responses and Gemini call, each ended properly."""
        result = fkllm("smoke", "--stream", "--url", mock_daemon.url, "--key", MASTER_KEY)
        assert result.returncode == 0, result.stdout
        lines = report_lines(result.stdout)
        assert {"messages-stream", "responses-stream", "gemini-stream"} <= set(lines)
        assert "message_stop," in lines["messages-stream"]
        assert "response.completed," in lines["responses-stream"]
        assert "11 of 11 checks passed" in result.stdout

    def test_json_report(self, mock_daemon: Any) -> None:
        """--json prints one document with every check's outcome, detail and latency."""
        result = fkllm("smoke", "--json", "--url", mock_daemon.url, "--key", MASTER_KEY)
        assert result.returncode == 0
        report = json.loads(result.stdout)
        assert report["status"] == "ok" and report["model"] == "mock"
        assert report["passed"] == report["total"] == 8
        assert [c["name"] for c in report["checks"]] == ALL_CHECKS
        assert all(c["outcome"] == "ok" and c["latency_ms"] >= 0 for c in report["checks"])

    def test_finds_the_daemon_and_key_from_the_config_layers(self, start_daemon: Any) -> None:
        """No --url, no --key: the port from APP_SERVER__PORT, the key from the env file."""
        daemon = start_daemon()
        daemon.env_file.write_text(f"APP_AUTH__MASTER_KEY={MASTER_KEY}\n")
        result = fkllm(
            "smoke",
            "--config",
            str(daemon.config_path),
            "--env-file",
            str(daemon.env_file),
            env={"APP_SERVER__PORT": str(daemon.port)},
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_default_model_is_the_first_the_key_may_use(self, start_daemon: Any) -> None:
        """A client key limited to one model is smoke-tested on that model."""
        digest = hashlib.sha256(TEAM_KEY.encode()).hexdigest()
        config = (
            MOCK_CONFIG
            + '\n[[models]]\nname = "second"\ntargets = [{ provider = "mock", model = "m2" }]\n'
            + f'\n[[auth.keys]]\nname = "team"\nkey_sha256 = "{digest}"\nmodels = ["second"]\n'
        )
        daemon = start_daemon(config)
        result = fkllm("smoke", "--json", "--url", daemon.url, "--key", TEAM_KEY)
        assert result.returncode == 0, result.stdout
        assert json.loads(result.stdout)["model"] == "second"


class TestFailing:
    @pytest.fixture
    def upstream_daemon(self, start_daemon: Any, fake_upstream: FakeUpstream) -> Any:
        return start_daemon(upstream_config(fake_upstream))

    def test_a_good_model_behind_a_real_provider_type_passes(self, upstream_daemon: Any) -> None:
        """Every API check passes through an openai provider on the fake upstream."""
        result = fkllm(
            "smoke", "--url", upstream_daemon.url, "--key", MASTER_KEY, "--model", "good"
        )
        assert result.returncode == 0, result.stdout

    def test_an_upstream_that_fails_fails_its_checks_with_exit_1(
        self, upstream_daemon: Any
    ) -> None:
        """The daemon's checks pass; each API call FAILs with the status and message seen."""
        result = fkllm(
            "smoke", "--url", upstream_daemon.url, "--key", MASTER_KEY, "--model", "broken"
        )
        assert result.returncode == 1
        lines = report_lines(result.stdout)
        assert [lines[name][0] for name in ("health", "ready", "models")] == ["ok"] * 3
        for name in API_CHECKS:
            assert lines[name][0] == "FAIL", (name, lines[name])
            assert lines[name][1] == "HTTP", (name, lines[name])
        assert lines["chat"][2] == "502:"
        assert "3 of 8 checks passed" in result.stdout
        assert "Traceback" not in result.stdout + result.stderr

    def test_wrong_key_is_1_with_a_clear_line(self, mock_daemon: Any) -> None:
        """The models check says the key was refused; the API checks are skipped."""
        result = fkllm("smoke", "--url", mock_daemon.url, "--key", "sk-not-a-key-000")
        assert result.returncode == 1
        lines = report_lines(result.stdout)
        assert " ".join(lines["models"]).startswith("FAIL the key was refused (HTTP 401")
        assert all(lines[name][0] == "skip" for name in API_CHECKS)
        assert result.stderr == ""

    def test_a_model_the_key_may_not_use_names_the_ones_it_may(self, mock_daemon: Any) -> None:
        result = fkllm("smoke", "--url", mock_daemon.url, "--key", MASTER_KEY, "--model", "nope")
        assert result.returncode == 1
        assert "'nope' is not among the key's 1 models: mock" in result.stdout


class TestUnreachable:
    def test_dead_port_is_2_with_one_line(self) -> None:
        url = f"http://127.0.0.1:{free_port()}"
        result = fkllm("smoke", "--url", url, "--key", MASTER_KEY)
        assert result.returncode == 2
        assert result.stderr == f"fkllm: cannot reach fkllmproxy at {url} (connection refused)\n"
        lines = report_lines(result.stdout)
        assert lines["health"] == ["FAIL", "unreachable"]
        assert all(words[0] == "skip" for name, words in lines.items() if name != "health")

    def test_dead_port_json(self) -> None:
        result = fkllm("smoke", "--json", "--url", f"http://127.0.0.1:{free_port()}")
        assert result.returncode == 2
        assert json.loads(result.stdout)["status"] == "unreachable"

    def test_a_malformed_url_is_2_with_one_line(self) -> None:
        result = fkllm("smoke", "--url", "ftp://somewhere:21")
        assert result.returncode == 2
        assert result.stderr.startswith("fkllm: cannot use the address 'ftp://somewhere:21'")
        assert result.stderr.count("\n") == 1
