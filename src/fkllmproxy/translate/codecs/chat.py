"""OpenAI Chat Completions <-> the canonical conversation.

Chat is an inbound API (``/v1/chat/completions`` clients reaching a provider of another
kind) and a provider API (clients of the other APIs reaching an OpenAI-compatible
host), so this codec has all six pieces.

Reading a request, one canonical message per chat message, in order, so that an
encoder's refusal can name ``messages[i]`` as the client wrote it:

- ``system``/``developer`` -> turns of that role (text parts only); ``user`` content:
  text, ``image_url`` (a data URL split into its media type and base64 data, any other
  URL kept), ``input_audio`` and ``file`` -> ``Document``; ``assistant``: text,
  ``refusal``, ``reasoning_content`` -> ``Reasoning``, ``tool_calls`` -> ``ToolCall``
  (a thought signature riding in the id is read back); ``tool`` -> a ``ToolResult``
  whose ``name`` is the function of the earlier call it answers.
- Content a provider-neutral model cannot say (an unknown part type, the legacy
  ``function`` role and ``function_call``, assistant ``audio``) becomes ``Unmapped``
  under its own path; fields this codec does not know go to ``Conversation.extra``.
  Either way the provider's encoder refuses them by name.

Writing a request for a Chat host, reasoning stays behind (Chat cannot take it back)
and cache hints are dropped. Writing an answer or a stream, a ``ToolCall.signature``
rides in the call's id (``_ids.py``) and reasoning text goes in ``reasoning_content``,
the field OpenAI-compatible hosts use for it.

Requests are in ``_chat_request.py``, answers and streams in ``_chat_answer.py``.
"""

from __future__ import annotations

from fkllmproxy.translate.codecs._chat_answer import (
    StreamDecoder,
    StreamEncoder,
    chat_finish,
    chat_usage,
    decode_answer,
    encode_answer,
)
from fkllmproxy.translate.codecs._chat_request import decode_request, encode_request

__all__ = [
    "StreamDecoder",
    "StreamEncoder",
    "chat_finish",
    "chat_usage",
    "decode_answer",
    "decode_request",
    "encode_answer",
    "encode_request",
]
