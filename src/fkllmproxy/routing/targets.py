"""A model's targets, ready to call, and the order one request tries them in.

The order is the configured one, except that neighbouring targets that all give a
``weight`` form a group sharing one place: each request draws the group's order at
random in proportion to the weights (Efraimidis-Spirakis: each target's key is
``u ** (1 / weight)`` for a uniform ``u``, larger keys first), so the first pick splits
load by weight and the rest of the group stay fallbacks. A target without a weight
keeps its own place, which is why plain lists cost nothing here.

Session affinity: a request that carries an affinity value (Claude Code's session id)
draws each target's ``u`` from a hash of that value and the target instead of at
random: rendezvous hashing. The same session then gets the same order every time, so
it keeps to one target (and that provider's prompt cache) while the target is healthy
and falls back in a fixed order when it is not, while different sessions still split by
weight.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from fkllmproxy.config.schema import Target
from fkllmproxy.providers import Provider
from fkllmproxy.routing.breaker import CircuitBreaker
from fkllmproxy.routing.timeouts import TimeLimits

__all__ = ["Leg", "Route"]


@dataclass(frozen=True, slots=True)
class Leg:
    """One target, ready to call: its provider, that provider's breaker and limits."""

    target: Target
    provider: Provider
    breaker: CircuitBreaker
    limits: TimeLimits


class Route:
    """A model's legs, grouped for weighted ordering once, when the config is loaded."""

    def __init__(self, legs: list[Leg]) -> None:
        self.groups: list[list[Leg]] = []
        for leg in legs:
            weighted = leg.target.weight is not None
            if weighted and self.groups and self.groups[-1][-1].target.weight is not None:
                self.groups[-1].append(leg)
            else:
                self.groups.append([leg])
        self.size = len(legs)
        self.weighted = len(self.groups) != self.size

    def ordered(self, draw: Callable[[], float], affinity: str | None = None) -> list[Leg]:
        """The legs in the order this request tries them (by ``affinity`` when given)."""
        if not self.weighted:
            return [group[0] for group in self.groups]
        legs: list[Leg] = []
        for group in self.groups:
            if len(group) == 1:
                legs.extend(group)
            else:
                # Weighted random order (Efraimidis-Spirakis): larger keys go first.
                keyed = [
                    (
                        (draw() if affinity is None else _uniform(affinity, leg))
                        ** (1.0 / (leg.target.weight or 1.0)),
                        i,
                    )
                    for i, leg in enumerate(group)
                ]
                legs.extend(group[i] for _, i in sorted(keyed, reverse=True))
        return legs


def _uniform(affinity: str, leg: Leg) -> float:
    """A number in (0, 1) fixed by the affinity value and the target, the same in every
    process (Python's own ``hash`` is salted per process)."""
    key = f"{affinity}\0{leg.target.provider}\0{leg.target.model}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 1) / (2**64 + 2)
