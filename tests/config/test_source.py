"""The config file's text for the editor: secrets redacted in place, put back on write."""

from __future__ import annotations

import pytest

from fkllmproxy.config import load_config
from fkllmproxy.config.source import config_diff, redact_source, restore_secrets
from fkllmproxy.errors import ConfigError

TEXT = """# top comment
[auth]
master_key = 'sk-literal-master-1234'   # literal string

[state]
backend = "redis"
url = "redis://user:p%40ss-word-99@cache.internal:6379/0"

[[providers]]
name = "a"
type = "openai"
api_key = "sk-provider-a-secret"
headers = { "X-Api-Token" = "hdr-secret-77", "X-Trace" = "visible" }

[[providers]]
name = "b"
type = "openai"
api_key = "sk-provider-b-secret"
"""
SECRETS = ("sk-literal-master-1234", "p%40ss-word-99", "sk-provider-a-secret", "hdr-secret-77")


def test_secrets_are_redacted_and_everything_else_kept() -> None:
    """Every inline secret becomes <redacted>; comments, layout and other values stay."""
    shown = redact_source(TEXT)
    for secret in (*SECRETS, "sk-provider-b-secret"):
        assert secret not in shown
    assert shown.startswith("# top comment\n")
    assert 'master_key = "<redacted>"   # literal string' in shown
    assert 'url = "redis://user:<redacted>@cache.internal:6379/0"' in shown
    assert '"X-Trace" = "visible"' in shown


def test_a_file_that_is_not_toml_still_hides_its_keys() -> None:
    """A hand-broken file is shown with secret keys' values and URL passwords redacted."""
    shown = redact_source(TEXT + "\n[[broken\n")
    for secret in ("sk-literal-master-1234", "sk-provider-a-secret", "p%40ss-word-99"):
        assert secret not in shown


def test_redacted_markers_are_put_back_by_name() -> None:
    """Reordered providers keep their own keys; the round trip gives the file back."""
    shown = redact_source(TEXT)
    assert restore_secrets(shown, TEXT) == TEXT.replace(
        "'sk-literal-master-1234'", '"sk-literal-master-1234"'
    )
    a, b = shown.split("[[providers]]")[1:]
    swapped = shown.split("[[providers]]")[0] + "[[providers]]" + b + "\n[[providers]]" + a
    restored = restore_secrets(swapped, TEXT)
    assert restored.index("sk-provider-b-secret") < restored.index("sk-provider-a-secret")
    moved = shown.replace("cache.internal", "cache2.internal")
    assert "redis://user:p%40ss-word-99@cache2.internal:6379/0" in restore_secrets(moved, TEXT)


def test_a_marker_with_nothing_to_keep_is_a_problem() -> None:
    """A new provider's <redacted> key names itself in the problem."""
    text = TEXT + '\n[[providers]]\nname = "c"\ntype = "openai"\napi_key = "<redacted>"\n'
    text += '\n[[models]]\nname = "m"\ntargets = [{ provider = "x", model = "<redacted>" }]\n'
    with pytest.raises(ConfigError) as caught:
        restore_secrets(text, TEXT)
    assert caught.value.problems[0].startswith("providers[name=c].api_key")
    assert len(caught.value.problems) == 2


def test_the_diff_names_what_changed_without_values(tmp_path: pytest.TempPathFactory) -> None:
    """Providers by name, settings by path; a changed secret shows only as its owner."""
    first = tmp_path / "a.toml"  # type: ignore[operator]
    second = tmp_path / "b.toml"  # type: ignore[operator]
    base = '[[providers]]\nname = "m"\ntype = "mock"\n\n[[models]]\nname = "x"\n'
    base += 'targets = [{ provider = "m", model = "y" }]\n'
    first.write_text(base + '\n[[providers]]\nname = "o"\ntype = "openai"\napi_key = "k1"\n')
    second.write_text(
        "[rate_limit]\ncapacity = 7\n\n"
        + base
        + '\n[[providers]]\nname = "o"\ntype = "openai"\napi_key = "k2"\n'
    )
    old = load_config(config_path=first, environ={}).config
    new = load_config(config_path=second, environ={}).config
    diff = config_diff(old, new)
    assert diff["providers"] == {"added": [], "removed": [], "changed": ["o"]}
    assert diff["settings"] == ["rate_limit.capacity"]
    assert diff["changed"] is True
    assert "k2" not in repr(diff)
    assert config_diff(old, old)["changed"] is False
