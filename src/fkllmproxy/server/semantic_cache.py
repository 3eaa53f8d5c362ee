"""The semantic cache: an earlier answer to a close enough question (``cache = "semantic"``).

For a model that opts in (``[[models]] cache = "semantic"`` with a ``semantic`` table),
an eligible chat request (``server/semantic_request.py`` says which) is embedded
through the gateway's own router, exactly as ``POST /v1/embeddings`` would call the
configured embedding model (its targets, fallbacks, retries, circuit breakers and
upstream metrics), and the model's store is searched for the nearest earlier question
of the same partition. At or above the model's ``threshold`` its answer is replayed
(``x-fkllm-cache: semantic-hit`` and ``x-fkllm-cache-similarity``), as JSON or as a
stream, whichever the request asked for; otherwise the request goes upstream
(``x-fkllm-cache: miss``) and its answer, once complete and successful, is stored.

The cache never stands in the way: a failed embedding call, an answer that is not
plain text or an unreachable Redis make the request an ordinary uncached one.
``Cache-Control: no-cache`` skips the lookup and ``no-store`` the store, as for the
exact cache. numpy is imported only by a daemon with a semantic model: this module is
imported lazily, by the runtime that has one and the handler of such a model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from fkllmproxy.config.schema import ModelConfig, SemanticCacheConfig
from fkllmproxy.errors import ClientDisconnected, FkllmError
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.providers import Completion, EmbeddingRequest, Provider, Usage
from fkllmproxy.routing import Attempted
from fkllmproxy.server.cache import cache_directives
from fkllmproxy.server.disconnect import unless_disconnected
from fkllmproxy.server.exchange import ApiRequest, Reply, json_reply, sse_reply
from fkllmproxy.server.semantic_answers import (
    PlainAnswer,
    answer_of_completion,
    answer_of_stream,
    replay_body,
    replay_frames,
)
from fkllmproxy.server.semantic_request import SemanticQuestion, semantic_question
from fkllmproxy.state import StateUnavailable
from fkllmproxy.state.semantic import SemanticEntry, SemanticStore
from fkllmproxy.state.vector_index import unit_vector

if TYPE_CHECKING:
    from fkllmproxy.config import Target
    from fkllmproxy.server.runtime import Runtime

__all__ = ["SemanticPlan", "consult_semantic"]

_log = get_logger("cache")
_encode = msgspec.json.Encoder().encode
_MAX_RECORDED_BYTES = 4 * 1024 * 1024  # a longer stream is relayed but not stored


class _Embedding(msgspec.Struct):
    embedding: list[float]


class _Embeddings(msgspec.Struct):
    data: list[_Embedding]


_embeddings_decoder = msgspec.json.Decoder(_Embeddings)


@dataclass(eq=False)
class SemanticPlan:
    """A miss: where its answer goes once it is complete (nowhere without a vector)."""

    store: SemanticStore
    settings: SemanticCacheConfig
    question: SemanticQuestion
    vector: np.ndarray | None
    may_store: bool
    headers: dict[str, str]

    async def remember(self, answer: PlainAnswer | None, usage: Usage | None) -> None:
        """Store ``answer`` (a successful, plain text one) for later questions."""
        if answer is None or self.vector is None or not self.may_store:
            return
        entry = SemanticEntry(
            partition=self.question.partition,
            vector=self.vector.tobytes(),
            content=answer.content,
            finish_reason=answer.finish_reason,
            expires_at=0.0,
            prompt_tokens=usage.prompt_tokens if usage is not None else 0,
            completion_tokens=usage.completion_tokens if usage is not None else 0,
        )
        try:
            await self.store.add(entry, self.settings.ttl_secs)
        except StateUnavailable as exc:
            _log.warning("semantic cache: the answer was not stored", extra={"reason": str(exc)})

    async def remember_completion(self, result: Completion) -> None:
        if result.status == 200:
            await self.remember(answer_of_completion(result.body), result.usage)

    async def recording(
        self, frames: AsyncIterator[bytes], usage: Callable[[], Usage | None]
    ) -> AsyncIterator[bytes]:
        """Pass a stream through; store its answer once it ended with ``[DONE]``."""
        seen: list[bytes] = []
        size = 0
        async for frame in frames:
            if size <= _MAX_RECORDED_BYTES:
                seen.append(frame)
                size += len(frame)
            yield frame
        if size <= _MAX_RECORDED_BYTES:
            await self.remember(answer_of_stream(b"".join(seen)), usage())


async def consult_semantic(
    request: ApiRequest,
    runtime: Runtime,
    model: ModelConfig,
    caller: str,
    raw: bytes,
    *,
    client_model: str,
    stream: bool,
    include_usage: bool,
) -> tuple[SemanticPlan | None, Reply | None]:
    """The semantic cache's plan for a chat request, and the reply when it is a hit.

    ``(None, None)`` when the request is not one the cache may answer (it then carries
    no ``x-fkllm-cache`` header and is not counted).
    """
    settings = model.semantic
    caches = runtime.semantic
    store = caches.stores.get(model.name) if caches is not None else None
    if settings is None or store is None:
        return None, None
    may_read, may_store = cache_directives(request.headers.get("cache-control"))
    question = semantic_question(
        raw,
        route="chat",
        model=model.name,
        owner="*" if settings.shared_across_keys else caller,
        embedding_model=settings.embedding_model,
        allow_temperature=settings.allow_temperature,
    )
    if question is None or not (may_read or may_store):
        return None, None
    context = request.context
    vector = await _embed(request, runtime, model.name, settings.embedding_model, question.text)
    found = None
    if vector is not None and may_read:
        try:
            found = await store.nearest(vector, question.partition)
        except StateUnavailable as exc:
            _log.warning("semantic cache: lookup failed", extra={"reason": str(exc)})
    if found is None or found[1] < settings.threshold:
        context.cache = "miss"
        headers = {"x-fkllm-cache": "miss"}
        return SemanticPlan(store, settings, question, vector, may_store, headers), None
    entry, similarity = found
    headers = {"x-fkllm-cache": "semantic-hit", "x-fkllm-cache-similarity": f"{similarity:.4f}"}
    context.cache = "semantic-hit"
    context.cache_similarity = round(similarity, 4)
    context.provider = "cache"
    if entry.prompt_tokens or entry.completion_tokens:
        context.replayed = Usage(
            prompt_tokens=entry.prompt_tokens, completion_tokens=entry.completion_tokens
        )
    answer = PlainAnswer(entry.content, entry.finish_reason)
    tokens = (entry.prompt_tokens, entry.completion_tokens)
    if stream:
        frames = replay_frames(client_model, answer, *tokens, include_usage=include_usage)
        return None, sse_reply(_replay(frames), headers)
    return None, json_reply(replay_body(client_model, answer, *tokens), 200, headers)


async def _replay(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _embed(
    request: ApiRequest, runtime: Runtime, model: str, embedding_model: str, text: str
) -> np.ndarray | None:
    """The question's unit vector from the embedding model, through the router.

    ``None`` (logged, never raised) when the call or its answer fails: the request then
    goes upstream like an uncached one. A client that hangs up still ends the request.
    """
    router = runtime.router
    raw = _encode({"model": embedding_model, "input": text})

    async def attempt(provider: Provider, target: Target) -> Completion:
        call = EmbeddingRequest(raw=raw, model=target.model, client_model=embedding_model)
        return await provider.embeddings(call)

    reason: str
    try:
        configured = router.resolve(embedding_model)
        result = await unless_disconnected(
            request.receive, router.call(configured, attempt, Attempted())
        )
    except ClientDisconnected:
        raise
    except FkllmError as exc:
        reason = exc.code
    else:
        vector = None
        if result.status == 200:
            try:
                vector = unit_vector(_embeddings_decoder.decode(result.body).data[0].embedding)
            except (msgspec.DecodeError, msgspec.ValidationError, IndexError):
                vector = None
        if vector is not None:
            return vector
        reason = f"status {result.status}" if result.status != 200 else "no usable embedding"
    _log.warning(
        "semantic cache: the embedding call failed; the request goes upstream uncached",
        extra={"model": model, "embedding_model": embedding_model, "reason": reason},
    )
    return None
