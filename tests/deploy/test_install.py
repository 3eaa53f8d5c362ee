"""``make install`` (systemd/install.sh) into a staging root: files, modes, no overwrites."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fkllmproxy.config.envfile import read_env_file
from tests.conftest import REPO, fkllm

INSTALL = REPO / "systemd" / "install.sh"


def install(root: Path, binary: Path, **paths: str) -> subprocess.CompletedProcess[str]:
    """The install script with DESTDIR=root (so it creates no users and chowns nothing)."""
    env = {**os.environ, "DESTDIR": str(root), "BINARY": str(binary), **paths}
    result = subprocess.run(
        ["sh", str(INSTALL)], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def program(tmp_path: Path) -> Path:
    """A stand-in for dist/fkllmproxy: the script only copies it."""
    path = tmp_path / "build" / "fkllmproxy"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\necho release-1\n")
    return path


def test_installs_everything_with_safe_modes(tmp_path: Path, program: Path) -> None:
    root = tmp_path / "root"
    result = install(root, program)
    binary = root / "usr/local/bin/fkllmproxy"
    env_file = root / "etc/fkllmproxy/env"
    assert binary.read_bytes() == program.read_bytes() and mode(binary) == 0o755
    assert os.readlink(root / "usr/local/bin/fkllm") == "fkllmproxy"
    assert mode(root / "etc/systemd/system/fkllmproxy.service") == 0o644
    assert mode(env_file) == 0o600
    assert mode(root / "etc/fkllmproxy/config.toml") == 0o644
    assert (root / "etc/sysusers.d/fkllmproxy.conf").read_text() == (
        REPO / "systemd/fkllmproxy.sysusers"
    ).read_text()
    assert (root / "usr/local/share/doc/fkllmproxy/operations.md").exists()
    # What to do next, with this product's commands.
    for command in (
        "systemctl daemon-reload",
        "systemctl enable --now fkllmproxy",
        "curl http://localhost:4000/health",
    ):
        assert command in result.stdout


def test_env_file_has_a_fresh_master_key_and_commented_provider_keys(
    tmp_path: Path, program: Path
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    install(first, program)
    install(second, program)
    values = read_env_file(first / "etc/fkllmproxy/env")
    assert set(values) == {"APP_AUTH__MASTER_KEY"}
    assert re.fullmatch(r"[0-9a-f]{64}", values["APP_AUTH__MASTER_KEY"])
    assert values != read_env_file(second / "etc/fkllmproxy/env")  # generated, not fixed
    text = (first / "etc/fkllmproxy/env").read_text()
    for variable in ("GOOGLE_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        assert f"# {variable}=" in text


def test_installed_config_is_all_comments_and_valid(tmp_path: Path, program: Path) -> None:
    """Defaults apply until the operator uncomments; with a provider key it checks out."""
    root = tmp_path / "root"
    install(root, program)
    config = root / "etc/fkllmproxy/config.toml"
    assert tomllib.loads(config.read_text()) == {}
    assert "APP_CIRCUIT_BREAKER__FAILURE_THRESHOLD" in config.read_text()
    env_file = root / "etc/fkllmproxy/env"
    with env_file.open("a") as env:
        env.write("GOOGLE_API_KEY=test-google-key\n")
    result = fkllm("check-config", "--config", str(config), "--env-file", str(env_file))
    assert result.returncode == 0, result.stderr
    assert "test-google-key" not in result.stdout
    assert "gemini-pro" in result.stdout


def test_rerun_keeps_env_and_config_and_backs_up_the_program(tmp_path: Path, program: Path) -> None:
    root = tmp_path / "root"
    install(root, program)
    env_file, config = root / "etc/fkllmproxy/env", root / "etc/fkllmproxy/config.toml"
    env_file.write_text("APP_AUTH__MASTER_KEY=operator-chosen\n")
    config.write_text("[server]\nport = 4100\n")
    old = program.read_bytes()
    program.write_text("#!/bin/sh\necho release-2\n")

    result = install(root, program)
    assert env_file.read_text() == "APP_AUTH__MASTER_KEY=operator-chosen\n"
    assert config.read_text() == "[server]\nport = 4100\n"
    assert "kept the existing /etc/fkllmproxy/env" in result.stdout
    assert "kept the existing /etc/fkllmproxy/config.toml" in result.stdout
    assert (root / "usr/local/bin/fkllmproxy").read_bytes() == program.read_bytes()
    assert (root / "usr/local/bin/fkllmproxy.backup").read_bytes() == old


def test_an_unrelated_fkllm_command_is_left_alone(tmp_path: Path, program: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "usr/local/bin/fkllm").write_text("#!/bin/sh\necho pip-installed\n")
    result = install(root, program)
    assert (root / "usr/local/bin/fkllm").read_text() == "#!/bin/sh\necho pip-installed\n"
    assert "left /usr/local/bin/fkllm alone" in result.stdout


def test_other_prefixes_are_written_into_the_unit(tmp_path: Path, program: Path) -> None:
    root = tmp_path / "root"
    install(root, program, PREFIX="/opt/fk", SYSCONFDIR="/srv/etc", UNITDIR="/lib/systemd/system")
    unit = (root / "lib/systemd/system/fkllmproxy.service").read_text()
    assert "ExecStart=/opt/fk/bin/fkllmproxy serve" in unit
    assert "EnvironmentFile=/srv/etc/fkllmproxy/env" in unit
    assert (root / "opt/fk/bin/fkllmproxy").exists() and (root / "srv/etc/fkllmproxy/env").exists()


def test_a_program_not_matching_its_sha256sums_is_refused(tmp_path: Path, program: Path) -> None:
    """dist/SHA256SUMS beside the program: a mismatch installs nothing and says why."""
    (program.parent / "SHA256SUMS").write_text(f"{'0' * 64}  fkllmproxy\n")
    env = {**os.environ, "DESTDIR": str(tmp_path / "root"), "BINARY": str(program)}
    result = subprocess.run(["sh", str(INSTALL)], capture_output=True, text=True, env=env)
    assert result.returncode == 1 and "does not match" in result.stderr
    assert not (tmp_path / "root/usr/local/bin/fkllmproxy").exists()
    digest = hashlib.sha256(program.read_bytes()).hexdigest()
    (program.parent / "SHA256SUMS").write_text(f"{digest}  fkllmproxy\n")
    assert "checked" in install(tmp_path / "root", program).stdout


def test_missing_program_says_to_build_it(tmp_path: Path) -> None:
    env = {**os.environ, "DESTDIR": str(tmp_path), "BINARY": str(tmp_path / "nothing")}
    result = subprocess.run(["sh", str(INSTALL)], capture_output=True, text=True, env=env)
    assert result.returncode == 1 and "make dist" in result.stderr


@pytest.mark.timeout(900)
def test_make_install_puts_the_built_program_and_a_valid_unit(
    dist_binary: Path, tmp_path: Path
) -> None:
    """Through the Makefile, with the real build; the installed unit passes verify."""
    root = tmp_path / "root"
    result = subprocess.run(
        ["make", "-s", "install", f"DESTDIR={root}", f"VENV={sys.prefix}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    installed = root / "usr/local/bin/fkllmproxy"
    assert installed.read_bytes() == dist_binary.read_bytes()
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    unit = tmp_path / "fkllmproxy.service"
    unit.write_text(
        (root / "etc/systemd/system/fkllmproxy.service")
        .read_text()
        .replace("/usr/local/bin/fkllmproxy", str(installed))
    )
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
