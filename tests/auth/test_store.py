"""The key store as the daemon reads it at start and on reload."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from fkllmproxy.auth.store import store_keys
from fkllmproxy.config.schema import Config
from fkllmproxy.errors import ConfigError


def _config(directory: str) -> Config:
    return msgspec.convert({"state": {"directory": directory}}, Config)


def test_no_store_means_no_keys(tmp_path: Path) -> None:
    """A state directory without a key store adds no keys."""
    assert store_keys(_config(str(tmp_path))) == []


def test_an_unreadable_store_is_a_config_error_naming_it(tmp_path: Path) -> None:
    """A store path the system refuses to look at is a clear problem, not a traceback.

    (An unsearchable directory does this for a non-root daemon; a name longer than the
    system allows does it for anyone, so the test works as root too.)
    """
    directory = str(tmp_path / ("d" * 300))
    with pytest.raises(ConfigError) as caught:
        store_keys(_config(directory))
    [problem] = caught.value.problems
    assert problem.startswith(f"key store {directory}/keys.sqlite3: cannot be read")
