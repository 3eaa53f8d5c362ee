"""A model's targets, ready to call, and the order one request tries them in.

The order is the configured one, except that neighbouring targets that all give a
``weight`` form a group sharing one place: each request draws the group's order at
random in proportion to the weights (Efraimidis-Spirakis: each target's key is
``u ** (1 / weight)`` for a uniform ``u``, larger keys first), so the first pick splits
load by weight and the rest of the group stay fallbacks. A target without a weight
keeps its own place, which is why plain lists cost nothing here.
"""

from __future__ import annotations

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

    def ordered(self, draw: Callable[[], float]) -> list[Leg]:
        """The legs in the order this request tries them."""
        if len(self.groups) == self.size:
            return [group[0] for group in self.groups]
        legs: list[Leg] = []
        for group in self.groups:
            if len(group) == 1:
                legs.extend(group)
            else:
                # Weighted random order (Efraimidis-Spirakis): larger keys go first.
                keyed = [
                    (draw() ** (1.0 / (leg.target.weight or 1.0)), i) for i, leg in enumerate(group)
                ]
                legs.extend(group[i] for _, i in sorted(keyed, reverse=True))
        return legs
