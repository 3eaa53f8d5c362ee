"""Console sessions: signed, expiring tokens that need no shared store.

A session is the cookie ``fkllm_session`` holding ``<issued>.<expires>.<nonce>.<mac>``:
two Unix times, 16 random bytes in hex, and an HMAC-SHA256 over the first three under a
secret derived from the master key. Any worker (or host) with the same master key can
check it, so several workers need nothing shared; rotating the master key changes the
secret and so ends every session. Lowering ``[ui] session_hours`` shortens sessions
already issued, since the age is checked against the setting in force.

The CSRF token of a session is another MAC over its nonce: the page carries it in a
hidden field (or the ``x-csrf-token`` header for scripts) and every change is refused
without it. ``SameSite=Strict`` alone would leave same-site attackers and old browsers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["COOKIE", "Session", "SessionKeys"]

COOKIE = "fkllm_session"
_CONTEXT = b"fkllm console session v1"
_SKEW_SECS = 60.0  # a token issued "in the future" by a worker whose clock runs ahead


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Session:
    """A checked session: when it started and ends, and the nonce that names it."""

    issued: int
    expires: int
    nonce: str

    @property
    def payload(self) -> str:
        return f"{self.issued}.{self.expires}.{self.nonce}"

    @property
    def label(self) -> str:
        """A short name for this session in logs ("who" did a change), logged at sign-in
        too: a hash of the nonce, so a log reader learns nothing that signs anything."""
        return hashlib.sha256(self.nonce.encode()).hexdigest()[:12]


class SessionKeys:
    """Issues and checks session tokens for one master key.

    ``clock`` is wall time in seconds (injected by tests to expire sessions).
    """

    def __init__(self, master_key: str, clock: Callable[[], float] = time.time) -> None:
        digest = hashlib.sha256(master_key.encode("utf-8", "surrogateescape")).digest()
        self._secret = hmac.new(digest, _CONTEXT, hashlib.sha256).digest()
        self.clock = clock

    def _mac(self, text: str) -> str:
        return _b64(hmac.new(self._secret, text.encode(), hashlib.sha256).digest())

    def issue(self, hours: float) -> tuple[str, Session]:
        """A new session lasting ``hours``: the cookie value and what it stands for."""
        now = int(self.clock())
        session = Session(now, now + max(1, int(hours * 3600)), secrets.token_hex(16))
        return f"{session.payload}.{self._mac(session.payload)}", session

    def check(self, token: str | None, hours: float) -> Session | None:
        """The session ``token`` stands for, or ``None`` if forged, malformed or expired."""
        if not token or len(token) > 200:
            return None
        parts = token.split(".")
        if len(parts) != 4 or not (parts[0].isdigit() and parts[1].isdigit()):
            return None
        session = Session(int(parts[0]), int(parts[1]), parts[2])
        if not hmac.compare_digest(self._mac(session.payload).encode(), parts[3].encode()):
            return None
        now = self.clock()
        if now >= session.expires or now >= session.issued + hours * 3600:
            return None
        if session.issued > now + _SKEW_SECS:
            return None
        return session

    def csrf_token(self, session: Session) -> str:
        """The token every state-changing form of ``session`` must carry."""
        return self._mac("csrf." + session.nonce)[:32]

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        if not presented:
            return False
        given = presented[:64].encode("utf-8", "surrogateescape")
        return hmac.compare_digest(self.csrf_token(session).encode(), given)
