"""Who is calling: the master key, named client keys (stored as SHA-256), or nobody.

Keys arrive as ``Authorization: Bearer <key>`` or ``x-api-key: <key>``. The master key
is compared in constant time; client keys are looked up by the SHA-256 of what was
sent, so the comparison never touches a stored secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from fkllmproxy.config.schema import AuthConfig, KeyRateLimit
from fkllmproxy.errors import Forbidden, Unauthorized

__all__ = ["Authenticator", "Caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller. ``name`` appears in logs and metrics; the key never does."""

    name: str
    is_master: bool = False
    models: frozenset[str] = frozenset()
    rate_limit: KeyRateLimit | None = None

    def check_model(self, model: str) -> None:
        """Raise ``Forbidden`` unless this caller may use ``model``."""
        if self.models and model not in self.models:
            allowed = ", ".join(sorted(self.models))
            raise Forbidden(
                f"The key {self.name!r} is not allowed to use model {model!r}. Allowed: {allowed}",
                param="model",
            )


ANONYMOUS = Caller(name="anonymous")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key the client sent, from either header form."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    if x_api_key:
        return x_api_key.strip() or None
    return None


class Authenticator:
    """Maps a presented key to a ``Caller``; built once per config (re-built on reload)."""

    def __init__(self, config: AuthConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._master = _digest(config.master_key) if config.master_key else None
        self._previous = _digest(config.previous_master_key) if config.previous_master_key else None
        self._previous_until = clock() + config.previous_key_grace_secs
        self._clock = clock
        self._keys = {
            bytes.fromhex(key.key_sha256.lower()): Caller(
                name=key.name, models=frozenset(key.models), rate_limit=key.rate_limit
            )
            for key in config.keys
        }
        self.open = self._master is None and not self._keys and config.allow_unauthenticated
        self.required = not (self._master is None and not self._keys)

    def authenticate(self, authorization: str | None, x_api_key: str | None) -> Caller:
        """The caller for these headers; ``Unauthorized`` if the key is missing or wrong."""
        if not self.required:
            return ANONYMOUS
        key = presented_key(authorization, x_api_key)
        if key is None:
            raise Unauthorized(
                "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'."
            )
        digest = _digest(key)
        if self._master is not None and hmac.compare_digest(digest, self._master):
            return Caller(name="master", is_master=True)
        caller = self._keys.get(digest)
        if caller is not None:
            return caller
        if (
            self._previous is not None
            and hmac.compare_digest(digest, self._previous)
            and self._clock() < self._previous_until
        ):
            return Caller(name="master-previous", is_master=True)
        raise Unauthorized("Invalid API key.")

    def is_master(self, authorization: str | None, x_api_key: str | None) -> bool:
        """Whether these headers carry the master key (no error either way)."""
        try:
            return self.authenticate(authorization, x_api_key).is_master
        except Unauthorized:
            return False
