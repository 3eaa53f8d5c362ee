"""Who is calling: header forms, master and client keys, the previous key's grace."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from fkllmproxy.auth import Authenticator
from fkllmproxy.auth.keys import presented_key
from fkllmproxy.config.schema import AuthConfig, ClientKey, KeyRateLimit
from fkllmproxy.errors import Forbidden, Unauthorized

MASTER = "master-key-0123456789"
CLIENT = "client-key-abcdefghij"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def config(**extra: object) -> AuthConfig:
    team = ClientKey(
        name="team-a",
        key_sha256=sha(CLIENT),
        models=["small"],
        rate_limit=KeyRateLimit(capacity=5, refill_per_second=1),
    )
    return AuthConfig(**{"master_key": MASTER, "keys": [team], **extra})  # type: ignore[arg-type]


class TestPresentedKey:
    @pytest.mark.parametrize(
        ("authorization", "x_api_key", "expected"),
        [
            (f"Bearer {MASTER}", None, MASTER),
            (f"bearer {MASTER}", None, MASTER),
            (f"BEARER   {MASTER}  ", None, MASTER),
            (None, MASTER, MASTER),
            (None, f"  {MASTER} ", MASTER),
            ("Basic dXNlcjpwYXNz", MASTER, MASTER),  # not a bearer: x-api-key still counts
            (f"Bearer {MASTER}", "other", MASTER),  # both: the bearer wins
            ("Bearer", None, None),
            ("Bearer    ", None, None),
            (MASTER, None, None),  # no scheme
            (None, "", None),
            (None, None, None),
        ],
    )
    def test_header_forms(
        self, authorization: str | None, x_api_key: str | None, expected: str | None
    ) -> None:
        assert presented_key(authorization, x_api_key) == expected


class TestAuthenticator:
    def test_master_key_by_either_header(self) -> None:
        auth = Authenticator(config())
        assert auth.authenticate(f"Bearer {MASTER}", None).is_master
        assert auth.authenticate(None, MASTER).name == "master"

    def test_client_key_carries_its_models_and_limit(self) -> None:
        caller = Authenticator(config()).authenticate(f"Bearer {CLIENT}", None)
        assert caller.name == "team-a" and not caller.is_master
        assert caller.rate_limit == KeyRateLimit(capacity=5, refill_per_second=1)
        caller.check_model("small")
        with pytest.raises(Forbidden) as info:
            caller.check_model("big")
        assert info.value.status == 403 and "small" in info.value.message

    @pytest.mark.parametrize(
        ("authorization", "x_api_key", "words"),
        [
            (None, None, "Missing API key"),
            ("Bearer wrong-key-000000", None, "Invalid API key"),
            (None, MASTER[:-1], "Invalid API key"),
            (None, MASTER + "x", "Invalid API key"),
        ],
    )
    def test_missing_or_wrong_key_is_401(
        self, authorization: str | None, x_api_key: str | None, words: str
    ) -> None:
        with pytest.raises(Unauthorized) as info:
            Authenticator(config()).authenticate(authorization, x_api_key)
        assert info.value.status == 401
        assert info.value.headers["WWW-Authenticate"].startswith("Bearer")
        assert words in info.value.message
        assert MASTER not in info.value.message

    def test_no_keys_configured_lets_everyone_in(self) -> None:
        auth = Authenticator(AuthConfig())
        assert not auth.required
        assert auth.authenticate(None, None).name == "anonymous"
        assert not auth.is_master(None, None)

    def test_extra_keys_from_the_store(self) -> None:
        stored = ClientKey(name="stored", key_sha256=sha("stored-key-123456"))
        auth = Authenticator(config(), extra_keys=[stored])
        assert auth.authenticate(None, "stored-key-123456").name == "stored"
        assert auth.key_count == 2


class TestPreviousKeyGrace:
    def test_accepted_until_rotated_at_plus_grace(self) -> None:
        clock = Clock()
        rotated = datetime.fromtimestamp(clock.now - 100, UTC)
        auth = Authenticator(
            config(
                master_key="new-master-key-000",
                previous_master_key=MASTER,
                rotated_at=rotated,
                previous_key_grace_secs=300,
            ),
            clock=clock,
        )
        assert auth.authenticate(None, MASTER).name == "master-previous"
        assert auth.authenticate(None, "new-master-key-000").name == "master"
        clock.now += 199
        assert auth.is_master(None, MASTER)
        clock.now += 2
        with pytest.raises(Unauthorized, match="rotated out"):
            auth.authenticate(None, MASTER)
        assert auth.authenticate(None, "new-master-key-000").is_master

    def test_rotated_long_ago_is_refused_at_once(self) -> None:
        clock = Clock()
        auth = Authenticator(
            config(
                previous_master_key="old-master-key-000",
                rotated_at=datetime.fromtimestamp(clock.now - 7200, UTC),
            ),
            clock=clock,
        )
        assert not auth.is_master(None, "old-master-key-000")

    def test_without_rotated_at_grace_counts_from_first_sight(self) -> None:
        """A reload keeping the same previous key does not restart its grace."""
        clock = Clock()
        settings = config(previous_master_key="old-master-key-000", previous_key_grace_secs=60)
        first = Authenticator(settings, clock=clock)
        clock.now += 50
        reloaded = Authenticator(settings, previous=first, clock=clock)
        assert reloaded.is_master(None, "old-master-key-000")
        clock.now += 11
        assert not reloaded.is_master(None, "old-master-key-000")
        other = config(previous_master_key="other-old-key-000", previous_key_grace_secs=60)
        assert Authenticator(other, previous=reloaded, clock=clock).is_master(
            None, "other-old-key-000"
        )
