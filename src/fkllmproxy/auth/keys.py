"""Who is calling: the master key, named client keys (stored as SHA-256), or nobody.

Keys arrive as ``Authorization: Bearer <key>`` or ``x-api-key: <key>``. Every key is
looked up by the SHA-256 of what was sent, and the master keys are compared on digests
in constant time, so no comparison ever touches a stored secret and timing tells
nothing about how much of a key was right.

The previous master key (kept by ``fkllm rotate-key --keep-previous``) is accepted for
``previous_key_grace_secs`` after ``rotated_at``, the moment rotate-key wrote down. If
the operator set a previous key by hand, with no ``rotated_at``, the grace counts from
when this process first saw that key, and a reload that keeps it does not restart it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fkllmproxy.config.schema import AuthConfig, ClientKey, KeyRateLimit
from fkllmproxy.config.usage_limits import UsageLimits, usage_limits
from fkllmproxy.errors import Forbidden, IdentityProviderUnavailable, Unauthorized

if TYPE_CHECKING:
    from fkllmproxy.auth.oidc import OidcVerifier

__all__ = [
    "ANONYMOUS",
    "Authenticator",
    "Caller",
    "UsageLimits",
    "key_digest",
    "looks_like_jwt",
    "presented_key",
]


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller. ``name`` appears in logs and metrics; the key never does."""

    name: str
    is_master: bool = False
    models: frozenset[str] = frozenset()
    rate_limit: KeyRateLimit | None = None
    limits: UsageLimits | None = None

    def check_model(self, model: str) -> None:
        """Raise ``Forbidden`` unless this caller may use ``model``."""
        if self.models and model not in self.models:
            allowed = ", ".join(sorted(self.models))
            raise Forbidden(
                f"The key {self.name!r} is not allowed to use model {model!r}. Allowed: {allowed}",
                param="model",
            )


ANONYMOUS = Caller(name="anonymous")
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_MASTER = Caller(name="master", is_master=True)
_MASTER_PREVIOUS = Caller(name="master-previous", is_master=True)


def key_digest(key: str) -> bytes:
    """The SHA-256 of a key as sent (``printf %s KEY | sha256sum`` gives its hex)."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def looks_like_jwt(key: str) -> bool:
    """Whether ``key`` has the shape of a compact JWS: ``header.payload.signature`` in
    base64url (the signature may be empty, as in an ``alg: none`` token, refused later)."""
    return _JWT_SHAPE.fullmatch(key) is not None


def _required_key(authorization: str | None, x_api_key: str | None) -> str:
    key = presented_key(authorization, x_api_key)
    if key is None:
        raise Unauthorized(
            "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'."
        )
    return key


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key the client sent: a Bearer token, else ``x-api-key``; ``None`` if neither."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None


class Authenticator:
    """Maps a presented key to a ``Caller``; built once per config (re-built on reload).

    ``extra_keys`` are client keys from elsewhere than the config file (the key store);
    ``previous`` is the authenticator being replaced, so a reload does not restart the
    grace of a previous master key that has no ``rotated_at``. ``clock`` is wall time.
    ``oidc`` verifies presented keys shaped like a JWT that are no configured key.
    """

    def __init__(
        self,
        config: AuthConfig,
        *,
        extra_keys: Iterable[ClientKey] = (),
        previous: Authenticator | None = None,
        clock: Callable[[], float] = time.time,
        oidc: OidcVerifier | None = None,
    ) -> None:
        self._clock = clock
        self.oidc = oidc
        self._master = key_digest(config.master_key) if config.master_key else None
        self._previous = (
            key_digest(config.previous_master_key) if config.previous_master_key else None
        )
        self._previous_until = self._grace_end(config, previous)
        self._keys: dict[bytes, Caller] = {}
        for key in (*config.keys, *extra_keys):
            self._keys.setdefault(
                bytes.fromhex(key.key_sha256),
                Caller(
                    name=key.name,
                    models=frozenset(key.models),
                    rate_limit=key.rate_limit,
                    limits=usage_limits(
                        key.name, key.budget_usd, key.budget_period, key.tokens_per_minute
                    ),
                ),
            )
        # No master key and no client keys: nobody is asked for a key (loopback only,
        # or with allow_unauthenticated; the config loader enforces that).
        self.required = self._master is not None or bool(self._keys) or oidc is not None
        if oidc is not None:  # a token must not pass for a key in logs, limits, the ledger
            names = {caller.name for caller in self._keys.values()}
            oidc.reserve({ANONYMOUS.name, _MASTER.name, _MASTER_PREVIOUS.name, *names})

    def _grace_end(self, config: AuthConfig, previous: Authenticator | None) -> float:
        if self._previous is None:
            return 0.0
        if config.rotated_at is not None:
            return config.rotated_at.timestamp() + config.previous_key_grace_secs
        if previous is not None and previous._previous == self._previous:
            return previous._previous_until
        return self._clock() + config.previous_key_grace_secs

    def start(self) -> None:
        """Start fetching the OIDC issuer's keys, if any (inside the event loop)."""
        if self.oidc is not None:
            self.oidc.start()

    async def aclose(self) -> None:
        if self.oidc is not None:
            await self.oidc.aclose()

    @property
    def key_count(self) -> int:
        """How many client keys (besides the master key) this authenticator knows."""
        return len(self._keys)

    def authenticate(self, authorization: str | None, x_api_key: str | None) -> Caller:
        """The caller for these headers; ``Unauthorized`` if the key is missing or wrong.

        A JWT is checked against the issuer keys cached so far (``authenticate_request``
        may also fetch them again).
        """
        if not self.required:
            return ANONYMOUS
        key = _required_key(authorization, x_api_key)
        caller = self._known(key)
        if caller is not None:
            return caller
        if self.oidc is not None and looks_like_jwt(key):
            return self.oidc.verify(key)
        raise Unauthorized("Invalid API key.")

    async def authenticate_request(
        self, authorization: str | None, x_api_key: str | None
    ) -> Caller:
        """``authenticate``, but a JWT signed with a key not cached yet may wait (briefly,
        and at most once per 30 s for everyone) for the issuer's keys to be fetched again."""
        if self.oidc is None or not self.required:
            return self.authenticate(authorization, x_api_key)
        key = _required_key(authorization, x_api_key)
        caller = self._known(key)
        if caller is not None:
            return caller
        if looks_like_jwt(key):
            return await self.oidc.verify_fresh(key)
        raise Unauthorized("Invalid API key.")

    def _known(self, key: str) -> Caller | None:
        """The master key's or a client key's caller; ``None`` for any other key."""
        digest = key_digest(key)
        if self._master is not None and hmac.compare_digest(digest, self._master):
            return _MASTER
        caller = self._keys.get(digest)
        if caller is not None:
            return caller
        if self._previous is not None and hmac.compare_digest(digest, self._previous):
            if self._clock() < self._previous_until:
                return _MASTER_PREVIOUS
            raise Unauthorized("Invalid API key (a master key that was rotated out).")
        return None

    def is_master(self, authorization: str | None, x_api_key: str | None) -> bool:
        """Whether these headers carry the master key (no error either way)."""
        try:
            return self.authenticate(authorization, x_api_key).is_master
        except (Unauthorized, IdentityProviderUnavailable):  # a JWT is never the master key
            return False
