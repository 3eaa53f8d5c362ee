"""Access control: who is calling, what they may use, and how fast."""

from fkllmproxy.auth.events import AUTH_FAILURE, RATE_LIMIT_HIT, AccessEvents
from fkllmproxy.auth.keys import Authenticator, Caller
from fkllmproxy.state.buckets import Decision, RateLimiter

__all__ = [
    "AUTH_FAILURE",
    "RATE_LIMIT_HIT",
    "AccessEvents",
    "Authenticator",
    "Caller",
    "Decision",
    "RateLimiter",
]
