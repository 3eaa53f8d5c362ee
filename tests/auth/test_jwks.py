"""The issuer's key cache: discovery, refresh, the rate-limited unknown-kid refetch, and
cached keys outliving an unreachable issuer (a real issuer on 127.0.0.1, a fake clock)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from fkllmproxy.auth.jwks import (
    AlgorithmMismatch,
    JwksCache,
    JwksError,
    KeyNotFound,
    KeysUnavailable,
    discovery_url,
    is_trusted_url,
    parse_jwks,
)
from tests.auth.issuer import LocalIssuer
from tests.conftest import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    server = LocalIssuer()
    yield server
    server.stop()


def cache_for(issuer: LocalIssuer, clock: Clock, **kwargs: object) -> JwksCache:
    return JwksCache(issuer.issuer, None, refresh_secs=3600, clock=clock, **kwargs)  # type: ignore[arg-type]


class TestFetching:
    async def test_discovery_then_jwks(self, issuer: LocalIssuer) -> None:
        """The keys come from the jwks_uri of the issuer's OpenID configuration."""
        cache = cache_for(issuer, Clock())
        assert await cache.refresh_if_due()
        assert cache.kids == ["ec-1", "rsa-1"]
        assert issuer.hits["/realms/test/.well-known/openid-configuration"] == 1
        assert cache.lookup("rsa-1", "RS256").algorithm_name == "RS256"
        assert cache.lookup("ec-1", "ES256").algorithm_name == "ES256"

    async def test_configured_jwks_url_skips_discovery(self, issuer: LocalIssuer) -> None:
        """With jwks_url set, the discovery document is never asked for."""
        cache = JwksCache(issuer.issuer, issuer.issuer + "/jwks", refresh_secs=3600)
        await cache.refresh_if_due()
        assert cache.loaded and issuer.jwks_hits == 1
        assert issuer.hits["/realms/test/.well-known/openid-configuration"] == 0

    async def test_start_fetches_in_the_background(self, issuer: LocalIssuer) -> None:
        """``start`` fetches without the caller waiting; ``aclose`` stops the task."""
        cache = cache_for(issuer, Clock())
        cache.start()
        for _ in range(200):
            if cache.loaded:
                break
            await asyncio.sleep(0.01)
        assert cache.loaded
        await cache.aclose()

    async def test_refresh_every_refresh_secs(self, issuer: LocalIssuer) -> None:
        """The background step fetches again only once refresh_secs have passed."""
        clock = Clock()
        cache = cache_for(issuer, clock)
        await cache.refresh_if_due()
        clock.now += 3599
        assert not await cache.refresh_if_due()
        issuer.rotate("rsa-2")
        clock.now += 1
        assert await cache.refresh_if_due()
        assert "rsa-2" in cache.kids and issuer.jwks_hits == 2

    def test_keys_before_any_fetch_are_unavailable(self, issuer: LocalIssuer) -> None:
        """Before the first fetch a lookup says so (KeysUnavailable), not "unknown key"."""
        with pytest.raises(KeysUnavailable):
            cache_for(issuer, Clock()).lookup("rsa-1", "RS256")


class TestUnknownKid:
    async def test_rotation_is_picked_up_by_the_refetch(self, issuer: LocalIssuer) -> None:
        """A kid that appeared after the last fetch is found by ``refetch``."""
        clock = Clock()
        cache = cache_for(issuer, clock)
        await cache.refresh_if_due()
        issuer.rotate("rsa-2")
        with pytest.raises(KeyNotFound):
            cache.lookup("rsa-2", "RS256")
        clock.now += 30
        assert await cache.refetch()
        assert cache.lookup("rsa-2", "RS256").algorithm_name == "RS256"

    async def test_refetch_at_most_every_30_seconds(self, issuer: LocalIssuer) -> None:
        """Within 30 s of the last fetch no new fetch is made; at 30 s one is."""
        clock = Clock()
        cache = cache_for(issuer, clock)
        await cache.refresh_if_due()
        clock.now += 29.9
        assert not await cache.refetch()
        assert not await cache.refetch()
        assert issuer.jwks_hits == 1
        clock.now += 0.1
        assert await cache.refetch()
        assert not await cache.refetch()
        assert issuer.jwks_hits == 2
        await cache.aclose()

    async def test_concurrent_refetches_share_one_fetch(self, issuer: LocalIssuer) -> None:
        """Many requests with unknown kids at once cause a single fetch."""
        cache = cache_for(issuer, Clock())
        results = await asyncio.gather(*(cache.refetch() for _ in range(20)))
        assert all(results)
        assert issuer.jwks_hits == 1
        await cache.aclose()

    async def test_the_wait_is_bounded(self) -> None:
        """An issuer that hangs costs a request at most ``wait_secs``, not the fetch timeout."""
        started = asyncio.Event()

        async def hang(url: str, limit_secs: float) -> bytes:
            started.set()
            await asyncio.sleep(3600)
            return b""

        cache = JwksCache(
            "https://idp.example", None, refresh_secs=3600, fetch=hang, wait_secs=0.05
        )
        assert not await cache.refetch()
        assert started.is_set()
        await cache.aclose()


class TestIssuerDown:
    async def test_cached_keys_keep_working(self, issuer: LocalIssuer) -> None:
        """With the issuer gone, refreshes and refetches fail and the old keys still serve."""
        clock = Clock()
        cache = cache_for(issuer, clock)
        await cache.refresh_if_due()
        issuer.stop()
        clock.now += 3600
        assert await cache.refresh_if_due()  # it tried
        clock.now += 30
        assert not await cache.refetch()
        assert cache.lookup("rsa-1", "RS256").algorithm_name == "RS256"

    async def test_down_at_start_then_up(self) -> None:
        """An unreachable issuer at start leaves no keys; the first try 30 s later finds them."""
        port = free_port()
        clock = Clock()
        cache = JwksCache(
            f"http://127.0.0.1:{port}/realms/test", None, refresh_secs=3600, clock=clock
        )
        assert await cache.refresh_if_due()
        assert not cache.loaded
        clock.now += 10
        assert not await cache.refresh_if_due()  # retried every 30 s while none are cached
        clock.now += 20
        assert await cache.refresh_if_due()
        assert not cache.loaded


class TestParsing:
    def test_only_asymmetric_signing_keys_are_kept(self) -> None:
        """oct (HMAC) keys and encryption keys are dropped from the set."""
        issuer_keys = [
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "e", "crv": "P-256", "x": "x", "y": "y"},
        ]
        assert list(parse_jwks(json.dumps({"keys": issuer_keys}).encode())) == ["e"]

    def test_a_set_without_usable_keys_is_an_error(self) -> None:
        """A JWKS with no signing key (or not a JWKS at all) is refused, keeping the cache."""
        with pytest.raises(JwksError):
            parse_jwks(b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')
        with pytest.raises(JwksError):
            parse_jwks(b"<html>")

    async def test_key_bound_to_its_own_algorithm(self, issuer: LocalIssuer) -> None:
        """An RSA key is never handed out for ES256 (nor for a JWK's other declared alg)."""
        cache = cache_for(issuer, Clock())
        await cache.refresh_if_due()
        with pytest.raises(AlgorithmMismatch):
            cache.lookup("rsa-1", "ES256")
        with pytest.raises(AlgorithmMismatch):
            cache.lookup("rsa-1", "RS384")

    def test_urls(self) -> None:
        """Discovery sits under the issuer; only https (or http to loopback) is trusted."""
        assert discovery_url("https://a.example/t/") == (
            "https://a.example/t/.well-known/openid-configuration"
        )
        assert is_trusted_url("https://a.example/jwks")
        assert is_trusted_url("http://127.0.0.1:8080/jwks") and is_trusted_url("http://[::1]/k")
        assert not is_trusted_url("http://a.example/jwks")
        assert not is_trusted_url("ftp://127.0.0.1/jwks")


class TestAdopt:
    async def test_a_reload_keeps_fetched_keys(self, issuer: LocalIssuer) -> None:
        """A new cache for the same issuer takes over the keys and the refresh schedule."""
        clock = Clock()
        old = cache_for(issuer, clock)
        await old.refresh_if_due()
        new = cache_for(issuer, clock)
        new.adopt(old)
        assert new.kids == old.kids and not new.due()

    async def test_nothing_fetched_yet_means_fetch_now(self, issuer: LocalIssuer) -> None:
        """Adopting a cache that has no keys (its first fetch failed or runs) changes
        nothing: the new one fetches at once; another issuer's keys are never taken."""
        clock = Clock()
        empty = cache_for(issuer, clock)
        empty._last_attempt = clock.now
        fresh = cache_for(issuer, clock)
        fresh.adopt(empty)
        assert fresh.due()
        loaded = cache_for(issuer, clock)
        await loaded.refresh_if_due()
        other = JwksCache("https://other.example", None, refresh_secs=3600, clock=clock)
        other.adopt(loaded)
        assert not other.loaded
