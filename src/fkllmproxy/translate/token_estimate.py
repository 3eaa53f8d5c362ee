"""An estimate of a request's input tokens, for providers that cannot count them.

``/v1/messages/count_tokens`` goes to the provider when it is Anthropic (and Gemini's
``:countTokens`` to Google's providers). For any other
provider there is no tokenizer to ask, so the proxy estimates: one token per four
characters of text (system, messages, tool results, tool calls' input and the tool
definitions as JSON, rounded up), 1,600 tokens per image or PDF (Anthropic's figure for
an image of about 1.15 megapixels), and 4 tokens of framing per message. Clients such
as Claude Code use the count to decide when to compact a conversation, where a close
estimate serves as well as an exact one.
"""

from __future__ import annotations

from typing import Any

from fkllmproxy.translate._common import encode_json
from fkllmproxy.wire.anthropic import CountTokensRequest
from fkllmproxy.wire.gemini_inbound import GenerateContentBody, InContent

__all__ = [
    "CHARS_PER_TOKEN",
    "TOKENS_PER_ATTACHMENT",
    "estimate_gemini_tokens",
    "estimate_input_tokens",
]

CHARS_PER_TOKEN = 4
TOKENS_PER_ATTACHMENT = 1600
TOKENS_PER_MESSAGE = 4


def estimate_input_tokens(request: CountTokensRequest) -> int:
    """The estimated input tokens of ``request`` (see the module docstring)."""
    chars = 0
    attachments = 0
    system = request.system
    if isinstance(system, str):
        chars += len(system)
    elif system:
        chars += sum(len(block.get("text") or "") for block in system)
    for message in request.messages:
        if isinstance(message.content, str):
            chars += len(message.content)
            continue
        for block in message.content:
            more_chars, more_attachments = _block_size(block)
            chars += more_chars
            attachments += more_attachments
    if request.tools:
        chars += len(encode_json(request.tools))
    text_tokens = -(-chars // CHARS_PER_TOKEN)
    framing = TOKENS_PER_MESSAGE * len(request.messages)
    return text_tokens + attachments * TOKENS_PER_ATTACHMENT + framing


def _block_size(block: dict[str, Any]) -> tuple[int, int]:
    """(characters, attachments) of one content block, tool results included."""
    kind = block.get("type")
    if kind in ("image", "document"):
        source = block.get("source") or {}
        if kind == "document" and source.get("type") == "text":
            return len(source.get("data") or ""), 0
        return 0, 1
    if kind == "text":
        return len(block.get("text") or ""), 0
    if kind == "tool_use":
        return len(encode_json(block.get("input") or {})) + len(block.get("name") or ""), 0
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return len(content), 0
        chars = attachments = 0
        for item in content or ():
            if isinstance(item, dict):
                more_chars, more_attachments = _block_size(item)
                chars += more_chars
                attachments += more_attachments
        return chars, attachments
    if kind == "thinking":
        return len(block.get("thinking") or ""), 0
    return 0, 0


def estimate_gemini_tokens(contents: list[InContent], extra: GenerateContentBody | None) -> int:
    """The estimated input tokens of a Gemini ``countTokens`` request, by the same figures
    (``extra`` is its ``generateContentRequest``, for the system instruction and tools)."""
    chars = 0
    attachments = 0
    turns = list(contents)
    if extra is not None:
        if extra.system_instruction is not None:
            turns.append(extra.system_instruction)
        if extra.tools:
            chars += len(encode_json(extra.tools))
    for content in turns:
        for part in content.parts:
            if part.text is not None:
                chars += len(part.text)
            elif part.inline_data is not None or part.file_data is not None:
                attachments += 1
            elif part.function_call is not None:
                call = part.function_call
                chars += len(call.name) + len(encode_json(call.args or {}))
            elif part.function_response is not None:
                chars += len(encode_json(part.function_response.response or {}))
    text_tokens = -(-chars // CHARS_PER_TOKEN)
    return text_tokens + attachments * TOKENS_PER_ATTACHMENT + TOKENS_PER_MESSAGE * len(turns)
