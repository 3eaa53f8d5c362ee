"""Google's OAuth2 service-account flow, faked: key files, JWT-bearer grants, tokens.

A service account signs a JWT (RS256) with ``iss`` = its email, ``aud`` = Google's
token endpoint (or the key file's ``token_uri``), ``scope``, ``iat`` and ``exp``, and posts it as
``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>``; the token
endpoint answers ``{"access_token", "expires_in", "token_type": "Bearer"}``. Errors
follow RFC 6749: ``{"error": "invalid_grant", "error_description": ...}``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["GRANT_TYPE", "KeyPair", "TokenLedger", "check_assertion", "service_account_json"]

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth signs every grant for Google's own token endpoint, whatever the key
# file's ``token_uri`` says; the real endpoint accepts exactly that audience.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
_CLOCK_SKEW = 300


class KeyPair:
    """An RSA key made once per process (generation is the slow part)."""

    _lock = threading.Lock()
    _shared: KeyPair | None = None

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    @classmethod
    def shared(cls) -> KeyPair:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            self._key.public_key().verify(
                signature, signing_input, padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return False
        return True


def service_account_json(
    token_uri: str, key: KeyPair, project: str = "fake-project"
) -> dict[str, Any]:
    """The fields of a service-account key file, pointing its ``token_uri`` at the fake."""
    email = f"fkllm-test@{project}.iam.gserviceaccount.com"
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": "fake0000000000000000000000000000000000key",
        "private_key": key.private_pem,
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": token_uri.rsplit("/", 1)[0] + "/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": token_uri.rsplit("/", 1)[0] + "/certs",
        "client_x509_cert_url": token_uri.rsplit("/", 1)[0] + "/certs/" + email,
        "universe_domain": "googleapis.com",
    }


def write_service_account(path: Path, token_uri: str, key: KeyPair) -> Path:
    path.write_text(json.dumps(service_account_json(token_uri, key), indent=2))
    path.chmod(0o600)
    return path


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class GrantError(Exception):
    """Raised when a token request is refused; ``error`` is the RFC 6749 code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def check_assertion(form_body: bytes, token_uri: str, key: KeyPair | None) -> dict[str, Any]:
    """Validate a JWT-bearer grant; returns the JWT's claims or raises ``GrantError``."""
    form = dict(parse_qsl(form_body.decode("utf-8", "replace")))
    grant = form.get("grant_type")
    if grant != GRANT_TYPE:
        raise GrantError("unsupported_grant_type", f"Invalid grant_type: {grant}")
    assertion = form.get("assertion", "")
    pieces = assertion.split(".")
    if len(pieces) != 3:
        raise GrantError(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe",
        )
    try:
        header = json.loads(_b64decode(pieces[0]))
        claims = json.loads(_b64decode(pieces[1]))
        signature = _b64decode(pieces[2])
    except ValueError:
        raise GrantError("invalid_grant", "Invalid JWT: could not decode the assertion") from None
    if header.get("alg") != "RS256":
        raise GrantError("invalid_grant", f"Invalid JWT: unsupported alg {header.get('alg')!r}")
    if key is not None and not key.verify(f"{pieces[0]}.{pieces[1]}".encode(), signature):
        raise GrantError("invalid_grant", "Invalid JWT Signature.")
    now = time.time()
    for claim in ("iss", "aud", "iat", "exp"):
        if claim not in claims:
            raise GrantError("invalid_grant", f"Invalid JWT: missing claim {claim!r}")
    if claims["aud"] not in (token_uri, GOOGLE_TOKEN_AUDIENCE):
        raise GrantError(
            "invalid_grant", f"Invalid JWT: audience {claims['aud']!r} is not {token_uri!r}"
        )
    if not claims.get("scope") and not claims.get("target_audience"):
        raise GrantError("invalid_scope", "Invalid JWT: no scope requested")
    if not (claims["iat"] - _CLOCK_SKEW <= now <= claims["exp"] + _CLOCK_SKEW):
        raise GrantError(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        )
    return dict(claims)


class TokenLedger:
    """Access tokens issued by the fake, with their expiry; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self.issued = 0

    def issue(self, lifetime_secs: float) -> str:
        with self._lock:
            self.issued += 1
            token = f"ya29.fake-access-token-{self.issued:06d}"
            self._tokens[token] = time.monotonic() + lifetime_secs
            return token

    def valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def expire_all(self) -> None:
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)
