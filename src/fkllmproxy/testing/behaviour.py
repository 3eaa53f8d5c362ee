"""What the fake upstream does for a request, chosen by the upstream model name.

The proxy forwards no client headers, so the model name is the one knob a test has.
A name (or a scripted step) is read by its prefix::

    ok (or any other name)    answer deterministically (see ``plan_answer``)
    fault-500 / -503 / -529   a server error in the API's own error shape
    fault-429[-retry-N]       rate limited, ``Retry-After: N`` (default 1)
    fault-400 / fault-401     the request / the key is at fault, in the API's shape
    fault-reset               drain the request, then reset the connection
    fault-hang                accept and never answer until the client gives up
    fault-nonjson             200 with an HTML body
    fault-safety              the provider blocks the prompt (Gemini promptFeedback,
                              content_filter / refusal elsewhere)
    fault-safety-output       the answer is blocked (Gemini finishReason SAFETY)
    slow-stream[-MS]          stream chunks MS apart (default 200)
    cut-stream                stream some chunks, then close without the terminator
                              (non-streaming: half the body, then close)
    error-midstream           stream some chunks, then the API's error event
    latency-MS                wait MS before answering (adds to ``latency_ms``)
    tools                     call the first tool when tools are given
    tools-all                 call every tool given, in one turn
    tool-NAME                 call the tool named NAME (any case) with its first
                              parameter set to the last word of the user's text
                              (``tool-read`` on "show me /tmp/a.txt" reads that file)
    thinking                  when the request asks for thinking (Anthropic's
                              ``thinking``, OpenAI's ``reasoning_effort``), reason
                              first: a signed thinking block from Anthropic, the
                              ``reasoning_content`` OpenAI-compatible hosts (vLLM,
                              DeepSeek) return from OpenAI, a thought part from
                              Gemini (with ``includeThoughts``); then act as ``tools``
    cached                    report half the prompt tokens as cached
    cache-write               report half the prompt tokens as written to the prompt
                              cache (Anthropic's cache_creation_input_tokens; the
                              other APIs have no such count)
    signed[-WORD]             a Gemini 3 thinking model (Gemini API and Vertex AI; the
                              other APIs just act as WORD): the first ``functionCall``
                              part of each answer carries a ``thoughtSignature``, and a
                              request whose current turn has a call without one this
                              fake issued is refused with 400; otherwise act as WORD
                              (``signed-tools-all``, ``signed-thinking``...), ``tools``
                              when there is none. Read from the model name only, never
                              from a script: signing is what the model is, not a step

Scripted steps use the same words; the ``fault-`` prefix may be left out there
(``up.script("m", ["500", "429-retry-2", "ok"])``).
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "Answer",
    "Behaviour",
    "Prompt",
    "ToolCall",
    "ToolSpec",
    "count_tokens",
    "embedding_vector",
    "parse_behaviour",
    "plan_answer",
    "reply_text",
]

_FAULT_STATUSES = {"500": 500, "503": 503, "529": 529, "429": 429, "400": 400, "401": 401}
_NUMBERED = re.compile(r"^(slow-stream|latency|fault-429-retry|429-retry)-(\d+)")
STATUS_FAULTS = frozenset(_FAULT_STATUSES.values())


@dataclass(frozen=True, slots=True)
class Behaviour:
    """A parsed behaviour: ``kind`` plus the numbers some kinds take."""

    kind: str = "ok"
    tool: str = ""  # the tool a ``tool-NAME`` behaviour calls, lower-case
    status: int = 0
    retry_after: int = 1
    delay_ms: int = 0
    chunk_gap_ms: int = 0
    signed: bool = False  # signs its function calls and checks the signatures come back


_OK = Behaviour()


def parse_behaviour(name: str) -> Behaviour:
    """Read a model name or a scripted step; anything unrecognised means ``ok``."""
    name = name.rsplit("/", 1)[-1].lower()
    if name == "signed" or name.startswith("signed-"):
        return replace(parse_behaviour(name[len("signed-") :] or "tools"), signed=True)
    numbered = _NUMBERED.match(name)
    if numbered:
        word, number = numbered.group(1), int(numbered.group(2))
        if word == "slow-stream":
            return Behaviour("slow-stream", chunk_gap_ms=number)
        if word == "latency":
            return Behaviour("ok", delay_ms=number)
        return Behaviour("status", status=429, retry_after=number)
    bare = name.removeprefix("fault-")
    for code, status in _FAULT_STATUSES.items():
        if bare == code or bare.startswith(code + "-"):
            return Behaviour("status", status=status)
    for kind in ("reset", "hang", "nonjson", "safety-output", "safety"):
        if bare == kind or bare.startswith(kind + "-"):
            return Behaviour(kind)
    if name.startswith("slow-stream"):
        return Behaviour("slow-stream", chunk_gap_ms=200)
    if name.startswith("tool-") and len(name) > 5:
        return Behaviour("tool", tool=name[5:])
    kinds = ("cut-stream", "error-midstream", "tools-all", "tools", "cached", "cache-write")
    for kind in (*kinds, "thinking"):
        if name == kind or name.startswith(kind + "-"):
            return Behaviour(kind)
    return _OK


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the client offered: its name and the first parameter it declares."""

    name: str
    first_param: str = "input"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the fake makes: tool name and its arguments as a dict."""

    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class Prompt:
    """What every wire format's request boils down to, for the fake's purposes."""

    model: str
    last_user_text: str = ""
    input_text: list[str] = field(default_factory=list)
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: str = "auto"  # auto | none | required | tool:NAME
    tool_result: str | None = None  # the last message is a tool result with this text
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    json_mode: bool = False
    include_usage: bool = False  # OpenAI's stream_options.include_usage
    thinking: bool = False  # the request asked the model to think first
    # A signing model's ledger: issues the thoughtSignature of a call to the named function.
    sign: Callable[[str], str] | None = None


@dataclass(slots=True)
class Answer:
    """The planned reply, rendered by each wire format its own way.

    ``finish`` is ``stop``, ``length``, ``stop_sequence`` or ``tool_calls``.
    """

    text: str
    finish: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    stop_sequence: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    cache_write_tokens: int = 0
    thinking: str = ""  # the reasoning shown before the answer, when there is one

    def text_pieces(self) -> list[str]:
        """The text split into word pieces (leading space kept) for streaming."""
        words = self.text.split(" ")
        return [words[0], *(" " + word for word in words[1:])] if self.text else []


def count_tokens(text: str) -> int:
    """The fake's tokenizer: whitespace-separated words."""
    return len(text.split())


def reply_text(last_user_text: str) -> str:
    """The deterministic answer to a prompt whose last user text is ``last_user_text``."""
    return f"echo: {last_user_text}".rstrip()


def plan_answer(prompt: Prompt, behaviour: Behaviour) -> Answer:
    """Decide the reply: a tool call, or the echo text cut by max tokens / stop sequences.

    Usage: input tokens are the words of every text in the request (system prompt,
    messages, tool calls and results, at least 1); output tokens the words of the
    reply (of the arguments' JSON for tool calls).
    """
    input_tokens = max(1, sum(count_tokens(text) for text in prompt.input_text))
    cached = input_tokens // 2 if behaviour.kind == "cached" else 0
    calls = _tool_calls(prompt, behaviour)
    thought = ""
    if behaviour.kind == "thinking" and prompt.thinking:
        thought = f"The user wrote {prompt.last_user_text!r}; answer it."
    if calls:
        out = sum(count_tokens(_args_words(call.arguments)) for call in calls)
        out += count_tokens(thought)
        answer = Answer("", "tool_calls", input_tokens, max(1, out), cached, tool_calls=calls)
        answer.thinking = thought
        return answer
    if prompt.tool_result is not None:
        text = f"tool said: {prompt.tool_result}".rstrip()
    elif prompt.json_mode:
        text = '{"echo": ' + _json_string(prompt.last_user_text) + "}"
    else:
        text = reply_text(prompt.last_user_text)
    finish, stop_sequence = "stop", None
    for stop in prompt.stop:
        at = text.find(stop) if stop else -1
        if at >= 0:
            text, finish, stop_sequence = text[:at], "stop_sequence", stop
    if prompt.max_tokens is not None and count_tokens(text) > prompt.max_tokens:
        text = " ".join(text.split()[: max(prompt.max_tokens, 0)])
        finish, stop_sequence = "length", None
    output = count_tokens(text) + count_tokens(thought)
    answer = Answer(text, finish, input_tokens, output, cached, stop_sequence)
    answer.thinking = thought
    if behaviour.kind == "cache-write":
        answer.cache_write_tokens = input_tokens // 2
    return answer


def _tool_calls(prompt: Prompt, behaviour: Behaviour) -> list[ToolCall]:
    if not prompt.tools or prompt.tool_choice == "none" or prompt.tool_result is not None:
        return []
    if prompt.tool_choice.startswith("tool:"):
        wanted = prompt.tool_choice[5:]
        chosen = [tool for tool in prompt.tools if tool.name == wanted] or prompt.tools[:1]
    elif behaviour.kind == "tool":
        chosen = [tool for tool in prompt.tools if tool.name.lower() == behaviour.tool]
        words = prompt.last_user_text.split()
        argument = words[-1] if words else ""
        return [ToolCall(tool.name, {tool.first_param: argument}) for tool in chosen[:1]]
    elif behaviour.kind == "tools-all":
        chosen = prompt.tools
    elif behaviour.kind in ("tools", "thinking") or prompt.tool_choice == "required":
        chosen = prompt.tools[:1]
    else:
        return []
    return [ToolCall(tool.name, {tool.first_param: prompt.last_user_text}) for tool in chosen]


def _json_string(text: str) -> str:
    import json

    return json.dumps(text)


def _args_words(arguments: dict[str, Any]) -> str:
    return " ".join(str(value) for value in arguments.values()) or "{}"


def _hashed(seed: str, dimensions: int) -> list[float]:
    """``dimensions`` numbers in [-1, 1] drawn from ``seed``'s SHA-256."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{seed}".encode()).digest()
        for (number,) in struct.iter_unpack(">H", digest):
            values.append(number / 32767.5 - 1.0)
        counter += 1
    return values[:dimensions]


def embedding_vector(text: str, dimensions: int = 8) -> list[float]:
    """A deterministic vector for ``text``: a hashed bag of its words.

    Same words (in any order, case or punctuation), same vector; questions sharing most
    of their words are close, so the semantic cache can be tested without a model. Text
    without words gets a vector drawn from the whole text.
    """
    words = re.findall(r"[a-z0-9]+", text.lower())
    if not words:
        return [round(v, 6) for v in _hashed(text, dimensions)]
    total = [0.0] * dimensions
    for word in words:
        for i, value in enumerate(_hashed(word, dimensions)):
            total[i] += value
    return [round(v, 6) for v in total]
