"""The Vertex token cache: reuse, proactive background refresh, single flight, failures.

The credentials here are a stand-in with google-auth's ``refresh``/``token``/``expiry``
surface and an injected clock, so no test sleeps; the real flow against a token
endpoint is covered in test_vertex.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fkllmproxy.errors import ConfigError, UpstreamUnavailable
from fkllmproxy.providers.google_auth import GoogleTokenSource, load_google_credentials


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeCredentials:
    """Hands out token-1, token-2, ... each valid ``lifetime`` seconds from wall time."""

    def __init__(self, lifetime: float = 3600.0) -> None:
        self.token: str | None = None
        self.expiry: datetime | None = None
        self.calls = 0
        self.lifetime = lifetime
        self.gate: threading.Event | None = None
        self.fail = False

    def refresh(self, request: Any) -> None:
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        self.calls += 1
        if self.fail:
            raise ValueError("invalid_grant: account disabled")
        self.token = f"token-{self.calls}"
        naive_now = datetime.now(UTC).replace(tzinfo=None)
        self.expiry = naive_now + timedelta(seconds=self.lifetime)


def source(credentials: FakeCredentials, clock: Clock) -> GoogleTokenSource:
    return GoogleTokenSource(
        credentials, provider="vertex", refresh_ahead=300, min_valid=30, clock=clock
    )


async def test_token_is_fetched_once_and_reused() -> None:
    credentials, clock = FakeCredentials(), Clock()
    tokens = source(credentials, clock)
    assert await tokens.token() == "token-1"
    clock.now += 3000  # still > 300 s left
    assert await tokens.token() == "token-1"
    assert credentials.calls == 1
    tokens.close()


async def test_concurrent_first_requests_share_one_refresh() -> None:
    credentials, clock = FakeCredentials(), Clock()
    credentials.gate = threading.Event()
    tokens = source(credentials, clock)
    waiters = [asyncio.create_task(tokens.token()) for _ in range(20)]
    await asyncio.sleep(0)
    credentials.gate.set()
    assert set(await asyncio.wait_for(asyncio.gather(*waiters), 10)) == {"token-1"}
    assert credentials.calls == 1
    tokens.close()


async def test_refresh_window_serves_the_current_token_and_refreshes_behind() -> None:
    credentials, clock = FakeCredentials(), Clock()
    tokens = source(credentials, clock)
    await tokens.token()
    credentials.gate = threading.Event()  # hold the refresh so we can see who waits
    clock.now += 3600 - 200  # 200 s left: inside refresh_ahead, above min_valid
    assert await asyncio.wait_for(tokens.token(), 5) == "token-1"
    assert await asyncio.wait_for(tokens.token(), 5) == "token-1"
    credentials.gate.set()
    task = tokens._task
    assert task is not None
    await asyncio.wait_for(task, 10)
    assert await tokens.token() == "token-2"
    assert credentials.calls == 2
    tokens.close()


async def test_nearly_expired_token_waits_for_the_new_one() -> None:
    credentials, clock = FakeCredentials(), Clock()
    tokens = source(credentials, clock)
    await tokens.token()
    clock.now += 3600 - 10  # under min_valid: must not be handed out
    assert await asyncio.wait_for(tokens.token(), 10) == "token-2"
    tokens.close()


async def test_refresh_failure_is_an_upstream_error_and_the_next_call_retries() -> None:
    credentials, clock = FakeCredentials(), Clock()
    credentials.fail = True
    tokens = source(credentials, clock)
    with pytest.raises(UpstreamUnavailable) as info:
        await asyncio.wait_for(tokens.token(), 10)
    assert "could not get an access token" in info.value.message
    assert "invalid_grant" in info.value.message
    credentials.fail = False
    assert await asyncio.wait_for(tokens.token(), 10) == "token-2"
    tokens.close()


class TestLoadCredentials:
    def test_service_account_file_gives_its_project(
        self, tmp_path: Path, service_account_file: Path
    ) -> None:
        credentials, project = load_google_credentials(str(service_account_file), provider="v")
        assert project == "fkllm-test"
        assert credentials.token is None

    @pytest.mark.parametrize(
        ("content", "words"),
        [
            ("not json", "not a JSON credentials file"),
            ('{"type": "external_account"}', "'external_account' is not supported"),
            ('{"type": "service_account"}', "incomplete service_account"),
        ],
    )
    def test_unusable_files_are_config_errors(
        self, tmp_path: Path, content: str, words: str
    ) -> None:
        path = tmp_path / "creds.json"
        path.write_text(content)
        with pytest.raises(ConfigError) as info:
            load_google_credentials(str(path), provider="v")
        assert words in info.value.problems[0]
        assert str(path) in info.value.problems[0]

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as info:
            load_google_credentials(str(tmp_path / "nope.json"), provider="v")
        assert "cannot be read" in info.value.problems[0]


@pytest.fixture
def service_account_file(tmp_path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "sa.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "fkllm-test",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "proxy@fkllm-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "http://127.0.0.1:9/token",
            }
        )
    )
    return path


async def test_invalidating_the_current_token_fetches_a_new_one() -> None:
    credentials, clock = FakeCredentials(), Clock()
    tokens = source(credentials, clock)
    await tokens.token()
    tokens.invalidate("some-older-token")  # a stale refusal changes nothing
    assert await tokens.token() == "token-1"
    tokens.invalidate("token-1")
    assert await asyncio.wait_for(tokens.token(), 10) == "token-2"
    tokens.close()
