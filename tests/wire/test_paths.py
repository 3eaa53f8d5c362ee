"""Model names that go into upstream URL paths cannot change the URL."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from fkllmproxy.config import load_config
from fkllmproxy.errors import BadRequest, ConfigError
from fkllmproxy.wire.paths import is_safe_segment, path_segment

UNSAFE = [
    "",
    "../admin",
    "a/b",
    "gemini..pro",
    "model?key=x",
    "model#frag",
    "m%2F..",
    "m odel",
    "m\x00",
    "m\n",
    "-flag",
    ".hidden",
    "http://169.254.169.254",
    "x" * 300,
]
SAFE = ["gemini-2.5-flash", "gpt-4o", "claude-3-5-sonnet@20240620", "my_deploy.v2", "a+b"]


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_names_are_refused(name: str) -> None:
    assert not is_safe_segment(name)
    with pytest.raises(BadRequest) as info:
        path_segment(name)
    assert info.value.status == 400 and info.value.param == "model"


@pytest.mark.parametrize("name", SAFE)
def test_ordinary_model_names_pass_unchanged(name: str) -> None:
    assert path_segment(name) == name


def test_config_refuses_unsafe_model_for_a_path_provider(tmp_path: Path) -> None:
    """Only providers that put the model in the path are held to the rule."""
    config = {
        "providers": [{"name": "g", "type": "gemini"}, {"name": "o", "type": "openai"}],
        "models": [
            {"name": "bad", "targets": [{"provider": "g", "model": "../../v1/files"}]},
            {"name": "fine", "targets": [{"provider": "o", "model": "meta-llama/Llama-3"}]},
        ],
    }
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(config))
    environ = {"GOOGLE_API_KEY": "g-key-12345678", "OPENAI_API_KEY": "o-key-12345678"}
    with pytest.raises(ConfigError) as info:
        load_config(config_path=path, environ=environ)
    assert len(info.value.problems) == 1
    assert "models[0].targets[0].model" in info.value.problems[0]
    assert "URL path" in info.value.problems[0]
