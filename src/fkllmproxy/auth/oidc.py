"""OIDC identities: a client presents a JWT from the operator's issuer instead of a key.

A presented key shaped like a JWT (three base64url segments, the last possibly empty as
in an ``alg: none`` token) is verified with PyJWT against the issuer's keys
(``auth/jwks.py``): the header's ``alg`` must be in ``[auth.oidc] algorithms`` (only
asymmetric ones can be configured, so neither ``none`` nor HMAC-with-the-public-key
gets through) and match the key's type, then the signature, ``iss``, ``aud``, ``exp``
(required) and ``nbf`` are checked with ``leeway_secs``. Each failure is a 401 whose
message names the reason (``token expired``, ``wrong audience``, ``unknown signing
key``, ``bad signature``, ...), never the token. A JWT that arrives while the keys
were never fetched is a 503 (``IdentityProviderUnavailable``): the issuer is down,
not the token bad.

The caller is named by ``name_claim``; its models come from ``models_claim`` when the
token carries it, else from the ``[[auth.oidc.groups]]`` its ``groups_claim`` lists
(their union; a matching group without models allows all), else all; its rate limit is
the first matching group's that has one, else the default. A verified token is
remembered until it expires (or the keys change), so a client sending the same token
pays for the signature check once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

import jwt
from jwt import exceptions as jwt_errors

from fkllmproxy.auth.jwks import (
    MIN_REFETCH_SECS,
    AlgorithmMismatch,
    Fetch,
    JwksCache,
    KeyNotFound,
    KeysUnavailable,
    http_get,
)
from fkllmproxy.auth.keys import Caller, looks_like_jwt
from fkllmproxy.config.schema import KeyRateLimit, OidcConfig, OidcGroup
from fkllmproxy.config.usage_limits import UsageLimits, usage_limits
from fkllmproxy.errors import IdentityProviderUnavailable, Unauthorized

__all__ = ["NO_MODELS", "InvalidToken", "OidcVerifier", "UnknownSigningKey", "looks_like_jwt"]

_SAFE_ALG: Final = re.compile(r"[A-Za-z0-9]{1,16}")
# An allow-list that no model name matches (names are never empty): a token whose models
# claim is an empty list may use nothing, where an empty ``Caller.models`` means "all".
NO_MODELS: Final = frozenset({""})
_MAX_NAME = 256
_MAX_REMEMBERED = 10_000


class InvalidToken(Unauthorized):
    """Raised when a JWT is refused; ``reason`` is the short why (also in the message)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid bearer token: {reason}.")
        self.reason = reason


class UnknownSigningKey(InvalidToken):
    """Raised when no cached key has the token's ``kid`` (a refetch may find it)."""

    def __init__(self) -> None:
        super().__init__("unknown signing key")


# PyJWT's errors, most specific first, and the reason each one is reported as.
_REASONS: Final[tuple[tuple[type[Exception], str], ...]] = (
    (jwt_errors.InvalidSignatureError, "bad signature"),
    (jwt_errors.ExpiredSignatureError, "token expired"),
    (jwt_errors.InvalidAudienceError, "wrong audience"),
    (jwt_errors.InvalidIssuerError, "wrong issuer"),
    (jwt_errors.ImmatureSignatureError, "token not yet valid (nbf)"),
    (jwt_errors.InvalidIssuedAtError, "token issued in the future (iat)"),
    (jwt_errors.InvalidAlgorithmError, "disallowed algorithm"),
    (jwt_errors.InvalidKeyError, "the token's algorithm does not match its signing key"),
    (jwt_errors.DecodeError, "malformed token"),
)


def _reason(exc: Exception) -> str:
    if isinstance(exc, jwt_errors.MissingRequiredClaimError):
        return f"the token has no {exc.claim!r} claim"
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "invalid token"


class OidcVerifier:
    """Turns a JWT into a ``Caller``; built once per config (its key cache with it).

    ``fetch`` and ``clock`` (monotonic) go to the key cache; ``wall`` is the time the
    memory of verified tokens expires them by (PyJWT checks ``exp`` on its own clock).
    """

    def __init__(
        self,
        config: OidcConfig,
        *,
        fetch: Fetch = http_get,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        keys: JwksCache | None = None,
    ) -> None:
        self.config = config
        self.keys = keys or JwksCache(
            config.issuer,
            config.jwks_url,
            refresh_secs=config.jwks_refresh_secs,
            fetch=fetch,
            clock=clock,
        )
        self._wall = wall
        self._allowed = frozenset(config.algorithms)
        self._options: Any = {"require": ["exp", "iss", "aud"]}
        self._groups = config.groups
        self._remembered: dict[str, tuple[Caller, float]] = {}
        self._remembered_version = self.keys.version
        self._reserved: frozenset[str] = frozenset()

    def reserve(self, names: Iterable[str]) -> None:
        """Refuse tokens whose name claim is one of ``names`` (the client keys' names and
        ``master``): a token must not be counted, limited and logged as a key."""
        self._reserved = frozenset(names)
        self._remembered.clear()

    def start(self) -> None:
        """Fetch the keys in the background from now on (inside the event loop)."""
        self.keys.start()

    async def aclose(self) -> None:
        await self.keys.aclose()

    def verify(self, token: str) -> Caller:
        """The caller ``token`` identifies, with the cached keys only.

        Raises ``InvalidToken`` (401, ``UnknownSigningKey`` for an unknown ``kid``) or
        ``IdentityProviderUnavailable`` (503) when no keys were ever fetched.
        """
        if self._remembered_version != self.keys.version:
            self._remembered.clear()
            self._remembered_version = self.keys.version
        remembered = self._remembered.get(token)
        if remembered is not None:
            if self._wall() < remembered[1]:
                return remembered[0]
            del self._remembered[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt_errors.PyJWTError:
            raise InvalidToken("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._allowed:
            shown = f" {alg!r}" if isinstance(alg, str) and _SAFE_ALG.fullmatch(alg) else ""
            raise InvalidToken(f"disallowed algorithm{shown}")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("malformed token")
        try:
            key = self.keys.lookup(kid, alg)
        except KeyNotFound:
            raise UnknownSigningKey() from None
        except AlgorithmMismatch:
            raise InvalidToken("the token's algorithm does not match its signing key") from None
        except KeysUnavailable:
            raise IdentityProviderUnavailable(
                "The identity provider's signing keys could not be fetched yet "
                f"(issuer {self.config.issuer} unreachable); try again shortly.",
                retry_after=MIN_REFETCH_SECS,
            ) from None
        config = self.config
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway_secs,
                options=self._options,
            )
        except jwt_errors.PyJWTError as exc:
            raise InvalidToken(_reason(exc)) from None
        caller = self._caller(claims)
        self._remember(token, caller, claims)
        return caller

    async def verify_fresh(self, token: str) -> Caller:
        """``verify``, fetching the keys again once if the ``kid`` is unknown (or none
        were ever fetched): rate-limited and bounded in time by the key cache."""
        try:
            return self.verify(token)
        except (UnknownSigningKey, IdentityProviderUnavailable):
            if not await self.keys.refetch():
                raise
        return self.verify(token)

    def _caller(self, claims: dict[str, Any]) -> Caller:
        config = self.config
        name = claims.get(config.name_claim)
        if not isinstance(name, str) or not name.strip():
            raise InvalidToken(f"the token has no {config.name_claim!r} claim (a string)")
        if len(name) > _MAX_NAME or not name.isprintable():
            raise InvalidToken(f"the {config.name_claim!r} claim is not a usable name")
        if name in self._reserved:
            raise InvalidToken(f"the {config.name_claim!r} claim names a client key")
        groups = _strings(claims.get(config.groups_claim)) if self._groups else frozenset()
        matched = [group for group in self._groups if group.claim_value in groups]
        models: frozenset[str] = frozenset()
        claimed = claims.get(config.models_claim) if config.models_claim else None
        if claimed is not None:
            models = _strings(claimed) or NO_MODELS
        elif matched and all(group.models for group in matched):
            models = frozenset(m for group in matched for m in group.models)
        rate_limit: KeyRateLimit | None = next(
            (group.rate_limit for group in matched if group.rate_limit is not None), None
        )
        return Caller(name=name, models=models, rate_limit=rate_limit, limits=_limits(matched))

    def _remember(self, token: str, caller: Caller, claims: dict[str, Any]) -> None:
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            return
        if len(self._remembered) >= _MAX_REMEMBERED:
            del self._remembered[next(iter(self._remembered))]  # the oldest
        self._remembered[token] = (caller, float(exp) + self.config.leeway_secs)


def _limits(matched: list[OidcGroup]) -> UsageLimits | None:
    """The first matching group's budget (shared by the group: its spend is counted
    under ``group:<claim_value>``) and the first one's tokens per minute (per member)."""
    budgeted = next((group for group in matched if group.budget_usd is not None), None)
    tpm = next((g.tokens_per_minute for g in matched if g.tokens_per_minute is not None), None)
    if budgeted is None:
        return usage_limits("", None, "month", tpm)
    name = f"group:{budgeted.claim_value}"
    return usage_limits(name, budgeted.budget_usd, budgeted.budget_period, tpm)


def _strings(value: Any) -> frozenset[str]:
    """A claim holding names: a list of strings, or one string of space-separated ones."""
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str) and item)
    return frozenset()
