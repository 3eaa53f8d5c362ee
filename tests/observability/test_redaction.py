"""The last line of defence: registered secrets never reach a log line."""

from __future__ import annotations

import json
import logging

import pytest

from fkllmproxy.config.redact import secret_values
from fkllmproxy.config.schema import AuthConfig, Config, ProviderConfig, StateConfig
from fkllmproxy.observability.logging import configure_logging, register_secrets


def test_secrets_in_messages_and_exceptions_are_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = Config(
        auth=AuthConfig(master_key="master-secret-aaaa", previous_master_key="prev-secret-bbbb"),
        providers=[
            ProviderConfig(
                name="p",
                type="openai",
                api_key="provider-secret-cccc",
                headers={"Authorization": "Bearer header-secret-dddd", "X-Trace": "abc"},
            )
        ],
        state=StateConfig(url="redis://:redis-secret-eeee@127.0.0.1:6379/0"),
    )
    secrets = secret_values(config)
    assert {
        "master-secret-aaaa",
        "prev-secret-bbbb",
        "provider-secret-cccc",
        "header-secret-dddd",
        "redis-secret-eeee",
    } <= secrets
    register_secrets(secrets | {"short"})
    configure_logging("INFO", "json")
    log = logging.getLogger("fkllmproxy.test")
    try:
        raise RuntimeError("GET https://host/v1?key=provider-secret-cccc failed")
    except RuntimeError:
        log.exception("upstream said master-secret-aaaa", extra={"detail": "header-secret-dddd"})
    log.info("a short word stays short")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    text = json.dumps(lines)
    for secret in secrets:
        assert secret not in text
    assert lines[0]["msg"] == "upstream said <redacted>"
    assert lines[0]["detail"] == "<redacted>"
    assert "key=<redacted>" in lines[0]["error"]
    assert lines[1]["msg"] == "a short word stays short"
