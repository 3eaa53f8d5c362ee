"""Access control: who is calling, what they may use, and how fast."""

from fkllmproxy.auth.keys import Authenticator, Caller
from fkllmproxy.auth.ratelimit import Decision, RateLimiter

__all__ = ["Authenticator", "Caller", "Decision", "RateLimiter"]
