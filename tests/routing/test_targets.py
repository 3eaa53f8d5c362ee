"""Grouping of weighted neighbours, and the order one request tries the targets in."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from fkllmproxy.config.schema import CircuitBreakerConfig, ProviderConfig, Target
from fkllmproxy.providers.mock import MockProvider
from fkllmproxy.routing.breaker import CircuitBreaker
from fkllmproxy.routing.targets import Leg, Route
from fkllmproxy.routing.timeouts import TimeLimits


def leg(name: str, weight: float | None = None) -> Leg:
    config = ProviderConfig(name=name, type="mock")
    return Leg(
        target=Target(provider=name, model="m", weight=weight),
        provider=MockProvider(config),
        breaker=CircuitBreaker(name, CircuitBreakerConfig()),
        limits=TimeLimits.of(config),
    )


def names(legs: list[Leg]) -> list[str]:
    return [leg.provider.name for leg in legs]


def draws(*values: float) -> Any:
    source: Iterator[float] = itertools.cycle(values)
    return lambda: next(source)


def test_unweighted_targets_keep_their_places() -> None:
    route = Route([leg("a"), leg("b"), leg("c")])
    assert [names(g) for g in route.groups] == [["a"], ["b"], ["c"]]
    assert names(route.ordered(draws(0.9, 0.1))) == ["a", "b", "c"]


def test_only_weighted_neighbours_share_a_place() -> None:
    route = Route([leg("a", 1), leg("b", 1), leg("c"), leg("d", 2), leg("e")])
    assert [names(g) for g in route.groups] == [["a", "b"], ["c"], ["d"], ["e"]]


def test_a_group_is_ordered_by_its_draws() -> None:
    """Keys are draw ** (1 / weight): the larger key goes first."""
    route = Route([leg("a", 1), leg("b", 1), leg("c")])
    assert names(route.ordered(draws(0.2, 0.8))) == ["b", "a", "c"]
    assert names(route.ordered(draws(0.8, 0.2))) == ["a", "b", "c"]


def test_weight_tilts_the_same_draws() -> None:
    """0.5 ** (1/4) = 0.84 beats 0.7 ** 1: the heavier target wins a lower draw."""
    route = Route([leg("light", 1), leg("heavy", 4)])
    assert names(route.ordered(draws(0.7, 0.5))) == ["heavy", "light"]


def test_affinity_gives_one_session_the_same_order_every_time() -> None:
    """The same affinity value orders a weighted group the same way, whatever the draws."""
    route = Route([leg("a", 1), leg("b", 1), leg("c", 1), leg("z")])
    first = names(route.ordered(draws(0.1), "session-42"))
    for value in (0.3, 0.6, 0.9):
        assert names(route.ordered(draws(value), "session-42")) == first
    assert first[-1] == "z", "an unweighted target keeps its own place"


def test_affinity_still_splits_sessions_by_weight() -> None:
    """Over many sessions the first picks follow the weights (3:1), deterministically."""
    route = Route([leg("heavy", 3), leg("light", 1)])
    firsts = [names(route.ordered(draws(0.5), f"s{i}"))[0] for i in range(2000)]
    assert 1350 < firsts.count("heavy") < 1650
