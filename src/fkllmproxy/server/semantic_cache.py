"""The semantic cache: an earlier answer to a close enough question (``cache = "semantic"``).

For a model that opts in (``[[models]] cache = "semantic"`` with a ``semantic`` table),
an eligible request (``server/semantic_request.py`` says which) on any of the four
inbound APIs (chat completions, Anthropic messages, OpenAI Responses, Gemini
``generateContent`` / ``streamGenerateContent``) is embedded through the gateway's
own router and charged to its caller (``server/semantic_embedding.py``), and the
model's store is searched for the nearest earlier question of the same partition. At
or above the model's ``threshold`` its answer is replayed (``x-fkllm-cache:
semantic-hit`` and ``x-fkllm-cache-similarity``) in the request's API, whole or
streamed (the handler renders the ``SemanticHit``: ``semantic_answers.py`` for chat,
``semantic_shapes.py`` for the others); otherwise the request goes upstream
(``x-fkllm-cache: miss``) and its answer, once complete and successful, is stored in
its one canonical form, whichever API asked.

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

import numpy as np

from fkllmproxy.auth import Caller
from fkllmproxy.config.schema import ModelConfig, SemanticCacheConfig
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.providers import Usage
from fkllmproxy.server.cache import cache_directives
from fkllmproxy.server.exchange import ApiRequest
from fkllmproxy.server.semantic_answers import PlainAnswer, answer_of_stream
from fkllmproxy.server.semantic_embedding import embed_question
from fkllmproxy.server.semantic_request import Api, SemanticQuestion, semantic_question
from fkllmproxy.state import StateUnavailable
from fkllmproxy.state.semantic import SemanticEntry, SemanticStore

if TYPE_CHECKING:
    from fkllmproxy.server.runtime import Runtime

__all__ = ["Reader", "SemanticHit", "SemanticPlan", "consult_semantic", "replayed"]

_log = get_logger("cache")
_MAX_RECORDED_BYTES = 4 * 1024 * 1024  # a longer stream is relayed but not stored

Reader = Callable[[bytes], PlainAnswer | None]  # an answer's bytes to the canonical answer


@dataclass(frozen=True, slots=True)
class SemanticHit:
    """A hit: the canonical answer, its token counts and the headers the reply carries."""

    answer: PlainAnswer
    tokens: tuple[int, int]  # prompt, completion, as the answer was made
    headers: dict[str, str]


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

    async def remember_body(
        self, status: int, body: bytes, usage: Usage | None, read: Reader
    ) -> None:
        """Store a whole answer the client got (``read`` says what it carries)."""
        if status == 200 and self.vector is not None and self.may_store:
            await self.remember(read(body), usage)

    async def recording(
        self,
        frames: AsyncIterator[bytes],
        usage: Callable[[], Usage | None],
        read: Reader = answer_of_stream,
    ) -> AsyncIterator[bytes]:
        """Pass a stream through; store its answer once it ended complete."""
        seen: list[bytes] = []
        size = 0
        async for frame in frames:
            if size <= _MAX_RECORDED_BYTES:
                seen.append(frame)
                size += len(frame)
            yield frame
        if size <= _MAX_RECORDED_BYTES:
            await self.remember(read(b"".join(seen)), usage())


async def consult_semantic(
    request: ApiRequest,
    runtime: Runtime,
    model: ModelConfig,
    caller: Caller,
    raw: bytes,
    *,
    api: Api,
) -> tuple[SemanticPlan | None, SemanticHit | None]:
    """The semantic cache's plan for a request of ``api``, and the hit when it is one.

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
        api=api,
        model=model.name,
        owner="*" if settings.shared_across_keys else caller.name,
        embedding_model=settings.embedding_model,
        allow_temperature=settings.allow_temperature,
    )
    if question is None or not (may_read or may_store):
        return None, None
    context = request.context
    vector = await embed_question(
        request, runtime, caller, model.name, settings.embedding_model, question.text
    )
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
    return None, SemanticHit(answer, (entry.prompt_tokens, entry.completion_tokens), headers)


async def replayed(body: bytes) -> AsyncIterator[bytes]:
    """A replayed stream's frames, all made at once, as the stream a reply sends."""
    yield body
