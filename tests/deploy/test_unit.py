"""systemd/fkllmproxy.service: valid for systemd, hardened, and in step with the code."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fkllmproxy.cli.app import EXIT_CONFIG
from fkllmproxy.config.schema import ServerConfig, StateConfig
from tests.conftest import REPO

UNIT = REPO / "systemd" / "fkllmproxy.service"
SYSUSERS = REPO / "systemd" / "fkllmproxy.sysusers"
# Issue 8 asks for an exposure under 2.0; the unit scores 1.1 with systemd 252.
EXPOSURE_CEILING = 2.0


def unit_settings(text: str) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values in order]}}``; systemd keys may repeat."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, value = line.split("=", 1)
        current.setdefault(key, []).append(value)
    return sections


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min|m)?", value)
    assert match, value
    return float(match.group(1)) * (60 if match.group(2) in ("min", "m") else 1)


SERVICE = unit_settings(UNIT.read_text())["Service"]


def one(key: str) -> str:
    values = SERVICE.get(key)
    assert values, f"{key}= is missing"
    return values[-1]


class TestContract:
    def test_start_reload_and_environment(self) -> None:
        assert one("Type") == "notify"
        assert one("NotifyAccess") == "main"
        assert one("ExecStart") == "/usr/local/bin/fkllmproxy serve"
        assert one("EnvironmentFile") == "/etc/fkllmproxy/env"
        assert one("ExecReload") == "/bin/kill -HUP $MAINPID"

    def test_no_restart_loop_on_a_bad_config(self) -> None:
        assert one("Restart") == "on-failure"
        assert one("RestartPreventExitStatus") == str(EXIT_CONFIG)

    def test_stop_outlasts_the_drain(self) -> None:
        """systemd must not SIGKILL before the daemon's own drain deadline has passed."""
        assert seconds(one("TimeoutStopSec")) > ServerConfig().drain_timeout_secs
        assert one("KillMode") == "mixed"

    def test_watchdog_and_descriptors(self) -> None:
        assert 0 < seconds(one("WatchdogSec")) <= 60
        assert int(one("LimitNOFILE")) >= 65536

    def test_state_and_cache_directories(self) -> None:
        """SQLite files go where the config's default points; the program unpacks in cache."""
        assert f"/var/lib/{one('StateDirectory')}" == StateConfig().directory
        assert one("CacheDirectory") == "fkllmproxy"
        assert "FKLLMPROXY_CACHE=%C/fkllmproxy" in SERVICE["Environment"]

    def test_runs_as_the_user_sysusers_creates(self) -> None:
        declared = SYSUSERS.read_text().split("\nu ", 1)[1].split()[0]
        assert one("User") == one("Group") == declared

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("NoNewPrivileges", "yes"),
            ("CapabilityBoundingSet", ""),
            ("AmbientCapabilities", ""),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("PrivateDevices", "yes"),
            ("ProtectKernelTunables", "yes"),
            ("ProtectKernelModules", "yes"),
            ("ProtectKernelLogs", "yes"),
            ("ProtectControlGroups", "yes"),
            ("ProtectClock", "yes"),
            ("ProtectHostname", "yes"),
            ("ProtectProc", "invisible"),
            ("ProcSubset", "pid"),
            ("RestrictNamespaces", "yes"),
            ("RestrictRealtime", "yes"),
            ("RestrictSUIDSGID", "yes"),
            ("LockPersonality", "yes"),
            ("MemoryDenyWriteExecute", "yes"),
            ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
            ("SystemCallArchitectures", "native"),
            ("UMask", "0077"),
        ],
    )
    def test_hardening(self, key: str, value: str) -> None:
        assert one(key) == value

    def test_syscall_filter(self) -> None:
        assert SERVICE["SystemCallFilter"][0] == "@system-service"


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    return found


def _runnable_copy(directory: Path, text: str) -> Path:
    """The unit with ExecStart pointed at a program that exists on this machine.

    /usr/local/bin/fkllmproxy is not installed here, and verify rejects a missing one.
    """
    copy = directory / "fkllmproxy.service"
    program = REPO / "dist" / "fkllmproxy"
    target = program if program.exists() else Path(shutil.which("true") or "/bin/true")
    copy.write_text(text.replace("/usr/local/bin/fkllmproxy serve", f"{target} serve"))
    return copy


def _verify(systemd_analyze: str, unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [systemd_analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )


class TestSystemdAnalyze:
    def test_verify_accepts_the_unit_without_a_warning(
        self, systemd_analyze: str, tmp_path: Path
    ) -> None:
        """verify exits 0 even on unknown keys, so its stderr must be empty too."""
        result = _verify(systemd_analyze, _runnable_copy(tmp_path, UNIT.read_text()))
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == ""

    def test_verify_check_would_catch_a_typo(self, systemd_analyze: str, tmp_path: Path) -> None:
        """The check above can fail: a misspelt key shows up on stderr."""
        text = UNIT.read_text().replace("ProtectHome=yes", "ProtectHomee=yes")
        result = _verify(systemd_analyze, _runnable_copy(tmp_path, text))
        assert "ProtectHomee" in result.stderr

    def test_security_exposure_is_low(self, systemd_analyze: str, tmp_path: Path) -> None:
        """`systemd-analyze security --offline=true` scores the unit below the ceiling."""
        unit = _runnable_copy(tmp_path, UNIT.read_text())
        result = subprocess.run(
            [systemd_analyze, "security", "--offline=true", "--no-pager", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
        assert match, result.stdout + result.stderr
        exposure = float(match.group(1))
        print(f"systemd-analyze security exposure: {exposure}")
        assert exposure < EXPOSURE_CEILING, result.stdout
