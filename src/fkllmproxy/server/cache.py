"""Exact-match response cache for chat completions (opt-in per model).

The key is the SHA-256 of the request in canonical form (keys sorted, whitespace
gone), plus the model name and, unless ``shared_across_keys``, the caller's name — so
one key's answers never serve another by default. Whole answers are cached, streamed
ones as the exact SSE bytes the client got, and only when they completed cleanly.
``Cache-Control: no-cache`` skips the lookup and ``no-store`` the store.

An entry is its body behind one byte saying JSON or SSE; entries stored with the
answer's token counts (lower-case marker, then two little-endian uint32) let a hit say
what it avoided (``fkllm_energy_saved_joules``). Entries without them still replay.
The entry format is part of the key (``_FORMAT``), so during a rolling upgrade on a
shared Redis an older daemon never reads an entry it cannot parse (it misses instead).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import msgspec

from fkllmproxy.config.schema import CacheConfig
from fkllmproxy.providers import Usage
from fkllmproxy.state.base import ResponseCacheStore

__all__ = ["CachePlan", "CachedAnswer", "ResponseCache", "plan_cache"]

_JSON, _SSE = b"J", b"S"
_JSON_COUNTED, _SSE_COUNTED = b"j", b"s"  # followed by the answer's token counts
_TOKENS = struct.Struct("<II")
_MAX_TOKENS = 0xFFFFFFFF
_FORMAT = b"\0entry-v2"  # bumped whenever the stored value's layout changes
_MAX_VALUE_BYTES = 4 * 1024 * 1024
_encode_sorted = msgspec.json.Encoder(order="sorted").encode


class CachedAnswer(msgspec.Struct, frozen=True):
    """A cache hit: the body bytes and whether they are an SSE stream."""

    body: bytes
    streamed: bool
    prompt_tokens: int = 0  # of the answer when it was stored (0: not known)
    completion_tokens: int = 0


class ResponseCache:
    def __init__(self, store: ResponseCacheStore, config: CacheConfig) -> None:
        self._store = store
        self._ttl = config.ttl_secs
        self._shared = config.shared_across_keys
        self.hits = 0
        self.misses = 0

    def key_for(self, caller: str, model: str, raw: bytes) -> str:
        """The cache key of a request; the body is canonicalised, not hashed as sent."""
        canonical = _encode_sorted(msgspec.json.decode(raw))
        scope = "*" if self._shared else caller
        digest = hashlib.sha256(canonical)
        digest.update(b"\0" + model.encode() + b"\0" + scope.encode() + _FORMAT)
        return digest.hexdigest()

    async def lookup(self, key: str) -> CachedAnswer | None:
        value = await self._store.cache_get(key)
        if value is None or len(value) < 1:
            self.misses += 1
            return None
        self.hits += 1
        marker = value[:1]
        if marker in (_JSON_COUNTED, _SSE_COUNTED) and len(value) > _TOKENS.size:
            prompt, completion = _TOKENS.unpack_from(value, 1)
            return CachedAnswer(
                value[1 + _TOKENS.size :], marker == _SSE_COUNTED, prompt, completion
            )
        return CachedAnswer(body=value[1:], streamed=marker == _SSE)

    async def store_body(self, key: str, body: bytes, usage: Usage | None = None) -> None:
        if len(body) <= _MAX_VALUE_BYTES:
            await self._store.cache_set(key, _entry(False, usage) + body, self._ttl)

    async def recording(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        end_marker: bytes,
        usage: Callable[[], Usage | None] | None = None,
    ) -> AsyncIterator[bytes]:
        """Pass ``chunks`` through; store them once the stream ended with ``end_marker``.

        A stream cut short or ended by an error frame never reaches its marker (looked
        for in the stream's last event), so only complete answers are replayed. ``usage`` gives the stream's token counts once it
        has ended (the request context's, which the relay fills in).
        """
        seen: list[bytes] = []
        size = 0
        async for chunk in chunks:
            if size <= _MAX_VALUE_BYTES:
                seen.append(chunk)
                size += len(chunk)
            yield chunk
        body = b"".join(seen)
        if size <= _MAX_VALUE_BYTES and end_marker in _last_event(body):
            counted = usage() if usage is not None else None
            await self._store.cache_set(key, _entry(True, counted) + body, self._ttl)


def _last_event(stream: bytes) -> bytes:
    """The last SSE event of ``stream`` (a Responses ``response.completed`` event carries
    the whole response, so its marker can be far more than a few bytes from the end)."""
    trimmed = stream.rstrip()
    start = max(trimmed.rfind(b"\n\n"), trimmed.rfind(b"\r\n\r\n"))
    return trimmed[start + 1 :]


def _entry(streamed: bool, usage: Usage | None) -> bytes:
    """The marker (and token counts, when known) an entry's body is stored behind."""
    if usage is None:
        return _SSE if streamed else _JSON
    return (_SSE_COUNTED if streamed else _JSON_COUNTED) + _TOKENS.pack(
        min(max(usage.prompt_tokens, 0), _MAX_TOKENS),
        min(max(usage.completion_tokens, 0), _MAX_TOKENS),
    )


def cache_directives(header: str | None) -> tuple[bool, bool]:
    """(may read, may store) from a request's ``Cache-Control`` header."""
    if not header:
        return True, True
    directives = {part.strip().lower() for part in header.split(",")}
    return "no-cache" not in directives, "no-store" not in directives


@dataclass(slots=True)
class CachePlan:
    """What the cache does for one request: an answer to replay, or where to store one."""

    hit: CachedAnswer | None
    store_key: str | None
    headers: dict[str, str]

    @property
    def outcome(self) -> str:
        return "miss" if self.hit is None else "hit"


async def plan_cache(
    cache: ResponseCache | None,
    *,
    cached_model: bool,
    caller: str,
    namespace: str,
    raw: bytes,
    cache_control: str | None,
) -> CachePlan | None:
    """Consult the cache for a request, or ``None`` when caching does not apply.

    ``namespace`` keeps routes apart: the same bytes are a valid request on both
    ``/v1/chat/completions`` and ``/v1/messages`` but their answers differ.
    """
    if cache is None or not cached_model:
        return None
    may_read, may_store = cache_directives(cache_control)
    key = cache.key_for(caller, namespace, raw)
    hit = await cache.lookup(key) if may_read else None
    if hit is not None:
        return CachePlan(hit=hit, store_key=None, headers={"x-fkllm-cache": "hit"})
    return CachePlan(
        hit=None, store_key=key if may_store else None, headers={"x-fkllm-cache": "miss"}
    )
