"""A minimal OIDC issuer for the benchmark: one RSA key, its JWKS served from a thread.

``bench.inproc --caller jwt`` measures what a JWT-authenticated request costs next to a
plain key; the gateway under test fetches this issuer's JWKS over loopback HTTP exactly
as it fetches a real issuer's, and the token is minted with PyJWT.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["AUDIENCE", "BenchIssuer"]

AUDIENCE = "fkllm-bench"


class BenchIssuer:
    """Serves ``/jwks`` on a free loopback port until ``stop``."""

    def __init__(self) -> None:
        # Imported here: the rest of the harness runs without PyJWT (bench/setup.sh adds it).
        from cryptography.hazmat.primitives.asymmetric import rsa
        from jwt.algorithms import RSAAlgorithm

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
        jwk.update({"kid": "bench-1", "use": "sig", "alg": "RS256"})
        body = json.dumps({"keys": [jwk]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def token(self, subject: str = "bench-user") -> str:
        import jwt

        now = int(time.time())
        claims = {"iss": self.url, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + 7200}
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": "bench-1"})

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
