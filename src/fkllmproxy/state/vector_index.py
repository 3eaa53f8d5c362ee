"""A bounded, exact nearest-neighbour index of unit vectors, for the semantic cache.

Why brute force on numpy rather than an approximate index (HNSW in usearch, or
sqlite-vec): the cache is bounded per model (``max_entries``, 10,000 by default), and
one matrix-vector product over that many rows is a fraction of a millisecond, exact,
and needs no deletion support, which an HNSW graph handles poorly under a TTL and an
evict-oldest bound. ``bench/semantic_cache.py`` measures it at 10k and 100k entries
(``docs/performance.md``).

The index is a ring: rows are written in insertion order and, once ``capacity`` is
reached, the oldest row is overwritten, so the bound is kept by construction and
evicts the oldest entry. Each row carries its entry id, a partition (the part of the
request that must match exactly: route, model, owner, system prompt, parameters) and
its expiry; a search only considers live rows of the query's partition.
"""

from __future__ import annotations

import os
from typing import Any

# One BLAS thread (set before numpy loads its OpenBLAS, when the operator has not chosen):
# a lookup is one memory-bound matrix-vector product, and BLAS threads spread over a busy
# daemon's cores fight its event loop and each other. Measured on a loaded 2-core host,
# 10,000 x 384: 4.0 ms median with the default threads, 0.58 ms with one.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

__all__ = ["VectorIndex", "unit_vector"]

_GROWTH = 1024  # rows allocated at first, doubled as needed up to the capacity


def unit_vector(values: Any) -> np.ndarray | None:
    """``values`` as a float32 unit vector, or ``None`` when it is empty, zero or not finite."""
    try:
        vector = np.asarray(values, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        return None
    if vector.size == 0 or not np.all(np.isfinite(vector)):
        return None
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not np.isfinite(norm):
        return None
    return vector / np.float32(norm)


class VectorIndex:
    """Up to ``capacity`` unit vectors with ids, partitions and expiry times.

    Not thread-safe; one per model per process, used from the event loop.
    """

    __slots__ = ("_expires", "_ids", "_next", "_partitions", "_size", "_vectors", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._vectors: np.ndarray | None = None
        self._ids = np.zeros(0, dtype=np.int64)
        self._partitions = np.zeros(0, dtype=np.int64)
        self._expires = np.zeros(0, dtype=np.float64)
        self._size = 0  # rows in use
        self._next = 0  # the row the next entry is written to

    def __len__(self) -> int:
        return self._size

    @property
    def dimension(self) -> int | None:
        return None if self._vectors is None else int(self._vectors.shape[1])

    def clear(self) -> None:
        self._vectors = None
        self._ids = np.zeros(0, dtype=np.int64)
        self._partitions = np.zeros(0, dtype=np.int64)
        self._expires = np.zeros(0, dtype=np.float64)
        self._size = self._next = 0

    def add(self, entry_id: int, vector: np.ndarray, partition: int, expires: float) -> int | None:
        """Add a unit vector; return the id of the entry it evicted, if the ring was full.

        A vector of another dimension than the index's (the embedding model changed)
        empties the index first: vectors of two models cannot be compared.
        """
        if self._vectors is not None and vector.shape[0] != self._vectors.shape[1]:
            self.clear()
        self._reserve(vector.shape[0])
        assert self._vectors is not None
        row = self._next
        evicted = int(self._ids[row]) if self._size == self.capacity else None
        self._vectors[row] = vector
        self._ids[row] = entry_id
        self._partitions[row] = partition
        self._expires[row] = expires
        self._next = (row + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        return evicted

    def nearest(self, vector: np.ndarray, partition: int, now: float) -> tuple[int, float] | None:
        """The live entry of ``partition`` most similar to ``vector``: (id, cosine similarity)."""
        if self._vectors is None or vector.shape[0] != self._vectors.shape[1] or not self._size:
            return None
        size = self._size
        live = (self._partitions[:size] == partition) & (self._expires[:size] > now)
        if not live.any():
            return None
        similarities = self._vectors[:size] @ vector
        similarities[~live] = -np.inf
        row = int(np.argmax(similarities))
        return int(self._ids[row]), float(min(similarities[row], 1.0))

    def forget(self, entry_id: int) -> None:
        """Make ``entry_id`` unfindable (it was evicted or expired elsewhere)."""
        self._expires[: self._size][self._ids[: self._size] == entry_id] = -np.inf

    def _reserve(self, dimension: int) -> None:
        rows = 0 if self._vectors is None else self._vectors.shape[0]
        if self._next < rows:
            return
        grown = min(self.capacity, max(_GROWTH, rows * 2))
        vectors = np.zeros((grown, dimension), dtype=np.float32)
        if self._vectors is not None:
            vectors[:rows] = self._vectors
        self._vectors = vectors
        self._ids = np.resize(self._ids, grown)
        self._partitions = np.resize(self._partitions, grown)
        self._expires = np.resize(self._expires, grown)
