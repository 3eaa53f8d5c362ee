"""The slot through which the providers package tells the loader its provider types."""

from __future__ import annotations

import pytest

from fkllmproxy.config import load_config, provider_types
from fkllmproxy.errors import ConfigError


def test_loading_with_no_types_registered_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the providers package, a config would pass unchecked: that is an error."""
    monkeypatch.setattr(provider_types, "_registered", {})
    with pytest.raises(RuntimeError, match=r"import fkllmproxy\.providers"):
        load_config(environ={})


def test_explicit_types_need_no_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    """``provider_types=`` stands in for the registered ones (here: none at all)."""
    monkeypatch.setattr(provider_types, "_registered", {})
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, provider_types=())
    assert info.value.problems[0].startswith("no providers configured")
