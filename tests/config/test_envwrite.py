"""Rewriting env files: only the named lines change, atomically, mode 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fkllmproxy.config.envfile import parse_env_text
from fkllmproxy.config.envwrite import locked_env_file, update_env_text, write_env_file
from fkllmproxy.errors import ConfigError

ORIGINAL = """# fkllmproxy secrets
OPENAI_API_KEY="sk-provider 'quoted' value"   # keep me

export APP_AUTH__MASTER_KEY=old-key
APP_LOGGING__LEVEL=INFO
  # indented comment
"""


class TestUpdateEnvText:
    def test_replaces_in_place_keeping_every_other_byte(self) -> None:
        updated = update_env_text(ORIGINAL, {"APP_AUTH__MASTER_KEY": "new-key"})
        assert updated == ORIGINAL.replace(
            "export APP_AUTH__MASTER_KEY=old-key", "export APP_AUTH__MASTER_KEY=new-key"
        )

    def test_appends_what_is_missing(self) -> None:
        updated = update_env_text("A=1", {"B": "2"})
        assert updated == "A=1\nB=2\n"
        assert update_env_text("", {"B": "2"}) == "B=2\n"

    def test_removes_with_none_and_collapses_duplicates(self) -> None:
        text = "X=1\nP=old\n# c\nP=older\nX=2\n"
        assert update_env_text(text, {"P": None, "X": "3"}) == "X=3\n# c\n"

    def test_refuses_values_that_would_need_quoting(self) -> None:
        with pytest.raises(ValueError):
            update_env_text("", {"A": "has space"})

    def test_result_parses_to_the_intended_values(self) -> None:
        updated = update_env_text(ORIGINAL, {"APP_AUTH__MASTER_KEY": "k1", "NEW": "v"})
        values = parse_env_text(updated)
        assert values["APP_AUTH__MASTER_KEY"] == "k1"
        assert values["NEW"] == "v"
        assert values["OPENAI_API_KEY"] == "sk-provider 'quoted' value"


class TestWriteEnvFile:
    def test_atomic_write_is_0600_and_leaves_no_temp_files(self, tmp_path: Path) -> None:
        path = tmp_path / "env"
        path.write_text(ORIGINAL)
        path.chmod(0o644)
        with locked_env_file(path) as (text, info):
            write_env_file(path, update_env_text(text, {"A": "b"}), info)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == ORIGINAL + "A=b\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["env", "env.lock"]

    def test_creates_a_missing_file(self, tmp_path: Path) -> None:
        path = tmp_path / "env"
        with locked_env_file(path) as (text, info):
            assert (text, info) == ("", None)
            write_env_file(path, "A=b\n", info)
        assert path.read_text() == "A=b\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_refuses_to_rewrite_a_broken_file(self, tmp_path: Path) -> None:
        path = tmp_path / "env"
        path.write_text("GOOD=1\nthis is not an assignment\n")
        with pytest.raises(ConfigError) as info, locked_env_file(path):
            pass
        assert "line 2" in info.value.problems[0]
        assert path.read_text() == "GOOD=1\nthis is not an assignment\n"

    @pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
    def test_unwritable_directory_is_a_clear_error(self, tmp_path: Path) -> None:
        path = tmp_path / "env"
        path.write_text("A=1\n")
        (tmp_path / "env.lock").touch()
        tmp_path.chmod(0o500)
        try:
            with (
                pytest.raises(ConfigError, match="cannot write"),
                locked_env_file(path) as (
                    text,
                    info,
                ),
            ):
                write_env_file(path, text, info)
        finally:
            tmp_path.chmod(0o700)
        assert path.read_text() == "A=1\n"
