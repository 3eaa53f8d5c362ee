"""Counts of refused requests, and the hook that tells metrics about each one.

The metrics layer owns Prometheus; access control only says what happened. Every
process has one ``AccessEvents`` (on the ``RuntimeHolder``, so it outlives reloads):
read ``auth_failures`` and ``rate_limit_hits`` for totals, or ``subscribe`` a callable
that is called with ``AUTH_FAILURE`` or ``RATE_LIMIT_HIT`` as each one happens::

    holder.access.subscribe(lambda event: COUNTERS[event].inc())
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

__all__ = ["AUTH_FAILURE", "RATE_LIMIT_HIT", "AccessEvents"]

_log = logging.getLogger("fkllmproxy.auth")

AUTH_FAILURE: Final = "auth_failure"
RATE_LIMIT_HIT: Final = "rate_limit_hit"


class AccessEvents:
    """Process-wide totals of 401s and 429s, with listeners called on each."""

    __slots__ = ("_listeners", "auth_failures", "rate_limit_hits")

    def __init__(self) -> None:
        self.auth_failures = 0
        self.rate_limit_hits = 0
        self._listeners: list[Callable[[str], None]] = []

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(event)`` on every auth failure and rate-limit hit from now on."""
        self._listeners.append(listener)

    def auth_failed(self) -> None:
        self.auth_failures += 1
        self._emit(AUTH_FAILURE)

    def rate_limited(self) -> None:
        self.rate_limit_hits += 1
        self._emit(RATE_LIMIT_HIT)

    def _emit(self, event: str) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a metrics bug must not turn a 401 into a 500
                _log.exception("access event listener failed", extra={"event": event})
