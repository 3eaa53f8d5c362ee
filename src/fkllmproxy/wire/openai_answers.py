"""OpenAI Chat Completions answers, for reading a provider's reply when it must be translated.

One ``ChatAnswer`` struct reads both a whole completion (``choices[].message``) and one
streamed chunk (``choices[].delta``); only the fields a translator needs are declared.
An ``error`` member covers the error object some hosts send in place of a chunk.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

__all__ = ["AnswerMessage", "AnswerUsage", "ChatAnswer", "answer_decoder"]


class AnswerFunction(Struct, kw_only=True):
    name: str | None = None
    arguments: str | None = None


class AnswerToolCall(Struct, kw_only=True):
    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: AnswerFunction | None = None


class AnswerMessage(Struct, kw_only=True):
    """``message`` of a completion or ``delta`` of a chunk.

    ``reasoning_content`` (DeepSeek, vLLM, most OpenAI-compatible hosts) and
    ``reasoning`` (OpenRouter, Ollama) are the model's reasoning text, where the host
    returns it; OpenAI's own Chat API does not.
    """

    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[AnswerToolCall] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None

    @property
    def reasoning_text(self) -> str | None:
        return self.reasoning_content or self.reasoning


class AnswerChoice(Struct, kw_only=True):
    index: int = 0
    message: AnswerMessage | None = None
    delta: AnswerMessage | None = None
    finish_reason: str | None = None


class PromptTokensDetails(Struct, kw_only=True):
    cached_tokens: int | None = None


class CompletionTokensDetails(Struct, kw_only=True):
    reasoning_tokens: int | None = None


class AnswerUsage(Struct, kw_only=True):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class AnswerError(Struct, kw_only=True):
    message: str = ""
    type: str | None = None
    code: Any = None


class ChatAnswer(Struct, kw_only=True):
    id: str = ""
    model: str = ""
    choices: list[AnswerChoice] = msgspec.field(default_factory=list)
    usage: AnswerUsage | None = None
    error: AnswerError | None = None


answer_decoder = msgspec.json.Decoder(ChatAnswer)
