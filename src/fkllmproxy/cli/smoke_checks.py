"""The checks ``fkllm smoke`` runs against a deployment, one HTTP exchange each.

Each check sends what a real client of that API sends (the OpenAI, Anthropic and
Google SDKs' request shapes, their auth headers) and judges the answer the way that
client would: the status, the content type, the fields it reads, the stream's
terminator. A check never raises for anything the daemon does; it returns a
``CheckResult`` saying what it saw. Only "nothing answers at all" escapes, as
``Unreachable``, so the command can exit 2 as ``fkllm status`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from fkllmproxy.cli.locate import Unreachable, reason

if TYPE_CHECKING:
    import httpx

__all__ = ["CheckResult", "Outcome", "SmokeRun"]

Outcome = Literal["ok", "FAIL", "skip"]
PROMPT = "Reply with the single word: ok"
_MAX_TOKENS = 32
_SHOWN_TEXT = 28  # characters of an answer shown on the check's line
_SHOWN_ERROR = 160


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the report: the check, its outcome, what it saw, how long it took."""

    name: str
    outcome: Outcome
    detail: str
    latency_ms: float | None = None


class _Failed(Exception):
    """Raised inside a check for an answer it cannot accept (the message says why)."""


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > _SHOWN_TEXT:
        flat = flat[: _SHOWN_TEXT - 1] + "…"
    return f'"{flat}"'


def _decode(content: bytes) -> Any:
    try:
        return msgspec.json.decode(content)
    except msgspec.DecodeError:
        return None


def _error_message(response: httpx.Response) -> str:
    """The daemon's error in one sentence: its message in any of the three API shapes."""
    body = _decode(response.content)
    message = ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or "")
    if not message:
        message = " ".join(response.text.split()) or "no body"
    if len(message) > _SHOWN_ERROR:
        message = message[: _SHOWN_ERROR - 1] + "…"
    return f"HTTP {response.status_code}: {message}"


def _expect(response: httpx.Response, status: int = 200) -> Any:
    """The JSON body of an answer with ``status``; anything else fails the check."""
    if response.status_code != status:
        raise _Failed(_error_message(response))
    body = _decode(response.content)
    if body is None:
        raise _Failed(f"HTTP {response.status_code} but the body is not JSON")
    return body


def _tokens(usage: Any, prompt: str, completion: str) -> str:
    if not isinstance(usage, dict):
        return "no usage"
    return f"{usage.get(prompt, '?')}+{usage.get(completion, '?')} tokens"


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The ``data:`` payloads of a server-sent event stream, in order."""
    for line in lines:
        if line.startswith("data:"):
            yield line[5:].strip()


class SmokeRun:
    """One smoke run: the client, the key, and the model the API checks use.

    ``run(name, check)`` times a check and turns what it raised into a FAIL line;
    the checks themselves are the methods below, each one request.
    """

    def __init__(self, client: httpx.Client, url: str, key: str | None) -> None:
        self.client = client
        self.url = url
        self.key = key
        self.model: str | None = None

    # -- running -----------------------------------------------------------------

    def run(self, name: str, check: Callable[[], str]) -> CheckResult:
        """Run ``check``; its return value is what it saw. Unreachable propagates."""
        import httpx

        started = time.perf_counter()
        try:
            detail = check()
        except _Failed as exc:
            return CheckResult(name, "FAIL", str(exc), _ms(started))
        except httpx.TimeoutException:
            return CheckResult(name, "FAIL", "no answer in time (--timeout)", _ms(started))
        except httpx.HTTPError as exc:
            if isinstance(exc, httpx.ConnectError):
                raise Unreachable(
                    f"cannot reach fkllmproxy at {self.url} ({reason(exc)})"
                ) from None
            return CheckResult(name, "FAIL", f"the exchange broke off: {exc}", _ms(started))
        return CheckResult(name, "ok", detail, _ms(started))

    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        return self.client.post(
            self.url + path,
            content=msgspec.json.encode(body),
            headers={"content-type": "application/json", **headers},
        )

    def _stream(
        self, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[list[str], float | None]:
        """POST and read an SSE answer: its data payloads, and ms to the first one."""
        started = time.perf_counter()
        first: float | None = None
        payloads: list[str] = []
        request_headers = {"content-type": "application/json", **headers}
        with self.client.stream(
            "POST", self.url + path, content=msgspec.json.encode(body), headers=request_headers
        ) as response:
            if response.status_code != 200:
                response.read()
                raise _Failed(_error_message(response))
            kind = response.headers.get("content-type", "")
            if not kind.startswith("text/event-stream"):
                raise _Failed(f"HTTP 200 but content-type {kind!r}, not text/event-stream")
            for payload in _sse_data(response.iter_lines()):
                if first is None:
                    first = _ms(started)
                payloads.append(payload)
        if not payloads:
            raise _Failed("the stream ended without a single event")
        return payloads, first

    # -- the daemon --------------------------------------------------------------

    def health(self) -> str:
        response = self.client.get(self.url + "/health", headers=self._bearer())
        body = _decode(response.content)
        if not isinstance(body, dict) or "status" not in body or "version" not in body:
            raise Unreachable(
                f"the server at {self.url} is not fkllmproxy "
                f"(GET /health answered {response.status_code})"
            )
        state = str(body["status"])
        seen = f"{state}, v{body['version']}"
        if state != "healthy":
            opened = [
                str(p.get("name"))
                for p in body.get("providers") or []
                if isinstance(p, dict) and p.get("circuit") != "closed"
            ]
            if opened:
                seen += f" (circuit not closed: {', '.join(opened)})"
            raise _Failed(seen)
        return seen

    def ready(self) -> str:
        response = self.client.get(self.url + "/ready")
        if response.status_code != 200:
            raise _Failed(f"HTTP {response.status_code}: not ready to serve")
        return "ready (HTTP 200)"

    def models(self, wanted: str | None) -> str:
        """The key's models; picks ``wanted`` (which must be among them) or the first."""
        if not self.key:
            raise _Failed("no key to try: give --key, or set APP_AUTH__MASTER_KEY")
        response = self.client.get(self.url + "/v1/models", headers=self._bearer())
        if response.status_code == 401:
            raise _Failed(f"the key was refused ({_error_message(response)})")
        body = _expect(response)
        listed_ids = [m.get("id") for m in body.get("data") or [] if isinstance(m, dict)]
        names: list[str] = [n for n in listed_ids if isinstance(n, str)]
        if not names:
            raise _Failed("the key may use no model at all")
        if wanted is not None and wanted not in names:
            listed = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
            raise _Failed(f"{wanted!r} is not among the key's {len(names)} models: {listed}")
        self.model = wanted or names[0]
        return f"{len(names)} model{'s' if len(names) != 1 else ''}; using {self.model!r}"

    # -- one call per client API -------------------------------------------------

    def _chat_body(self, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": _MAX_TOKENS,
        }
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return body

    def chat(self) -> str:
        body = _expect(self._post("/v1/chat/completions", self._chat_body(False), self._bearer()))
        try:
            message = body["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise _Failed("HTTP 200 but no choices[0].message in the answer") from None
        text = message.get("content") or ""
        if not text and not message.get("tool_calls"):
            raise _Failed("HTTP 200 but the answer is empty")
        return f"{_quote(text)}, {_tokens(body.get('usage'), 'prompt_tokens', 'completion_tokens')}"

    def chat_stream(self) -> str:
        payloads, first = self._stream(
            "/v1/chat/completions", self._chat_body(True), self._bearer()
        )
        if payloads[-1] != "[DONE]":
            raise _Failed(f"{len(payloads)} events but no closing [DONE]")
        text, usage = [], None
        for payload in payloads[:-1]:
            chunk = _decode(payload.encode())
            if not isinstance(chunk, dict):
                raise _Failed(f"an event is not JSON: {payload[:60]!r}")
            if "error" in chunk:
                raise _Failed(f"error event: {chunk['error']}")
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                text.append((choice.get("delta") or {}).get("content") or "")
        return (
            f"{len(payloads)} events, [DONE], first {first:.0f} ms, "
            f"{_quote(''.join(text))}, {_tokens(usage, 'prompt_tokens', 'completion_tokens')}"
        )

    def _anthropic_headers(self) -> dict[str, str]:
        return {"x-api-key": self.key or "", "anthropic-version": "2023-06-01"}

    def _messages_body(self, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": _MAX_TOKENS,
            "messages": [{"role": "user", "content": PROMPT}],
        }
        if stream:
            body["stream"] = True
        return body

    def messages(self) -> str:
        response = self._post("/v1/messages", self._messages_body(False), self._anthropic_headers())
        body = _expect(response)
        if body.get("type") != "message":
            raise _Failed(f"HTTP 200 but type {body.get('type')!r}, not 'message'")
        text = "".join(b.get("text", "") for b in body.get("content") or [] if isinstance(b, dict))
        usage = _tokens(body.get("usage"), "input_tokens", "output_tokens")
        return f"{_quote(text)}, stop_reason {body.get('stop_reason')}, {usage}"

    def messages_stream(self) -> str:
        payloads, first = self._stream(
            "/v1/messages", self._messages_body(True), self._anthropic_headers()
        )
        events = [_decode(p.encode()) for p in payloads]
        types = [e.get("type") for e in events if isinstance(e, dict)]
        if "error" in types:
            raise _Failed(f"error event after {len(types)} events")
        if not types or types[-1] != "message_stop":
            raise _Failed(f"{len(types)} events but no closing message_stop")
        text = "".join(
            (e.get("delta") or {}).get("text", "")
            for e in events
            if isinstance(e, dict) and e.get("type") == "content_block_delta"
        )
        return f"{len(types)} events, message_stop, first {first:.0f} ms, {_quote(text)}"

    def _responses_body(self, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "input": PROMPT,
            "max_output_tokens": _MAX_TOKENS,
            "store": False,
        }
        if stream:
            body["stream"] = True
        return body

    def responses(self) -> str:
        body = _expect(self._post("/v1/responses", self._responses_body(False), self._bearer()))
        if body.get("object") != "response" or body.get("status") != "completed":
            raise _Failed(
                f"HTTP 200 but object {body.get('object')!r}, status {body.get('status')!r}"
            )
        text = "".join(
            part.get("text", "")
            for item in body.get("output") or []
            if isinstance(item, dict) and item.get("type") == "message"
            for part in item.get("content") or []
            if isinstance(part, dict)
        )
        return f"{_quote(text)}, {_tokens(body.get('usage'), 'input_tokens', 'output_tokens')}"

    def responses_stream(self) -> str:
        payloads, first = self._stream("/v1/responses", self._responses_body(True), self._bearer())
        events = [_decode(p.encode()) for p in payloads]
        types = [e.get("type") for e in events if isinstance(e, dict)]
        if types and types[-1] in ("response.failed", "error"):
            raise _Failed(f"the stream ended with {types[-1]}")
        if not types or types[-1] != "response.completed":
            raise _Failed(f"{len(types)} events but no closing response.completed")
        text = "".join(
            str(e.get("delta", ""))
            for e in events
            if isinstance(e, dict) and e.get("type") == "response.output_text.delta"
        )
        return f"{len(types)} events, response.completed, first {first:.0f} ms, {_quote(text)}"

    def _gemini(self, method: str) -> tuple[str, dict[str, Any], dict[str, str]]:
        path = f"/v1beta/models/{self.model}:{method}"
        body = {
            "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
            "generationConfig": {"maxOutputTokens": _MAX_TOKENS},
        }
        return path, body, {"x-goog-api-key": self.key or ""}

    def gemini(self) -> str:
        body = _expect(self._post(*self._gemini("generateContent")))
        try:
            parts = body["candidates"][0]["content"]["parts"]
        except (KeyError, IndexError, TypeError):
            raise _Failed("HTTP 200 but no candidates[0].content.parts in the answer") from None
        text = "".join(p.get("text", "") for p in parts if isinstance(p, dict))
        usage = _tokens(body.get("usageMetadata"), "promptTokenCount", "candidatesTokenCount")
        return f"{_quote(text)}, finishReason {body['candidates'][0].get('finishReason')}, {usage}"

    def gemini_stream(self) -> str:
        path, body, headers = self._gemini("streamGenerateContent")
        payloads, first = self._stream(path + "?alt=sse", body, headers)
        chunks = [_decode(p.encode()) for p in payloads]
        if any(not isinstance(c, dict) or "error" in c for c in chunks):
            raise _Failed(f"an error (or a non-JSON event) among {len(chunks)} events")
        finished = [
            c["candidates"][0].get("finishReason")
            for c in chunks
            if isinstance(c, dict) and c.get("candidates")
        ]
        if not finished or finished[-1] is None:
            raise _Failed(f"{len(chunks)} events but none with a finishReason")
        text = "".join(
            p.get("text", "")
            for c in chunks
            for cand in c.get("candidates") or []
            for p in (cand.get("content") or {}).get("parts") or []
            if isinstance(p, dict)
        )
        return f"{len(chunks)} events, finishReason {finished[-1]}, first {first:.0f} ms, {_quote(text)}"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
