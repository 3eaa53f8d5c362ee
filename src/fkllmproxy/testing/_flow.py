"""The path every model request takes through the fake, whatever its wire format.

A wire format (OpenAI, Anthropic, Gemini) turns its request into a ``Prompt`` and
renders an ``Answer`` its own way; this module applies latency and faults and writes
the answer whole or as a stream, cut or broken as the behaviour asks.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fkllmproxy.testing._http import HttpRequest, Responder
from fkllmproxy.testing.behaviour import Answer, Behaviour, Prompt, plan_answer

if TYPE_CHECKING:
    from fkllmproxy.testing.fake_upstream import FakeUpstream

__all__ = ["Exchange", "Invalid", "WireFormat", "respond", "run_fault"]

_HTML = b"<html><head><title>502 Bad Gateway</title></head><body>upstream proxy error</body></html>"


class WireFormat(Protocol):
    """What a provider API contributes: its error shape and how it renders an answer."""

    def error_body(self, status: int, message: str) -> bytes: ...

    def render(self, answer: Answer, prompt: Prompt) -> bytes: ...

    def stream_frames(self, answer: Answer, prompt: Prompt) -> list[bytes]: ...

    def midstream_error(self) -> bytes: ...


@dataclass(slots=True)
class Exchange:
    """One request in flight: what came in, where the answer goes, and the server state."""

    request: HttpRequest
    out: Responder
    reader: asyncio.StreamReader
    upstream: FakeUpstream
    json: Any

    async def send_json(
        self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
    ) -> None:
        await self.out.send(status, body, "application/json", headers)


_FAULT_MESSAGES = {
    400: "Invalid request: the fake upstream was asked to reject this request (fault-400).",
    401: "Invalid API key provided (fault-401).",
    429: "Rate limit reached for requests (fault-429).",
    500: "The server had an error while processing your request (fault-500).",
    503: "The service is temporarily unavailable (fault-503).",
    529: "The API is temporarily overloaded (fault-529).",
}


async def run_fault(ex: Exchange, api: WireFormat, behaviour: Behaviour) -> bool:
    """Wait the configured latency, then act out a fault; ``True`` when it answered."""
    delay = ex.upstream.latency_ms + behaviour.delay_ms
    if delay > 0:
        await asyncio.sleep(delay / 1000)
    kind = behaviour.kind
    if kind == "status":
        headers = [("retry-after", str(behaviour.retry_after))] if behaviour.status == 429 else []
        body = api.error_body(behaviour.status, _FAULT_MESSAGES[behaviour.status])
        await ex.send_json(behaviour.status, body, headers)
    elif kind == "reset":
        ex.out.reset()
    elif kind == "hang":
        await ex.out.hang(ex.reader)
    elif kind == "nonjson":
        await ex.out.send(200, _HTML, "text/html; charset=utf-8")
    else:
        return False
    return True


async def respond(ex: Exchange, api: WireFormat, prompt: Prompt, *, stream: bool) -> None:
    """Answer a model request in ``api``'s format as the model name's behaviour says."""
    behaviour = ex.upstream.behaviour_for(prompt.model)
    if await run_fault(ex, api, behaviour):
        return
    answer = plan_answer(prompt, behaviour)
    if behaviour.kind in ("safety", "safety-output"):
        answer.finish = "blocked_prompt" if behaviour.kind == "safety" else "blocked_output"
        answer.text, answer.output_tokens, answer.tool_calls = "", 0, []
    if not stream:
        body = api.render(answer, prompt)
        if behaviour.kind == "cut-stream":
            await ex.out.send_partial(200, body, "application/json")
        elif behaviour.kind == "error-midstream":
            await ex.send_json(500, api.error_body(500, _FAULT_MESSAGES[500]))
        else:
            await ex.send_json(200, body)
        return
    frames = api.stream_frames(answer, prompt)
    gap = behaviour.chunk_gap_ms / 1000
    broken = behaviour.kind in ("cut-stream", "error-midstream")
    if broken:
        frames = frames[: max(1, len(frames) // 2)]
    await ex.out.start_stream()
    for index, frame in enumerate(frames):
        if gap and index:
            await asyncio.sleep(gap)
        await ex.out.chunk(frame)
    if behaviour.kind == "cut-stream":
        ex.out.cut()
        return
    if behaviour.kind == "error-midstream":
        await ex.out.chunk(api.midstream_error())
    await ex.out.end()


class Invalid(Exception):
    """Raised by a wire format's reader when the request breaks that API's rules."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
