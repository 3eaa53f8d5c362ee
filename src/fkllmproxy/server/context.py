"""The per-request record the middleware logs once the response is done.

Handlers fill it in as they learn things (model, provider, caller, tokens); the
middleware creates it, stamps ``X-Request-ID`` and rate-limit headers from it, and
writes the request log line from it. It lives in the ASGI scope under ``"fkllm"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fkllmproxy.limits import Decision
from fkllmproxy.providers import Usage

if TYPE_CHECKING:
    from fkllmproxy.limits import Reservation

__all__ = ["RequestContext"]


@dataclass(slots=True)
class RequestContext:
    request_id: str
    started: float
    model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None  # the target's model that answered (the router's)
    attempts: int = 0
    client: str | None = None
    usage: Usage | None = None
    rate: Decision | None = None
    error_code: str | None = None
    stream: bool = False
    first_token_at: float | None = None  # perf_counter of the first streamed chunk
    cache: str | None = None  # "hit", "semantic-hit" or "miss" when a response cache was consulted
    cache_similarity: float | None = None  # a semantic hit's similarity
    budget: Reservation | None = None  # a budgeted caller's hold, settled at the end
    budget_left: float | None = None  # for x-fkllm-budget-remaining-usd
    replayed: Usage | None = None  # a cache hit's tokens, as the answer it replays had them
