"""The issuer's key cache: discovery, refresh, the rate-limited unknown-kid refetch, and
cached keys outliving an unreachable issuer (a real issuer on 127.0.0.1, a fake clock);
the HTTP side (discovery, jwks_uri, an issuer mismatch, HTTP errors, a slow issuer)
against httpx_mock."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fkllmproxy.auth.jwks import (
    AlgorithmMismatch,
    JwksCache,
    JwksError,
    KeyNotFound,
    KeysUnavailable,
    discovery_url,
    http_get,
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


ISSUER = "https://idp.example/realms/t"
DISCOVERY = ISSUER + "/.well-known/openid-configuration"
KEYS_URL = "https://idp.example/realms/t/protocol/certs"


def ec_jwks(kid: str = "ec-1") -> dict[str, object]:
    """A JWKS with one fresh EC P-256 signing key."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "ES256"})
    return {"keys": [jwk]}


class TestHttpAgainstHttpxMock:
    """``http_get`` and discovery over httpx, the issuer played by httpx_mock."""

    async def test_discovery_document_names_the_jwks_uri(self, httpx_mock: HTTPXMock) -> None:
        """The keys come from wherever the discovery document's jwks_uri says."""
        httpx_mock.add_response(url=DISCOVERY, json={"issuer": ISSUER, "jwks_uri": KEYS_URL})
        httpx_mock.add_response(url=KEYS_URL, json=ec_jwks())
        cache = JwksCache(ISSUER, None, refresh_secs=3600, clock=Clock())
        assert await cache.refresh_if_due()
        assert cache.kids == ["ec-1"]
        assert [str(r.url) for r in httpx_mock.get_requests()] == [DISCOVERY, KEYS_URL]
        assert all(r.headers["accept"] == "application/json" for r in httpx_mock.get_requests())

    async def test_an_untrusted_jwks_uri_is_never_fetched(self, httpx_mock: HTTPXMock) -> None:
        """A jwks_uri over plain http to another host is refused before any request."""
        httpx_mock.add_response(
            url=DISCOVERY, json={"issuer": ISSUER, "jwks_uri": "http://idp.example/certs"}
        )
        cache = JwksCache(ISSUER, None, refresh_secs=3600, clock=Clock())
        assert await cache.refresh_if_due()
        assert not cache.loaded and len(httpx_mock.get_requests()) == 1

    async def test_an_issuer_mismatch_is_logged_and_the_keys_kept(
        self, httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A document naming another issuer is warned about; tokens are still checked
        against the configured ``iss``, so its keys are used."""
        other = "https://idp.example/realms/other"
        httpx_mock.add_response(url=DISCOVERY, json={"issuer": other, "jwks_uri": KEYS_URL})
        httpx_mock.add_response(url=KEYS_URL, json=ec_jwks())
        cache = JwksCache(ISSUER, None, refresh_secs=3600, clock=Clock())
        with caplog.at_level(logging.WARNING, logger="fkllmproxy.auth"):
            await cache.refresh_if_due()
        assert cache.kids == ["ec-1"]
        (warned,) = [r for r in caplog.records if "names another issuer" in r.getMessage()]
        assert warned.discovered_issuer == other  # type: ignore[attr-defined]

    async def test_a_discovery_document_that_is_not_json(self, httpx_mock: HTTPXMock) -> None:
        """An HTML page where the OpenID configuration should be leaves no keys."""
        httpx_mock.add_response(url=DISCOVERY, text="<html>login</html>")
        cache = JwksCache(ISSUER, None, refresh_secs=3600, clock=Clock())
        assert await cache.refresh_if_due()
        assert not cache.loaded

    @pytest.mark.parametrize(
        ("answer", "said"),
        [
            ({"status_code": 404}, "answered HTTP 404"),
            ({"status_code": 503}, "answered HTTP 503"),
            ({"status_code": 302, "headers": {"location": "https://evil.example/"}}, "HTTP 302"),
            ({"content": b"x" * (1024 * 1024 + 1)}, "larger than 1048576 bytes"),
        ],
    )
    async def test_http_errors(
        self, httpx_mock: HTTPXMock, answer: dict[str, object], said: str
    ) -> None:
        """Anything but a 200 of a sane size is a ``JwksError``; redirects are not followed."""
        httpx_mock.add_response(url=KEYS_URL, **answer)  # type: ignore[arg-type]
        with pytest.raises(JwksError, match=said):
            await http_get(KEYS_URL, 5.0)
        assert len(httpx_mock.get_requests()) == 1

    @pytest.mark.parametrize(
        "error", [httpx.ConnectError("refused"), httpx.ReadTimeout("timed out")]
    )
    async def test_transport_errors(self, httpx_mock: HTTPXMock, error: Exception) -> None:
        """A refused connection or a timeout is a ``JwksError`` naming both."""
        httpx_mock.add_exception(error, url=KEYS_URL)
        with pytest.raises(JwksError, match=f"{KEYS_URL}: {type(error).__name__}"):
            await http_get(KEYS_URL, 5.0)

    async def test_failed_refresh_keeps_the_cached_keys(self, httpx_mock: HTTPXMock) -> None:
        """Keys once fetched outlive a 500 on the next refresh."""
        httpx_mock.add_response(url=KEYS_URL, json=ec_jwks())
        httpx_mock.add_response(url=KEYS_URL, status_code=500)
        clock = Clock()
        cache = JwksCache(ISSUER, KEYS_URL, refresh_secs=60, clock=clock)
        await cache.refresh_if_due()
        clock.now += 60
        assert await cache.refresh_if_due()
        assert cache.kids == ["ec-1"] and len(httpx_mock.get_requests()) == 2

    async def test_a_slow_issuer_is_waited_for_at_most_wait_secs(
        self, httpx_mock: HTTPXMock
    ) -> None:
        """A request with an unknown kid waits ``wait_secs``, not for the slow issuer; the
        fetch goes on without it and its keys arrive for the next request."""
        keys = ec_jwks()

        async def slow(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(0.5)
            return httpx.Response(200, json=keys)

        httpx_mock.add_callback(slow, url=KEYS_URL)
        cache = JwksCache(ISSUER, KEYS_URL, refresh_secs=3600, clock=Clock(), wait_secs=0.05)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert not await cache.refetch()
        assert loop.time() - started < 0.4 and not cache.loaded
        assert await asyncio.wait_for(cache.refresh_if_due(), 5)  # joins the running fetch
        assert cache.kids == ["ec-1"]
        await cache.aclose()

    async def test_an_issuer_slower_than_the_fetch_limit(self, httpx_mock: HTTPXMock) -> None:
        """A fetch that outlasts ``fetch_timeout_secs`` is given up, leaving no keys."""

        async def stalled(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(5)
            return httpx.Response(200, json=ec_jwks())

        httpx_mock.add_callback(stalled, url=KEYS_URL)
        cache = JwksCache(
            ISSUER, KEYS_URL, refresh_secs=3600, clock=Clock(), fetch_timeout_secs=0.1
        )
        assert await asyncio.wait_for(cache.refresh_if_due(), 2)
        assert not cache.loaded
