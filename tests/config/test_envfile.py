"""Env files in systemd's KEY=value format."""

from __future__ import annotations

import pytest

from fkllmproxy.config.envfile import parse_env_text
from fkllmproxy.errors import ConfigError


class TestParseEnvText:
    def test_forms(self) -> None:
        text = (
            "# a comment\n\nA=1\nexport B=two\nC='single # kept'\n"
            'D="dq \\"x\\"\\n"\nE=plain # trailing\nF=\n'
        )
        assert parse_env_text(text) == {
            "A": "1",
            "B": "two",
            "C": "single # kept",
            "D": 'dq "x"\n',
            "E": "plain",
            "F": "",
        }

    def test_bad_lines_reported_by_number_without_content(self) -> None:
        with pytest.raises(ConfigError) as info:
            parse_env_text("OK=1\nnot a line sk-secret\nQ='open\n")
        problems = info.value.problems
        assert [p.split(":")[0] for p in problems] == ["env file line 2", "env file line 3"]
        assert "sk-secret" not in " ".join(problems)
