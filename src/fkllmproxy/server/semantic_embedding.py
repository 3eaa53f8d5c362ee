"""The semantic cache's embedding call, charged to the caller as ``/v1/embeddings`` is.

The question is embedded through the gateway's own router, exactly as ``POST
/v1/embeddings`` would call the configured embedding model (its targets, fallbacks,
retries, circuit breakers and upstream metrics). The call is the caller's, so it is
accounted as theirs, apart from the request that caused it:

- a usage-ledger row of its own: the request's id, the caller's key name, the
  embedding model, the provider and upstream model that answered, its tokens, cost,
  latency and status (so ``fkllm usage``, the console's Usage page and a key's spend
  show it as an embeddings request);
- its tokens in ``fkllm_tokens_total`` under the embedding model;
- for a caller with limits, its estimate reserved against the budget before the call
  (``server/budget.py``'s ``reserve``, as for any model route) and settled after it
  (its real cost, and its tokens taken from the tokens-per-minute bucket), with its
  own ``Reservation``: the request's own reservation stays the chat call's.

A budget that cannot cover the embedding call does not refuse the request (it was
admitted and its own estimate reserved): the cache is skipped and the request goes
upstream uncached, as it does when the embedding call fails.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import msgspec
import numpy as np

from fkllmproxy.auth import Caller
from fkllmproxy.config import ModelConfig, Target
from fkllmproxy.errors import BudgetExceeded, ClientDisconnected, FkllmError, StateStoreUnavailable
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.providers import Completion, EmbeddingRequest, Provider
from fkllmproxy.routing import Attempted
from fkllmproxy.server.budget import Reservation, reserve
from fkllmproxy.server.context import RequestContext
from fkllmproxy.server.disconnect import unless_disconnected
from fkllmproxy.server.exchange import ApiRequest
from fkllmproxy.state.vector_index import unit_vector

if TYPE_CHECKING:
    from fkllmproxy.server.runtime import Runtime

__all__ = ["embed_question"]

_log = get_logger("cache")
_encode = msgspec.json.Encoder().encode


class _Embedding(msgspec.Struct):
    embedding: list[float]


class _Embeddings(msgspec.Struct):
    data: list[_Embedding]


_embeddings_decoder = msgspec.json.Decoder(_Embeddings)


async def embed_question(
    request: ApiRequest,
    runtime: Runtime,
    caller: Caller,
    model: str,
    embedding_model: str,
    text: str,
) -> np.ndarray | None:
    """The question's unit vector from the embedding model, through the router.

    ``None`` (logged, never raised) when the call or its answer fails, or the caller's
    budget cannot cover it: the request then goes upstream like an uncached one. A
    client that hangs up still ends the request.
    """
    raw = _encode({"model": embedding_model, "input": text})
    try:
        configured = runtime.router.resolve(embedding_model)
    except FkllmError as exc:
        _failed(model, embedding_model, exc.code)
        return None
    charge = _Charge(request, runtime, caller, configured)
    try:
        await charge.reserve(raw)
    except (BudgetExceeded, StateStoreUnavailable) as exc:
        _failed(model, embedding_model, exc.code)
        return None

    async def attempt(provider: Provider, target: Target) -> Completion:
        call = EmbeddingRequest(raw=raw, model=target.model, client_model=embedding_model)
        return await provider.embeddings(call)

    attempted = Attempted()
    result: Completion | None = None
    status = 499  # the client left mid-call, unless an answer or an error says otherwise
    try:
        result = await unless_disconnected(
            request.receive, runtime.router.call(configured, attempt, attempted)
        )
        status = result.status
    except ClientDisconnected:
        raise
    except FkllmError as exc:
        status = exc.status
        _failed(model, embedding_model, exc.code)
        return None
    finally:
        with anyio.CancelScope(shield=True):  # a hold is never left reserved
            await charge.settle(attempted, result, status)
    assert result is not None
    vector = None
    if result.status == 200:
        try:
            vector = unit_vector(_embeddings_decoder.decode(result.body).data[0].embedding)
        except (msgspec.DecodeError, msgspec.ValidationError, IndexError):
            vector = None
    if vector is not None:
        return vector
    reason = f"status {result.status}" if result.status != 200 else "no usable embedding"
    _failed(model, embedding_model, reason)
    return None


def _failed(model: str, embedding_model: str, reason: str) -> None:
    _log.warning(
        "semantic cache: the embedding call failed; the request goes upstream uncached",
        extra={"model": model, "embedding_model": embedding_model, "reason": reason},
    )


class _Charge:
    """The embedding call's own accounting: its budget hold, ledger row and token count."""

    def __init__(
        self, request: ApiRequest, runtime: Runtime, caller: Caller, model: ModelConfig
    ) -> None:
        self.request = request
        self.runtime = runtime
        self.caller = caller
        self.model = model
        self.started = time.perf_counter()
        # What the budget's settle reads: a context of the embedding call alone.
        self.context = RequestContext(
            request_id=request.context.request_id, started=self.started, model=model.name
        )
        self.context.client = caller.name

    async def reserve(self, raw: bytes) -> None:
        """Hold the call's estimate against the caller's budget (raises when refused)."""
        limits = self.caller.limits
        if limits is None or self.runtime.budgets is None:
            return
        self.context.budget = Reservation(limits, self.caller.name)
        await reserve(self.runtime.budgets, self.caller, self.context, self.model, raw)

    async def settle(self, attempted: Attempted, result: Completion | None, status: int) -> None:
        """Settle the hold, write the ledger row and count the tokens; never raises."""
        context = self.context
        context.provider = attempted.provider
        context.upstream_model = attempted.upstream_model
        context.usage = result.usage if result is not None else None
        try:
            budget_name = None
            held = context.budget
            if held is not None and held.limits.budget_usd is not None:
                budget_name = held.limits.budget_name
            if held is not None and self.runtime.budgets is not None:
                await self.runtime.budgets.settle(context)
            self._record(status, budget_name)
        except Exception:
            _log.exception("semantic cache: accounting for the embedding call failed")

    def _record(self, status: int, budget_name: str | None) -> None:
        context = self.context
        usage = context.usage
        provider = context.provider
        if provider is None:
            return  # no target was tried: nothing was called, nothing to charge
        prompt = usage.prompt_tokens if usage is not None else 0
        completion = usage.completion_tokens if usage is not None else 0
        holder = self.request.holder
        energy_wh = None
        if usage is not None and status < 400:
            energy_wh = self.runtime.energy.estimate_wh(
                provider, context.upstream_model, self.model.name, prompt, completion
            )
        if usage is not None and self.runtime.config.metrics.enabled:
            holder.metrics.tokens(provider, self.model.name, prompt, completion)
        ledger = holder.ledger
        if ledger is None:
            return
        ledger.record(
            request_id=context.request_id,
            key_name=self.caller.name,
            model=self.model.name,
            provider=provider,
            upstream_model=context.upstream_model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            latency_ms=round((time.perf_counter() - self.started) * 1000, 3),
            status=status,
            energy_wh=energy_wh,
            budget_name=budget_name,
        )
