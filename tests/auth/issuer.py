"""A real OIDC issuer on 127.0.0.1 for the tests: discovery, a JWKS, tokens minted with PyJWT.

It serves ``/.well-known/openid-configuration`` and ``/jwks`` from a thread, with an RSA
and an EC key made with ``cryptography``; ``rotate`` adds a new key, ``stop`` takes it
off the network (connections are then refused), ``hits`` counts requests per path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "fkllmproxy-tests"


class _Key:
    def __init__(self, kid: str, kind: str) -> None:
        self.kid = kid
        if kind == "RSA":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.alg = "RS256"
            self.jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.alg = "ES256"
            self.jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        self.jwk.update({"kid": kid, "use": "sig", "alg": self.alg})

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LocalIssuer:
    """An OpenID Connect issuer on a free loopback port, started on construction."""

    def __init__(self) -> None:
        self.keys = {"rsa-1": _Key("rsa-1", "RSA"), "ec-1": _Key("ec-1", "EC")}
        self.published = ["rsa-1", "ec-1"]
        self.hits: Counter[str] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self.issuer = f"http://127.0.0.1:{self.port}/realms/test"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.hits[self.path] += 1
                if self.path == "/realms/test/.well-known/openid-configuration":
                    body = {"issuer": issuer.issuer, "jwks_uri": issuer.issuer + "/jwks"}
                elif self.path == "/realms/test/jwks":
                    body = {"keys": [issuer.keys[kid].jwk for kid in issuer.published]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    @property
    def jwks_hits(self) -> int:
        return self.hits["/realms/test/jwks"]

    def rotate(self, kid: str = "rsa-2", kind: str = "RSA") -> str:
        """Publish a new key (the old ones stay published); returns its kid."""
        self.keys[kid] = _Key(kid, kind)
        self.published.append(kid)
        return kid

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": AUDIENCE, "sub": "alice", "iat": now}
        claims.update({"exp": now + 300, "nbf": now - 5})
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self, kid: str = "rsa-1", *, headers: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        """A token signed by ``kid`` (claims default to valid ones; ``None`` drops one)."""
        key = self.keys[kid]
        return jwt.encode(
            self.claims(**claims),
            key.private,
            algorithm=key.alg,
            headers={"kid": kid, **(headers or {})},
        )

    def unsigned_token(self, **claims: Any) -> str:
        """``alg: none``: no signature at all."""
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
        return f"{header}.{_b64(json.dumps(self.claims(**claims)).encode())}."

    def hmac_with_public_key(self, kid: str = "rsa-1", **claims: Any) -> str:
        """The key-confusion attack: HS256 "signed" with the issuer's public key as secret."""
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        payload = _b64(json.dumps(self.claims(**claims)).encode())
        signing_input = f"{header}.{payload}".encode()
        mac = hmac.new(self.keys[kid].public_pem(), signing_input, hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(mac)}"


def tampered(token: str) -> str:
    """``token`` with its payload changed (another subject) and the signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "mallory"
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
