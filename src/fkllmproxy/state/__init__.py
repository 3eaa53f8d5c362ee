"""Where shared state is kept, memory or Redis: rate-limit buckets, cached responses,
circuits, budgets and semantic cache entries, each behind its own small interface
(``state/base.py``); the decisions made on them live in ``limits/`` and ``routing/``."""

from __future__ import annotations

from fkllmproxy.config.schema import Config
from fkllmproxy.state.base import StateBackend, StateUnavailable
from fkllmproxy.state.memory import MemoryState

__all__ = ["MemoryState", "StateBackend", "StateUnavailable", "build_state"]


def build_state(config: Config) -> StateBackend:
    """The backend ``[state]`` asks for (Redis wrapped in its failure policy)."""
    memory = MemoryState(
        max_tracked_callers=config.rate_limit.max_tracked_callers,
        max_cache_entries=config.cache.max_entries,
    )
    if config.state.backend != "redis":
        return memory
    from fkllmproxy.state.redis import RedisState
    from fkllmproxy.state.resilient import ResilientState

    assert config.state.url is not None  # the loader refuses redis without a url
    redis = RedisState(config.state.url, key_prefix=config.state.key_prefix)
    return ResilientState(redis, memory, on_failure=config.state.on_failure)
