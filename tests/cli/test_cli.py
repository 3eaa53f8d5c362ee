"""The ``fkllm`` command line: exit codes and plain one-line errors."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import MOCK_CONFIG, fkllm, free_port


def test_check_config_valid_prints_redacted(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(MOCK_CONFIG)
    result = fkllm(
        "check-config", "--config", str(path), env={"APP_AUTH__MASTER_KEY": "sk-very-secret"}
    )
    assert result.returncode == 0, result.stderr
    assert "sk-very-secret" not in result.stdout
    assert 'master_key = "<redacted>"' in result.stdout


def test_check_config_json(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(MOCK_CONFIG)
    result = fkllm("check-config", "--json", "--config", str(path))
    assert result.returncode == 0
    assert '"valid": true' in result.stdout


def test_check_config_invalid_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(MOCK_CONFIG + "\n[server]\nport = 'x'\n")
    result = fkllm("check-config", "--config", str(path))
    assert result.returncode == 1
    assert "server.port (APP_SERVER__PORT)" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_invalid_config_exits_78_with_problems_first(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(MOCK_CONFIG)
    result = fkllm("serve", "--config", str(path), env={"APP_RATE_LIMIT__CAPACITY": "0"})
    assert result.returncode == 78
    assert result.stderr.splitlines()[0].startswith("fkllm: invalid configuration")
    assert "APP_RATE_LIMIT__CAPACITY" in result.stderr
    assert result.stdout == ""


def test_bare_binary_prints_config_problem_first() -> None:
    """The runbook's 'validate config' step: `fkllmproxy 2>&1 | head -20`."""
    result = fkllm()
    assert result.returncode == 78
    assert "no providers configured" in result.stderr.splitlines()[1]


def test_serve_port_in_use(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "c.toml"
    path.write_text(MOCK_CONFIG)
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = fkllm("serve", "--config", str(path), "--port", str(port))
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "lsof -i" in result.stderr


def test_unknown_option_is_one_line() -> None:
    result = fkllm("serve", "--bogus")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--bogus" in result.stderr


def test_help_for_every_command() -> None:
    for command in ("serve", "check-config", "rotate-key", "keys", "status", "metrics", "usage"):
        assert fkllm(command, "--help").returncode == 0
