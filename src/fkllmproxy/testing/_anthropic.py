"""Anthropic's Messages API wire format: ``/v1/messages`` and ``/v1/messages/count_tokens``.

Written from Anthropic's API reference: a key (``x-api-key``, or ``Authorization:
Bearer`` as current SDKs send it) and ``anthropic-version`` required; unknown top-level
fields, empty text blocks and tool results that do not answer the previous turn's
``tool_use`` rejected as the real API does. A ``system`` message inside ``messages``
("mid-conversation system messages") is taken only by models that have the feature,
which the fake, naming its models by behaviour, reads from the request's
``anthropic-beta: mid-conversation-system-2026-04-07``; it then keeps the placement
rules (not first; right after a user turn; last or followed by an assistant turn; never
next to another system message) and holds text only, else a 400 as the API gives; errors as ``{"type": "error", "error": {"type", "message"}, "request_id"}``;
streams as named SSE events (``message_start``, ``content_block_start``, ``ping``,
``content_block_delta``, ``content_block_stop``, ``message_delta``, ``message_stop``).
Usage follows Anthropic's rule that ``input_tokens`` excludes cache reads.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import msgspec

from fkllmproxy.testing._flow import Exchange, Invalid, respond, run_fault
from fkllmproxy.testing.behaviour import Answer, Prompt, ToolSpec, count_tokens

__all__ = ["ANTHROPIC", "AnthropicFormat", "count_tokens_route", "messages"]

_encode = msgspec.json.encode
_KNOWN_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "metadata", "stop_sequences", "stream",
        "system", "temperature", "tool_choice", "tools", "top_k", "top_p", "thinking",
        "service_tier", "container", "mcp_servers", "context_management", "output_config",
    }
)  # fmt: skip
_COUNT_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})
_BLOCK_TYPES = frozenset(
    {
        "text", "image", "document", "tool_use", "tool_result", "thinking",
        "redacted_thinking", "search_result", "server_tool_use", "web_search_tool_result",
    }
)  # fmt: skip
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}
_STOP_REASONS = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "blocked_prompt": "refusal",
    "blocked_output": "refusal",
}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"


class AnthropicFormat:
    """Renders answers as Anthropic's Messages API does."""

    def __init__(self) -> None:
        self._ids = 0

    def next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_fake{self._ids:08d}"

    def error_body(self, status: int, message: str) -> bytes:
        kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        error = {"type": "error", "error": {"type": kind, "message": message}}
        error["request_id"] = self.next_id("req")
        return _encode(error)

    def midstream_error(self) -> bytes:
        error = {"type": "overloaded_error", "message": "Overloaded (error-midstream)"}
        return _event("error", {"type": "error", "error": error})

    def _usage(self, answer: Answer) -> dict[str, Any]:
        return {
            "input_tokens": answer.input_tokens - answer.cached_tokens - answer.cache_write_tokens,
            "output_tokens": answer.output_tokens,
            "cache_creation_input_tokens": answer.cache_write_tokens,
            "cache_read_input_tokens": answer.cached_tokens,
        }

    def _blocks(self, answer: Answer) -> list[dict[str, Any]]:
        thinking = []
        if answer.thinking:
            signature = _signature(answer.thinking)
            thinking = [{"type": "thinking", "thinking": answer.thinking, "signature": signature}]
        return thinking + self._answer_blocks(answer)

    def _answer_blocks(self, answer: Answer) -> list[dict[str, Any]]:
        if answer.tool_calls:
            return [
                {
                    "type": "tool_use",
                    "id": self.next_id("toolu"),
                    "name": c.name,
                    "input": c.arguments,
                }
                for c in answer.tool_calls
            ]
        return [{"type": "text", "text": answer.text}] if answer.text else []

    def _message(self, prompt: Prompt, content: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.next_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": prompt.model,
            "content": content,
            "stop_reason": None,
            "stop_sequence": None,
        }

    def render(self, answer: Answer, prompt: Prompt) -> bytes:
        message = self._message(prompt, self._blocks(answer))
        message["stop_reason"] = _STOP_REASONS[answer.finish]
        message["stop_sequence"] = answer.stop_sequence
        message["usage"] = self._usage(answer)
        return _encode(message)

    def stream_frames(self, answer: Answer, prompt: Prompt) -> list[bytes]:
        start = self._message(prompt, [])
        start["usage"] = {**self._usage(answer), "output_tokens": 1}
        frames = [_event("message_start", {"type": "message_start", "message": start})]
        for index, block in enumerate(self._blocks(answer)):
            if block["type"] == "text":
                opening: dict[str, Any] = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": piece} for piece in answer.text_pieces()]
            elif block["type"] == "thinking":
                # Streamed as the API streams thinking: the text, then its signature.
                opening = {"type": "thinking", "thinking": ""}
                deltas = [
                    {"type": "thinking_delta", "thinking": block["thinking"]},
                    {"type": "signature_delta", "signature": block["signature"]},
                ]
            else:
                opening = {**block, "input": {}}
                arguments = _encode(block["input"]).decode()
                middle = max(1, len(arguments) // 2)
                deltas = [
                    {"type": "input_json_delta", "partial_json": piece}
                    for piece in ("", arguments[:middle], arguments[middle:])
                ]
            frames.append(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": opening},
                )
            )
            if index == 0:
                frames.append(_event("ping", {"type": "ping"}))
            for delta in deltas:
                frames.append(
                    _event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
                )
            frames.append(
                _event("content_block_stop", {"type": "content_block_stop", "index": index})
            )
        final = {"stop_reason": _STOP_REASONS[answer.finish], "stop_sequence": answer.stop_sequence}
        frames.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": final,
                    "usage": {"output_tokens": answer.output_tokens},
                },
            )
        )
        frames.append(_event("message_stop", {"type": "message_stop"}))
        return frames


ANTHROPIC = AnthropicFormat()


def _check_headers(ex: Exchange) -> Invalid | None:
    headers = ex.request.headers
    bearer = headers.get("authorization", "").startswith("Bearer ")
    if not headers.get("x-api-key") and not bearer:
        # Current SDKs send the key as ``Authorization: Bearer``; older ones and most
        # gateways as ``x-api-key``. The API takes either.
        return Invalid("x-api-key header is required", status=401)
    if not headers.get("anthropic-version"):
        return Invalid("anthropic-version: header is required")
    return None


def _signature(thought: str) -> str:
    """The fake's seal on a thinking block: opaque base64, checkable when it comes back."""
    return base64.b64encode(hashlib.sha256(b"fake-seal:" + thought.encode()).digest()).decode()


def _check_thinking_turns(messages: list[Any], *, required: bool) -> None:
    """Thinking sent back must carry the signature it was issued with; with thinking
    ``enabled`` (where the model always thinks) the last assistant turn that used a tool
    must also start with its thinking block, as the API requires. Adaptive thinking may
    answer without thinking, so there a turn without one is fine."""
    last_tool_turn = None
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        for number, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") != "thinking":
                continue
            if block.get("signature") != _signature(str(block.get("thinking", ""))):
                raise Invalid(
                    f"messages.{index}.content.{number}: Invalid `signature` in `thinking` block"
                )
        if any(isinstance(b, dict) and b.get("type") == "tool_use" for b in content):
            last_tool_turn = index
    if not required or last_tool_turn is None:
        return
    first = messages[last_tool_turn]["content"][0]
    if first.get("type") not in ("thinking", "redacted_thinking"):
        raise Invalid(
            f"messages.{last_tool_turn}.content.0.type: Expected `thinking` or "
            f"`redacted_thinking`, but found `{first.get('type')}`. When `thinking` is enabled, "
            "an assistant message with tool use must start with a thinking block."
        )


def _betas(ex: Exchange) -> str:
    return ex.request.headers.get("anthropic-beta", "")


def _block_text(block: dict[str, Any], where: str, prompt: Prompt) -> str:
    kind = block.get("type")
    if kind not in _BLOCK_TYPES:
        raise Invalid(
            f"{where}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags"
        )
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise Invalid(f"{where}.text: Field required")
        if not text:
            raise Invalid(f"{where}: text content blocks must be non-empty")
        return text
    if kind == "image":
        source = block.get("source")
        if not isinstance(source, dict) or source.get("type") not in ("base64", "url", "file"):
            raise Invalid(f"{where}.source: Field required")
        if source["type"] == "base64" and not (source.get("media_type") and source.get("data")):
            raise Invalid(f"{where}.source.base64: media_type and data are required")
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, list):
            return " ".join(
                _block_text(b, f"{where}.content.{i}", prompt) for i, b in enumerate(content)
            )
        return content if isinstance(content, str) else ""
    if kind == "tool_use":
        return " ".join(str(v) for v in (block.get("input") or {}).values())
    return ""


_MID_CONVERSATION_SYSTEM = "mid-conversation-system-"


def _check_system_message(messages: list[Any], index: int, content: Any) -> None:
    """Anthropic's placement and content rules for a ``system`` entry of ``messages``."""
    where = f"messages.{index}"
    before = messages[index - 1].get("role") if index > 0 else None
    after = messages[index + 1].get("role") if index + 1 < len(messages) else "assistant"
    if index == 0:
        raise Invalid(f"{where}: a system message cannot be the first message")
    if before == "system" or after == "system":
        raise Invalid(f"{where}: consecutive system messages are not allowed")
    if before != "user":
        raise Invalid(f"{where}: a system message must immediately follow a user message")
    if after != "assistant":
        raise Invalid(f"{where}: a system message must be last or followed by an assistant turn")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(blocks, list) or not blocks:
        raise Invalid(f"{where}.content: Field required")
    for number, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") != "text" or not block.get("text"):
            raise Invalid(f"{where}.content.{number}: system messages hold text blocks only")


def _read_messages(messages: Any, prompt: Prompt, *, system_role: bool = False) -> None:
    if not isinstance(messages, list):
        raise Invalid("messages: Field required")
    if not messages:
        raise Invalid("messages: at least one message is required")
    pending_uses: list[str] = []
    last = len(messages) - 1
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system" and system_role:
            _check_system_message(messages, index, message.get("content"))
            content = message["content"]
            said = [content] if isinstance(content, str) else [b["text"] for b in content]
            prompt.input_text.append(" ".join(said))
            continue
        if role == "system":
            raise Invalid(
                'messages: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise Invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            blocks: list[Any] = [{"type": "text", "text": content}] if content else []
        elif isinstance(content, list):
            blocks = content
        else:
            raise Invalid(f"{where}.content: Field required")
        if not blocks and not (index == last and role == "assistant"):
            raise Invalid(
                f"{where}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )
        answered: list[str] = []
        uses: list[str] = []
        texts: list[str] = []
        for number, block in enumerate(blocks):
            block_where = f"{where}.content.{number}"
            if not isinstance(block, dict):
                raise Invalid(f"{block_where}: Input should be a valid dictionary")
            texts.append(_block_text(block, block_where, prompt))
            if block.get("type") == "tool_result":
                if block.get("tool_use_id") not in pending_uses:
                    raise Invalid(
                        f"{block_where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.get('tool_use_id')}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )
                answered.append(block["tool_use_id"])
                prompt.tool_result = texts[-1]
            elif block.get("type") == "tool_use":
                if role != "assistant" or not isinstance(block.get("id"), str):
                    raise Invalid(
                        f"{block_where}: tool_use blocks need an id and the assistant role"
                    )
                uses.append(block["id"])
        missing = [use for use in pending_uses if use not in answered]
        if missing:
            raise Invalid(
                f"messages.{index - 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        pending_uses = uses
        text = " ".join(t for t in texts if t)
        prompt.input_text.append(text)
        if role == "user":
            if not answered:
                prompt.tool_result = None
            if any(isinstance(b, dict) and b.get("type") == "text" for b in blocks):
                prompt.last_user_text = " ".join(
                    b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text"
                )
        else:
            prompt.tool_result = None


def _read_system(system: Any, prompt: Prompt) -> None:
    if system is None:
        return
    if isinstance(system, str):
        prompt.input_text.append(system)
        return
    if not isinstance(system, list):
        raise Invalid("system: Input should be a valid string or a list of text blocks")
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not block.get("text"):
            raise Invalid(f"system.{index}: text blocks must be non-empty text")
        prompt.input_text.append(block["text"])


def _read_tools(tools: Any, choice: Any, prompt: Prompt) -> None:
    if tools is not None:
        if not isinstance(tools, list):
            raise Invalid("tools: Input should be a valid list")
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise Invalid(f"tools.{index}.name: Field required")
            if tool.get("type") not in (None, "custom"):
                continue  # a server tool (web search, ...): nothing for the fake to call
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise Invalid(f"tools.{index}.custom.input_schema: Field required")
            properties = schema.get("properties")
            first = next(iter(properties), "input") if isinstance(properties, dict) else "input"
            prompt.tools.append(ToolSpec(tool["name"], first))
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        prompt.tool_choice = "auto"
    elif kind == "any":
        prompt.tool_choice = "required"
    elif kind == "none":
        prompt.tool_choice = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        prompt.tool_choice = f"tool:{choice['name']}"
    else:
        raise Invalid("tool_choice: Input tag found using 'type' does not match the expected tags")


def read_request(body: Any, *, counting: bool = False, betas: str = "") -> tuple[Prompt, bool]:
    """Validate a Messages request as Anthropic does and extract the fake's ``Prompt``.

    ``betas`` is the request's ``anthropic-beta`` header.
    """
    if not isinstance(body, dict):
        raise Invalid("There was an issue with the format of your request: invalid JSON body")
    allowed = _COUNT_FIELDS if counting else _KNOWN_FIELDS
    for name in body:
        if name not in allowed:
            raise Invalid(f"{name}: Extra inputs are not permitted")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Invalid("model: Field required")
    prompt = Prompt(model=model)
    if not counting:
        limit = body.get("max_tokens")
        if limit is None:
            raise Invalid("max_tokens: Field required")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise Invalid("max_tokens: Input should be greater than or equal to 1")
        prompt.max_tokens = limit
    _read_system(body.get("system"), prompt)
    system_role = _MID_CONVERSATION_SYSTEM in betas
    _read_messages(body.get("messages"), prompt, system_role=system_role)
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        prompt.thinking = True
        _check_thinking_turns(body["messages"], required=thinking["type"] == "enabled")
    _read_tools(body.get("tools"), body.get("tool_choice"), prompt)
    # Structured outputs: the answer is JSON when output_config.format asks for a schema.
    output_config = body.get("output_config")
    fmt = output_config.get("format") if isinstance(output_config, dict) else None
    prompt.json_mode = isinstance(fmt, dict) and fmt.get("type") == "json_schema"
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise Invalid("stop_sequences: Input should be a valid list of strings")
    prompt.stop = stops
    return prompt, body.get("stream") is True


async def messages(ex: Exchange) -> None:
    """``POST /v1/messages``."""
    api = ANTHROPIC
    try:
        problem = _check_headers(ex)
        if problem:
            raise problem
        prompt, stream = read_request(ex.json, betas=_betas(ex))
    except Invalid as exc:
        await ex.send_json(exc.status, api.error_body(exc.status, exc.message))
        return
    await respond(ex, api, prompt, stream=stream)


async def count_tokens_route(ex: Exchange) -> None:
    """``POST /v1/messages/count_tokens``: the fake's word count of the prompt."""
    api = ANTHROPIC
    try:
        problem = _check_headers(ex)
        if problem:
            raise problem
        prompt, _ = read_request(ex.json, counting=True, betas=_betas(ex))
    except Invalid as exc:
        await ex.send_json(exc.status, api.error_body(exc.status, exc.message))
        return
    if await run_fault(ex, api, ex.upstream.behaviour_for(prompt.model)):
        return
    tokens = max(1, sum(count_tokens(text) for text in prompt.input_text))
    await ex.send_json(200, _encode({"input_tokens": tokens}))
