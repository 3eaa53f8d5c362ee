"""Access control: who is calling and what they may use (how much: ``limits/``)."""

from fkllmproxy.auth.events import AUTH_FAILURE, RATE_LIMIT_HIT, AccessEvents
from fkllmproxy.auth.keys import Authenticator, Caller

__all__ = [
    "AUTH_FAILURE",
    "RATE_LIMIT_HIT",
    "AccessEvents",
    "Authenticator",
    "Caller",
]
