"""The semantic cache's stores, one per model with ``cache = "semantic"``, per runtime.

Built by ``server/runtime.py`` (only for a config with a semantic model: this imports
numpy) and read by ``server/semantic_cache.py``. With ``[state] backend = "redis"`` a
model's entries live in Redis (``state/semantic_redis.py``), else in this process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fkllmproxy.config.schema import Config
from fkllmproxy.state import StateBackend
from fkllmproxy.state.semantic import MemorySemanticStore, SemanticStore

__all__ = ["SemanticCaches", "build_semantic_caches"]


@dataclass(eq=False)
class SemanticCaches:
    """A runtime's semantic stores, one per model with ``cache = "semantic"``.

    ``kinds`` records what each store was built for, so a reload keeps a model's
    entries unless its embedding model, its bound or the state backend changed.
    """

    stores: dict[str, SemanticStore]
    kinds: dict[str, tuple[str, int, str]] = field(default_factory=dict)


def build_semantic_caches(
    config: Config, state: StateBackend, previous: SemanticCaches | None
) -> SemanticCaches | None:
    """The stores for ``config``'s semantic models (``None`` when it has none)."""
    caches = SemanticCaches(stores={})
    for model in config.models:
        semantic = model.semantic
        if model.cache != "semantic" or semantic is None:
            continue
        kind = (semantic.embedding_model, semantic.max_entries, config.state.backend)
        kept = previous.stores.get(model.name) if previous is not None else None
        if kept is not None and previous is not None and previous.kinds[model.name] == kind:
            caches.stores[model.name] = kept
        else:
            caches.stores[model.name] = _new_store(state, model.name, semantic.max_entries)
        caches.kinds[model.name] = kind
    return caches if caches.stores else None


def _new_store(state: StateBackend, model: str, max_entries: int) -> SemanticStore:
    return state.shared_semantic(model, max_entries) or MemorySemanticStore(max_entries)
