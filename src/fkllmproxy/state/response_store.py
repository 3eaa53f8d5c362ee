"""Stored ``/v1/responses`` answers, for ``previous_response_id`` and ``GET /v1/responses/{id}``.

Each record lives in the state backend's ``ResponseCacheStore`` (under
``responses:<id>``, expiring after ``[responses] ttl_secs``), so with Redis every worker
and host sees it. It holds the key name that created it (only that key may read or
continue it), the provider that answered when it was passed through untouched, the
``response`` object and the conversation that led to it (its input items, a previous
response's included).

The byte bound (``[responses] max_stored_bytes``) is kept by this process: it remembers
what it stored, oldest first, and when the total passes the bound it overwrites the
oldest records with an expired tombstone, which then reads as missing. An evicted
response therefore counts as expired, as an expired one does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import msgspec

from fkllmproxy.state.base import ResponseCacheStore

__all__ = ["ResponseStore", "StoredResponse"]

_PREFIX = "responses:"
_TOMBSTONE = b""
_TOMBSTONE_TTL = 0.001


class StoredResponse(msgspec.Struct, frozen=True):
    """One kept response. ``response`` and ``history`` stay encoded JSON until used."""

    owner: str
    response: msgspec.Raw
    history: msgspec.Raw
    provider: str | None = None


_encode = msgspec.json.Encoder().encode
_decoder = msgspec.json.Decoder(StoredResponse)


class ResponseStore:
    """Save and load ``StoredResponse`` records on ``store`` within a byte bound."""

    def __init__(
        self, store: ResponseCacheStore, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._clock = clock
        self._kept: deque[tuple[str, int, float]] = deque()  # (id, bytes, expires at)
        self._bytes = 0

    async def save(
        self, response_id: str, record: StoredResponse, *, ttl_secs: float, max_bytes: int
    ) -> None:
        """Keep ``record`` for ``ttl_secs``; evict the oldest ones past ``max_bytes``."""
        value = _encode(record)
        if len(value) > max_bytes:
            return  # larger than the whole bound: evicted at once
        now = self._clock()
        while self._kept and self._kept[0][2] <= now:
            self._bytes -= self._kept.popleft()[1]
        await self._store.cache_set(_PREFIX + response_id, value, ttl_secs)
        self._kept.append((response_id, len(value), now + ttl_secs))
        self._bytes += len(value)
        while self._bytes > max_bytes:
            oldest, size, _ = self._kept.popleft()
            self._bytes -= size
            await self._store.cache_set(_PREFIX + oldest, _TOMBSTONE, _TOMBSTONE_TTL)

    async def load(self, response_id: str, owner: str) -> StoredResponse | None:
        """The record, if it exists, has not expired or been evicted, and ``owner`` made it."""
        value = await self._store.cache_get(_PREFIX + response_id)
        if not value:
            return None
        try:
            record = _decoder.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        return record if record.owner == owner else None
