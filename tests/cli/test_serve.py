"""``fkllm serve``'s failure modes as systemd sees them: exit status and a plain message.

78 (EX_CONFIG) for anything the operator must fix in the configuration, so the unit's
``RestartPreventExitStatus=78`` stops a restart loop; the message names what to fix.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import MOCK_CONFIG, fkllm

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def _drop_file_override() -> None:
    """In the child: give up root's power to read any file, so modes apply to us too."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _as_ordinary_user() -> Callable[[], None] | None:
    """A ``preexec_fn`` under which a mode-000 file cannot be read, or skip the test."""
    if os.geteuid() != 0:
        return None
    try:
        subprocess.run(["true"], preexec_fn=_drop_file_override, check=True)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE here")
    return _drop_file_override


def _serve(*args: str, env: dict[str, str] | None = None, preexec: Callable[[], None] | None = None,
           ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "GOOGLE", "OPENAI"))}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "fkllmproxy", "serve", *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=60,
        preexec_fn=preexec,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(MOCK_CONFIG)
    return path


def _assert_config_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 78, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr


def test_unreadable_env_file_is_a_config_error(config: Path, tmp_path: Path) -> None:
    """An env file the daemon may not read: 78, naming the file and who could not read it."""
    preexec = _as_ordinary_user()
    env_file = tmp_path / "env"
    env_file.write_text("APP_AUTH__MASTER_KEY=sk-unreadable-secret\n")
    env_file.chmod(0o000)
    result = _serve("--config", str(config), "--env-file", str(env_file), preexec=preexec)
    _assert_config_failure(result, f"env file {env_file}: permission denied", "chown fkllmproxy")
    assert "sk-unreadable-secret" not in result.stderr


def test_unreadable_default_env_file_is_not_skipped(config: Path, tmp_path: Path) -> None:
    """/etc/fkllmproxy/env present but unreadable: an error, not a silent fallback."""
    preexec = _as_ordinary_user()
    env_file = tmp_path / "etc-env"
    env_file.write_text("APP_AUTH__MASTER_KEY=sk-x\n")
    env_file.chmod(0o000)
    # The same CLI entry point, with the default location pointed at our file.
    script = (
        "import sys; from pathlib import Path; import fkllmproxy.config.loader as loader; "
        f"loader.DEFAULT_ENV_FILE = Path({str(env_file)!r}); "
        "from fkllmproxy.cli import main; "
        f"sys.argv = ['fkllmproxy', 'serve', '--config', {str(config)!r}]; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=preexec,
        env={k: v for k, v in os.environ.items() if not k.startswith("APP_")},
    )
    _assert_config_failure(result, f"env file {env_file}: permission denied")


def test_missing_env_file_is_a_config_error(config: Path, tmp_path: Path) -> None:
    result = _serve("--config", str(config), "--env-file", str(tmp_path / "absent"))
    _assert_config_failure(result, "no such file")


def test_missing_credentials_name_the_variable(tmp_path: Path) -> None:
    """A provider whose key variable is unset: 78, naming the variable to set."""
    path = tmp_path / "config.toml"
    path.write_text(
        '[[providers]]\nname = "g"\ntype = "gemini"\n\n'
        '[[models]]\nname = "gemini-pro"\ntargets = [{ provider = "g", model = "gemini-2.5-pro" }]\n'
    )
    result = _serve("--config", str(path))
    _assert_config_failure(result, "missing credentials", "GOOGLE_API_KEY")


def test_invalid_config_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(MOCK_CONFIG + "\n[server]\nprot = 4000\n")
    result = _serve("--config", str(path))
    _assert_config_failure(result, "server.prot", "did you mean 'port'?")


def test_bad_env_file_line_names_line_not_content(config: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("APP_AUTH__MASTER_KEY='sk-open-quote\n")
    result = _serve("--config", str(config), "--env-file", str(env_file))
    _assert_config_failure(result, "line 1")
    assert "sk-open-quote" not in result.stderr


def test_check_config_reports_the_same_unreadable_file(config: Path, tmp_path: Path) -> None:
    """check-config (the runbook's validation step) fails on it too, exit 1."""
    preexec = _as_ordinary_user()
    env_file = tmp_path / "env"
    env_file.write_text("")
    env_file.chmod(0o000)
    if preexec is None:
        result = fkllm("check-config", "--config", str(config), "--env-file", str(env_file))
    else:
        result = subprocess.run(
            [sys.executable, "-m", "fkllmproxy", "check-config", "--config", str(config),
             "--env-file", str(env_file)],
            capture_output=True, text=True, timeout=60, preexec_fn=preexec,
        )  # fmt: skip
    assert result.returncode == 1
    assert "permission denied" in result.stderr
