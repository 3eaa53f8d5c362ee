"""JWTs from an OIDC issuer as client identities: every refusal names its reason, the
name claim is the client, groups and the models claim restrict models and limits.

The verifier is driven against a real issuer on 127.0.0.1 (RSA and EC keys, rotation,
the issuer going down); ``TestDaemon`` does the same through a real ``fkllm serve``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fkllmproxy.auth import Authenticator
from fkllmproxy.auth.oidc import NO_MODELS, InvalidToken, OidcVerifier, UnknownSigningKey
from fkllmproxy.config.schema import AuthConfig, KeyRateLimit, OidcConfig, OidcGroup
from fkllmproxy.errors import IdentityProviderUnavailable
from tests.auth.issuer import AUDIENCE, LocalIssuer, tampered
from tests.conftest import MASTER_KEY, MOCK_CONFIG, free_port, wait_until


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


def oidc_config(issuer: LocalIssuer, **overrides: Any) -> OidcConfig:
    return OidcConfig(issuer=issuer.issuer, audience=AUDIENCE, **overrides)


async def loaded_verifier(
    issuer: LocalIssuer, clock: Clock | None = None, **overrides: Any
) -> OidcVerifier:
    verifier = OidcVerifier(oidc_config(issuer, **overrides), clock=clock or Clock())
    await verifier.keys.refresh_if_due()
    return verifier


def reason_of(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    assert info.value.status == 401
    assert "WWW-Authenticate" in info.value.headers
    assert token not in info.value.message
    return info.value.reason


class TestVerify:
    async def test_rsa_and_ec_tokens_name_the_caller(self, issuer: LocalIssuer) -> None:
        """A valid RS256 or ES256 token is the caller its sub claim names."""
        verifier = await loaded_verifier(issuer)
        assert verifier.verify(issuer.token("rsa-1")).name == "alice"
        assert verifier.verify(issuer.token("ec-1", sub="bob")).name == "bob"

    async def test_each_refusal_names_its_reason(self, issuer: LocalIssuer) -> None:
        """Expired, wrong audience, wrong issuer, bad signature, not yet valid, no exp."""
        verifier = await loaded_verifier(issuer, leeway_secs=10)
        now = issuer.claims()["iat"]
        assert reason_of(verifier, issuer.token(exp=now - 11)) == "token expired"
        assert reason_of(verifier, issuer.token(aud="someone-else")) == "wrong audience"
        assert reason_of(verifier, issuer.token(iss="https://evil.example")) == "wrong issuer"
        assert reason_of(verifier, tampered(issuer.token())) == "bad signature"
        assert reason_of(verifier, tampered(issuer.token("ec-1"))) == "bad signature"
        assert reason_of(verifier, issuer.token(nbf=now + 60)) == "token not yet valid (nbf)"
        assert reason_of(verifier, issuer.token(exp=None)) == "the token has no 'exp' claim"
        assert reason_of(verifier, issuer.token(sub=None)).startswith(
            "the token has no 'sub' claim"
        )
        assert reason_of(verifier, "abc.def.ghi") == "malformed token"

    async def test_leeway_applies(self, issuer: LocalIssuer) -> None:
        """A token expired less than leeway_secs ago still passes."""
        verifier = await loaded_verifier(issuer, leeway_secs=60)
        now = issuer.claims()["iat"]
        assert verifier.verify(issuer.token(exp=now - 30)).name == "alice"

    async def test_algorithm_attacks_are_refused(self, issuer: LocalIssuer) -> None:
        """alg none, HS256 signed with the public key, and an algorithm not allowed."""
        verifier = await loaded_verifier(issuer, algorithms=["RS256"])
        assert reason_of(verifier, issuer.unsigned_token()) == "disallowed algorithm 'none'"
        assert reason_of(verifier, issuer.hmac_with_public_key()) == "disallowed algorithm 'HS256'"
        assert reason_of(verifier, issuer.token("ec-1")) == "disallowed algorithm 'ES256'"

    async def test_a_key_is_used_only_for_its_algorithm(self, issuer: LocalIssuer) -> None:
        """A token naming the RSA key's kid with alg ES256 is refused."""
        verifier = await loaded_verifier(issuer)
        token = issuer.token("ec-1", headers={"kid": "rsa-1"})
        assert reason_of(verifier, token) == "the token's algorithm does not match its signing key"

    async def test_unknown_kid(self, issuer: LocalIssuer) -> None:
        """A kid the issuer never published is 'unknown signing key'."""
        verifier = await loaded_verifier(issuer)
        token = issuer.token(headers={"kid": "nobody"})
        with pytest.raises(UnknownSigningKey) as info:
            verifier.verify(token)
        assert info.value.reason == "unknown signing key"

    async def test_no_keys_yet_is_503(self, issuer: LocalIssuer) -> None:
        """A token before the keys were ever fetched: 503 with Retry-After, not 401."""
        verifier = OidcVerifier(oidc_config(issuer))
        with pytest.raises(IdentityProviderUnavailable) as info:
            verifier.verify(issuer.token())
        assert info.value.status == 503 and info.value.headers["Retry-After"] == "30"


class TestRefetch:
    async def test_rotation_through_verify_fresh(self, issuer: LocalIssuer) -> None:
        """A token signed by a key published after the last fetch passes after one refetch."""
        clock = Clock()
        verifier = await loaded_verifier(issuer, clock)
        kid = issuer.rotate("ec-2", "EC")
        token = issuer.token(kid, sub="carol")
        clock.now += 30
        assert (await verifier.verify_fresh(token)).name == "carol"
        await verifier.aclose()

    async def test_unknown_kids_refetch_once_per_30s(self, issuer: LocalIssuer) -> None:
        """A flood of made-up kids costs the issuer one fetch per 30 s."""
        clock = Clock()
        verifier = await loaded_verifier(issuer, clock)
        clock.now += 30
        for i in range(5):
            with pytest.raises(UnknownSigningKey):
                await verifier.verify_fresh(issuer.token(headers={"kid": f"made-up-{i}"}))
        assert issuer.jwks_hits == 2
        kid = issuer.rotate()
        with pytest.raises(UnknownSigningKey):  # a real new key waits for the next window
            await verifier.verify_fresh(issuer.token(kid))
        clock.now += 30
        assert (await verifier.verify_fresh(issuer.token(kid))).name == "alice"
        assert issuer.jwks_hits == 3
        await verifier.aclose()

    async def test_issuer_down_after_start(self, issuer: LocalIssuer) -> None:
        """With the issuer unreachable, tokens signed by cached keys keep working."""
        clock = Clock()
        verifier = await loaded_verifier(issuer, clock)
        issuer.stop()
        clock.now += 7200
        await verifier.keys.refresh_if_due()
        assert (await verifier.verify_fresh(issuer.token("ec-1", sub="dave"))).name == "dave"
        await verifier.aclose()


class TestIdentity:
    async def test_groups_give_models_and_rate_limit(self, issuer: LocalIssuer) -> None:
        """Matched groups' models are unioned; the first matched group's rate limit applies."""
        slow = KeyRateLimit(capacity=2, refill_per_second=0.1)
        groups = [
            OidcGroup(claim_value="interns", models=["mock"], rate_limit=slow),
            OidcGroup(claim_value="eng", models=["big"]),
        ]
        verifier = await loaded_verifier(issuer, groups=groups)
        caller = verifier.verify(issuer.token(groups=["interns", "eng", "other"]))
        assert caller.models == {"mock", "big"} and caller.rate_limit == slow
        assert verifier.verify(issuer.token(sub="x", groups="eng")).models == {"big"}
        nobody = verifier.verify(issuer.token(sub="y", groups=["other"]))
        assert nobody.models == frozenset() and nobody.rate_limit is None

    async def test_models_claim_wins(self, issuer: LocalIssuer) -> None:
        """models_claim, when the token has it, is the allow-list; an empty one allows none."""
        groups = [OidcGroup(claim_value="eng", models=["big"])]
        verifier = await loaded_verifier(issuer, models_claim="llm_models", groups=groups)
        assert verifier.verify(issuer.token(llm_models=["mock"], groups=["eng"])).models == {"mock"}
        assert verifier.verify(issuer.token(sub="b", llm_models="a b")).models == {"a", "b"}
        empty = verifier.verify(issuer.token(sub="c", llm_models=[]))
        assert empty.models == NO_MODELS
        with pytest.raises(Exception, match="not allowed"):
            empty.check_model("mock")

    async def test_another_name_claim(self, issuer: LocalIssuer) -> None:
        """name_claim picks the claim that names the caller."""
        verifier = await loaded_verifier(issuer, name_claim="email")
        assert verifier.verify(issuer.token(email="a@example.com")).name == "a@example.com"

    async def test_a_verified_token_is_remembered_until_exp(self, issuer: LocalIssuer) -> None:
        """The same token again skips the signature check, until it expires."""
        verifier = await loaded_verifier(issuer, leeway_secs=0)
        token = issuer.token()
        first = verifier.verify(token)
        assert verifier.verify(token) is first
        exp = issuer.claims()["exp"]
        verifier._wall = lambda: exp + 1.0
        assert verifier.verify(token) is not first  # re-verified (still valid for PyJWT now)


class TestAuthenticator:
    async def test_keys_and_tokens_side_by_side(self, issuer: LocalIssuer) -> None:
        """The master key still works with OIDC on; other non-JWT keys stay 'Invalid API key'."""
        verifier = await loaded_verifier(issuer)
        auth = Authenticator(AuthConfig(master_key=MASTER_KEY), oidc=verifier)
        assert (await auth.authenticate_request(f"Bearer {MASTER_KEY}", None)).is_master
        token = issuer.token()
        assert (await auth.authenticate_request(f"Bearer {token}", None)).name == "alice"
        assert auth.authenticate(None, token).name == "alice"  # x-api-key too
        with pytest.raises(InvalidToken):
            await auth.authenticate_request(f"Bearer {tampered(token)}", None)
        with pytest.raises(Exception, match=r"^Invalid API key\.$"):
            await auth.authenticate_request("Bearer sk-nope", None)

    def test_oidc_alone_requires_a_credential(self, issuer: LocalIssuer) -> None:
        """With only [auth.oidc], a request without any key is refused."""
        auth = Authenticator(AuthConfig(), oidc=OidcVerifier(oidc_config(issuer)))
        assert auth.required
        with pytest.raises(Exception, match="Missing API key"):
            auth.authenticate(None, None)


# -- through a real daemon -------------------------------------------------------------

OIDC_CONFIG = """
[[models]]
name = "other"
targets = [{{ provider = "mock", model = "mock-2" }}]

[auth.oidc]
issuer = "{issuer}"
audience = "{audience}"

[[auth.oidc.groups]]
claim_value = "interns"
models = ["mock"]
rate_limit = {{ capacity = 2, refill_per_second = 0.01 }}
"""


def daemon_config(issuer: str) -> str:
    return MOCK_CONFIG + OIDC_CONFIG.format(issuer=issuer, audience=AUDIENCE)


CHAT = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}


def chat(daemon: Any, token: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(
        daemon.url + "/v1/chat/completions",
        json=body or CHAT,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


class TestDaemon:
    def test_tokens_through_fkllm_serve(self, issuer: LocalIssuer, start_daemon: Any) -> None:
        """Valid tokens are served and logged under their sub; every bad one is a 401
        naming the reason, logged 'unauthorized', and no token reaches any log line."""
        config = daemon_config(issuer.issuer)
        daemon = start_daemon(config)
        good_rsa, good_ec = issuer.token(sub="alice"), issuer.token("ec-1", sub="erin")
        for token in (good_rsa, good_ec):
            answer = chat(daemon, token)
            assert answer.status_code == 200, answer.text
        now = issuer.claims()["iat"]
        bad = {
            "token expired": issuer.token(exp=now - 3600),
            "wrong audience": issuer.token(aud="another-app"),
            "wrong issuer": issuer.token(iss="https://evil.example"),
            "unknown signing key": issuer.token(headers={"kid": "gone"}),
            "bad signature": tampered(issuer.token()),
            "disallowed algorithm 'none'": issuer.unsigned_token(),
            "disallowed algorithm 'HS256'": issuer.hmac_with_public_key(),
        }
        for reason, token in bad.items():
            answer = chat(daemon, token)
            assert answer.status_code == 401, (reason, answer.text)
            assert answer.json()["error"]["message"] == f"Invalid bearer token: {reason}."
            assert answer.headers["www-authenticate"].startswith("Bearer")
        assert chat(daemon, MASTER_KEY).status_code == 200  # keys work alongside
        anthropic = httpx.post(  # Anthropic's route and error shape, the token in x-api-key
            daemon.url + "/v1/messages",
            json={"model": "mock", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
            headers={"x-api-key": bad["token expired"], "anthropic-version": "2023-06-01"},
            timeout=10,
        )
        assert anthropic.status_code == 401
        assert anthropic.json()["error"] == {
            "type": "authentication_error",
            "message": "Invalid bearer token: token expired.",
        }

        def logged() -> list[dict[str, Any]]:
            return [line for line in daemon.logs() if line.get("msg") == "request"]

        assert wait_until(lambda: len(logged()) >= 11, timeout=10)
        clients = [line.get("client") for line in logged() if line.get("status") == 200]
        assert clients[:2] == ["alice", "erin"]
        loaded = [line for line in daemon.logs() if line["msg"] == "OIDC signing keys loaded"]
        assert loaded and loaded[0]["kids"] == ["ec-1", "rsa-1"]
        refused = [line for line in daemon.logs() if "unauthorized" in line.get("msg", "")]
        assert {line["reason"] for line in refused} >= {
            f"Invalid bearer token: {reason}." for reason in bad
        }
        text = daemon.stdout_path.read_text() + daemon.stderr_text()
        for token in (good_rsa, good_ec, *bad.values()):
            assert token not in text
            assert token.split(".")[2] not in text or not token.split(".")[2]

    def test_groups_limit_and_restrict(self, issuer: LocalIssuer, start_daemon: Any) -> None:
        """An intern's token may use only 'mock' (403 for 'other') and has the group's
        bucket of 2 (429 after), counted per name whatever the token."""
        daemon = start_daemon(daemon_config(issuer.issuer))
        intern = issuer.token(sub="ivy", groups=["interns"])
        answer = chat(daemon, intern, {**CHAT, "model": "other"})
        assert answer.status_code == 403, answer.text
        assert answer.headers["x-ratelimit-limit"] == "2"
        assert chat(daemon, issuer.token(sub="ivy", groups=["interns"], jti="2")).status_code == 200
        limited = chat(daemon, issuer.token(sub="ivy", groups=["interns"], jti="3"))
        assert limited.status_code == 429 and "'ivy'" in limited.json()["error"]["message"]
        assert chat(daemon, issuer.token(sub="zed")).status_code == 200  # others unaffected

    def test_issuer_down(self, issuer: LocalIssuer, start_daemon: Any) -> None:
        """Issuer gone after start: cached keys still work. Never reachable: the daemon
        starts anyway and tokens get 503 with Retry-After."""
        daemon = start_daemon(daemon_config(issuer.issuer))
        token = issuer.token(sub="frank")
        assert chat(daemon, token).status_code == 200
        issuer.stop()
        assert chat(daemon, issuer.token(sub="frank", jti="again")).status_code == 200

        nowhere = f"http://127.0.0.1:{free_port()}/realms/none"
        lonely = start_daemon(daemon_config(nowhere))
        answer = chat(lonely, issuer.token(iss=nowhere))
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "30"
        assert "unreachable" in answer.json()["error"]["message"]
        assert httpx.get(lonely.url + "/health", timeout=5).status_code == 200
        assert any("could not be fetched" in json.dumps(line) for line in lonely.logs())

    def test_ledger_and_metrics(
        self, issuer: LocalIssuer, start_daemon: Any, tmp_path: Any
    ) -> None:
        """The usage ledger records the token's name; refused tokens count as auth failures."""
        from tests.conftest import fkllm

        ledger = tmp_path / "usage.sqlite3"
        usage = f'\n[usage]\nenabled = true\npath = "{ledger}"\n'
        daemon = start_daemon(daemon_config(issuer.issuer) + usage)
        for _ in range(2):
            assert chat(daemon, issuer.token(sub="grace")).status_code == 200
        assert chat(daemon, issuer.token(aud="nope")).status_code == 401
        metrics = httpx.get(daemon.url + "/metrics", timeout=5).json()
        assert metrics["auth_failures"] == 1
        assert daemon.stop() == 0
        by_key = fkllm("usage", "--db", str(ledger), "--json")
        assert by_key.returncode == 0, by_key.stderr
        groups = {g["group"]: g["requests"] for g in json.loads(by_key.stdout)["groups"]}
        assert groups["grace"] == 2

    def test_reload_keeps_the_keys(self, issuer: LocalIssuer, start_daemon: Any) -> None:
        """A reload while the issuer is down keeps the keys fetched before it."""
        import signal

        daemon = start_daemon(daemon_config(issuer.issuer))
        assert chat(daemon, issuer.token(sub="heidi")).status_code == 200
        issuer.stop()
        daemon.signal(signal.SIGHUP)
        assert wait_until(
            lambda: any(line["msg"] == "configuration reloaded" for line in daemon.logs()), 15
        )
        assert chat(daemon, issuer.token("ec-1", sub="heidi", jti="r")).status_code == 200

    def test_two_workers(self, issuer: LocalIssuer, start_daemon: Any, tmp_path: Any) -> None:
        """With server.workers = 2 each worker fetches the keys and accepts tokens."""
        runtime = tmp_path / "run"
        runtime.mkdir()
        daemon = start_daemon(
            daemon_config(issuer.issuer),
            args=["--workers", "2"],
            env={"RUNTIME_DIRECTORY": str(runtime)},
        )
        for i in range(6):
            answer = chat(daemon, issuer.token(sub="ivan", jti=str(i)))
            assert answer.status_code == 200, answer.text
        assert wait_until(lambda: issuer.jwks_hits >= 2, 10)


def test_a_jwt_is_never_the_master_key(issuer: LocalIssuer) -> None:
    """is_master (health, metrics) answers False for any JWT, even before keys exist."""
    auth = Authenticator(AuthConfig(master_key=MASTER_KEY), oidc=OidcVerifier(oidc_config(issuer)))
    assert not auth.is_master(f"Bearer {issuer.token()}", None)
    assert auth.is_master(f"Bearer {MASTER_KEY}", None)


async def test_a_token_cannot_pass_for_a_key(issuer: LocalIssuer) -> None:
    """A name claim equal to a client key's name (or 'master') is refused: it would share
    that key's bucket and its lines in the logs and the ledger."""
    from fkllmproxy.config.schema import ClientKey

    verifier = await loaded_verifier(issuer)
    team = ClientKey(name="team-a", key_sha256="0" * 64)
    Authenticator(AuthConfig(master_key=MASTER_KEY, keys=[team]), oidc=verifier)
    for name in ("team-a", "master"):
        assert reason_of(verifier, issuer.token(sub=name)) == "the 'sub' claim names a client key"
    assert verifier.verify(issuer.token(sub="team-b")).name == "team-b"


BUDGET_CONFIG = """
[[pricing]]
model = "mock-1"
input_per_mtok = 0
output_per_mtok = 1000

[auth.oidc]
issuer = "{issuer}"
audience = "{audience}"

[[auth.oidc.groups]]
claim_value = "team"
models = ["mock"]
budget_usd = 0.02
budget_period = "day"
"""


def test_a_group_budget_is_shared_by_its_members(issuer: LocalIssuer, start_daemon: Any) -> None:
    """Members of a budgeted group draw on one spend: once two of them have spent it,
    a third is refused too (429 budget_exceeded), and a token of no group is not."""
    config = MOCK_CONFIG + BUDGET_CONFIG.format(issuer=issuer.issuer, audience=AUDIENCE)
    daemon = start_daemon(config)
    statuses = []
    for i in range(40):
        token = issuer.token(sub=("ann", "bob")[i % 2], groups=["team"], jti=f"n{i}")
        answer = chat(daemon, token)
        statuses.append(answer.status_code)
        if answer.status_code != 200:
            break
    assert statuses[-1] == 429 and statuses.count(200) >= 2
    refused = chat(daemon, issuer.token(sub="cy", groups=["team"]))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert "'group:team'" in refused.json()["error"]["message"]
    assert chat(daemon, issuer.token(sub="dee")).status_code == 200


def test_a_group_budget_survives_a_restart(
    issuer: LocalIssuer, start_daemon: Any, tmp_path: Path
) -> None:
    """On the memory backend a group's spend comes back from the ledger, which records
    the budget each request was charged to: after a restart the spent group is still
    refused, whichever member asks, and a member of no group is not."""
    ledger = tmp_path / "usage.sqlite3"
    config = (
        MOCK_CONFIG
        + BUDGET_CONFIG.format(issuer=issuer.issuer, audience=AUDIENCE)
        + f'\n[usage]\nenabled = true\npath = "{ledger}"\n'
    )
    first = start_daemon(config)
    for i in range(40):
        token = issuer.token(sub=("ann", "bob")[i % 2], groups=["team"], jti=f"r{i}")
        if chat(first, token).status_code != 200:
            break
    else:
        raise AssertionError("the group's budget never ran out")
    assert first.stop() == 0
    with sqlite3.connect(ledger) as db:
        charged = db.execute(
            "SELECT DISTINCT key_name, budget_name FROM usage WHERE status = 200 ORDER BY 1"
        ).fetchall()
    assert charged == [("ann", "group:team"), ("bob", "group:team")]

    again = start_daemon(config)
    refused = chat(again, issuer.token(sub="cy", groups=["team"]))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert "'group:team'" in refused.json()["error"]["message"]
    assert chat(again, issuer.token(sub="dee")).status_code == 200
