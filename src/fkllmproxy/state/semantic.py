"""Where the semantic cache keeps its entries: this process's memory, or Redis.

An entry is a question's embedding, the partition it belongs to (a digest of what must
match exactly for its answer to serve: route, model, owner, system prompt, parameters,
embedding model) and the answer's text with its token counts. A ``SemanticStore`` is
one model's entries, bounded (oldest evicted first) and expiring.

- ``MemorySemanticStore``: the entries of this process only. With several workers each
  worker has its own, so a question answered by one worker is a miss on another.
- ``RedisSemanticStore`` (``state/semantic_redis.py``): entries live in Redis, shared by
  every worker and daemon using it; each process keeps a local index of their vectors,
  brought up to date before each lookup.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable

import msgspec
import numpy as np

from fkllmproxy.state.vector_index import VectorIndex

__all__ = ["MemorySemanticStore", "SemanticEntry", "SemanticStore", "partition_number"]


class SemanticEntry(msgspec.Struct, frozen=True, array_like=True):
    """One cached answer and the question it answered (``vector``: float32, unit length)."""

    partition: str
    vector: bytes
    content: str
    finish_reason: str
    expires_at: float  # on the store's clock
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def unit(self) -> np.ndarray:
        return np.frombuffer(self.vector, dtype=np.float32)


def partition_number(partition: str) -> int:
    """The index's int64 form of a partition digest (hex); entries still compare the digest."""
    return int.from_bytes(bytes.fromhex(partition[:16]), "little", signed=True)


class SemanticStore(abc.ABC):
    """One model's semantic cache entries."""

    @abc.abstractmethod
    async def add(self, entry: SemanticEntry, ttl_secs: float) -> None:
        """Keep ``entry`` for ``ttl_secs``, evicting the oldest past the bound."""

    @abc.abstractmethod
    async def nearest(
        self, vector: np.ndarray, partition: str
    ) -> tuple[SemanticEntry, float] | None:
        """The live entry of ``partition`` closest to ``vector``, with its similarity."""


class MemorySemanticStore(SemanticStore):
    """Entries in this process, in a ``VectorIndex`` ring of ``max_entries``."""

    def __init__(self, max_entries: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.index = VectorIndex(max_entries)
        self.clock = clock
        self._entries: dict[int, SemanticEntry] = {}
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def add(self, entry: SemanticEntry, ttl_secs: float) -> None:
        entry = msgspec.structs.replace(entry, expires_at=self.clock() + ttl_secs)
        self._next_id += 1
        evicted = self.index.add(
            self._next_id, entry.unit(), partition_number(entry.partition), entry.expires_at
        )
        if len(self.index) == 1:
            self._entries.clear()  # the index started afresh (first entry, or a new dimension)
        if evicted is not None:
            self._entries.pop(evicted, None)
        self._entries[self._next_id] = entry

    async def nearest(
        self, vector: np.ndarray, partition: str
    ) -> tuple[SemanticEntry, float] | None:
        now = self.clock()
        found = self.index.nearest(vector, partition_number(partition), now)
        if found is None:
            return None
        entry = self._entries.get(found[0])
        if entry is None or entry.partition != partition:
            return None
        return entry, found[1]
