"""The semantic cache's entries in Redis, shared by every worker and daemon using it.

Per model, under ``<key_prefix>sem:<model>:``:

- ``seq``: a counter; each entry gets the next number as its id (never expires, so ids
  only grow and a process knows which entries it has not seen yet);
- ``ids``: the ids of the kept entries, oldest first, never longer than ``max_entries``;
- ``e:<id>``: the entry (msgpack), expiring after the model's ``ttl_secs``.

Adding is one Lua script (number, store, append, and delete the oldest entries past the
bound), so the bound holds however many daemons write. Each process keeps a
``VectorIndex`` of the entries' vectors and, before a lookup, reads ``seq`` and fetches
the entries added since it last looked (at most ``max_entries`` of them, in batches):
one round trip when nothing is new. A match is fetched again by id before it is served,
so an entry another daemon evicted, or one that expired, is never replayed. The keys
are built inside the script, so this needs a single Redis (not Redis Cluster), as the
rest of the Redis backend does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from fkllmproxy.state.base import StateUnavailable
from fkllmproxy.state.semantic import SemanticEntry, SemanticStore, partition_number
from fkllmproxy.state.vector_index import VectorIndex

__all__ = ["RedisSemanticStore"]

# KEYS[1] seq, KEYS[2] ids; ARGV entry key prefix, value, ttl ms, max entries. Returns the id.
_ADD = """
local id = redis.call('INCR', KEYS[1])
redis.call('SET', ARGV[1] .. id, ARGV[2], 'PX', tonumber(ARGV[3]))
redis.call('RPUSH', KEYS[2], id)
local over = redis.call('LLEN', KEYS[2]) - tonumber(ARGV[4])
while over > 0 do
  redis.call('DEL', ARGV[1] .. redis.call('LPOP', KEYS[2]))
  over = over - 1
end
return id
"""

_BATCH = 1000
_CANDIDATES = 3  # matches tried when the best one has gone from Redis meanwhile
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(SemanticEntry).decode


class RedisSemanticStore(SemanticStore):
    """One model's entries in Redis, searched in a local index kept in step with it."""

    def __init__(
        self,
        redis: Any,
        prefix: str,
        model: str,
        max_entries: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        base = f"{prefix}sem:{model}:"
        self._seq_key = base + "seq"
        self._ids_key = base + "ids"
        self._entry_prefix = base + "e:"
        self._add = redis.register_script(_ADD)
        self.max_entries = max_entries
        self.index = VectorIndex(max_entries)
        self.clock = clock
        self.seen = 0  # the highest id loaded into the index

    async def _run(self, coro: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await coro
        except (RedisError, OSError) as exc:
            raise StateUnavailable(f"redis: {exc}") from exc

    async def add(self, entry: SemanticEntry, ttl_secs: float) -> None:
        entry = msgspec.structs.replace(entry, expires_at=self.clock() + ttl_secs)
        ttl_ms = max(1, int(ttl_secs * 1000))
        args = [self._entry_prefix, _encode(entry), ttl_ms, self.max_entries]
        await self._run(self._add(keys=[self._seq_key, self._ids_key], args=args))

    async def nearest(
        self, vector: np.ndarray, partition: str
    ) -> tuple[SemanticEntry, float] | None:
        await self._catch_up()
        number = partition_number(partition)
        for _ in range(_CANDIDATES):
            found = self.index.nearest(vector, number, self.clock())
            if found is None:
                return None
            entry_id, similarity = found
            raw = await self._run(self._redis.get(self._entry_prefix + str(entry_id)))
            if raw is None:  # evicted or expired since it was loaded
                self.index.forget(entry_id)
                continue
            entry = _decode(raw)
            return (entry, similarity) if entry.partition == partition else None
        return None

    async def _catch_up(self) -> None:
        """Load the entries added since the last lookup (any daemon's)."""
        current = int(await self._run(self._redis.get(self._seq_key)) or 0)
        if current < self.seen:  # Redis was emptied: start again
            self.index.clear()
            self.seen = 0
        if current == self.seen:
            return
        first = max(self.seen + 1, current - self.max_entries + 1)
        for start in range(first, current + 1, _BATCH):
            ids = range(start, min(start + _BATCH, current + 1))
            keys = [self._entry_prefix + str(i) for i in ids]
            values = await self._run(self._redis.mget(keys))
            for entry_id, raw in zip(ids, values, strict=True):
                if raw is None:
                    continue
                try:
                    entry = _decode(raw)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
                self.index.add(
                    entry_id, entry.unit(), partition_number(entry.partition), entry.expires_at
                )
        self.seen = current
