"""Console session tokens: signed, expiring, tied to the master key; CSRF tokens per session."""

from __future__ import annotations

from fkllmproxy.server.ui.session import SessionKeys


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TestSessionKeys:
    def test_a_fresh_token_checks_out(self) -> None:
        """An issued token names the same session when checked."""
        keys = SessionKeys("master-key-1", Clock())
        token, session = keys.issue(12)
        assert keys.check(token, 12) == session
        assert session.expires - session.issued == 12 * 3600

    def test_it_expires_after_session_hours(self) -> None:
        """Past its lifetime (or a lowered session_hours) a token is refused."""
        clock = Clock()
        keys = SessionKeys("master-key-1", clock)
        token, _ = keys.issue(12)
        clock.now += 11 * 3600
        assert keys.check(token, 12) is not None
        assert keys.check(token, 10) is None  # the setting in force wins
        clock.now += 3600
        assert keys.check(token, 12) is None

    def test_a_tampered_or_foreign_token_is_refused(self) -> None:
        """Changing any part, or another master key, breaks the signature."""
        keys = SessionKeys("master-key-1", Clock())
        token, _ = keys.issue(12)
        issued, expires, nonce, mac = token.split(".")
        longer = f"{issued}.{int(expires) + 99999}.{nonce}.{mac}"
        assert keys.check(longer, 12) is None
        assert keys.check("garbage", 12) is None
        assert keys.check("1.2.3.ü", 12) is None
        assert keys.check("", 12) is None
        assert SessionKeys("master-key-2", Clock()).check(token, 12) is None

    def test_csrf_token_is_per_session(self) -> None:
        """Each session has its own CSRF token; a wrong or missing one is refused."""
        keys = SessionKeys("master-key-1", Clock())
        _, one = keys.issue(12)
        _, two = keys.issue(12)
        assert keys.csrf_ok(one, keys.csrf_token(one))
        assert not keys.csrf_ok(one, keys.csrf_token(two))
        assert not keys.csrf_ok(one, None)
        assert not keys.csrf_ok(one, "ü" * 10)
