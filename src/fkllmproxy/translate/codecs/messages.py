"""Anthropic Messages, between its wire bytes and the canonical model, every way.

Messages is both an inbound API (``/v1/messages`` clients reaching a provider of
another kind) and a provider API (the ``anthropic`` provider, for clients of every
other API); an Anthropic client reaching an Anthropic provider never comes here, its
bytes pass through. So:

* ``decode_request`` reads a client's request (``_messages_decode.py``);
* ``encode_request`` writes one for the provider, with the forced JSON tool's name
  when JSON mode needs one (``_messages_encode.py``);
* ``decode_answer`` and ``StreamDecoder`` read the provider's answer, and
  ``encode_answer`` and ``StreamEncoder`` write one for the client
  (``_messages_answer.py``, ``_messages_stream.py``).

Each module's docstring holds its mapping table, and what it ignores or refuses.

Usage::

    conversation = messages.decode_request(raw, unsupported=Unsupported("main", "gemini"))
    call = messages.encode_request(
        conversation,
        model="claude-sonnet-5",
        unsupported=Unsupported("claude", "anthropic"),
        default_max_tokens=4096,
    )
    answer = messages.decode_answer(body, provider=label, json_tool=call.json_tool)
    client_bytes = messages.encode_answer(answer, model="claude-sonnet-5", provider=label)
"""

from __future__ import annotations

from fkllmproxy.translate.codecs._messages_answer import decode_answer, encode_answer
from fkllmproxy.translate.codecs._messages_decode import decode_request
from fkllmproxy.translate.codecs._messages_encode import (
    JSON_TOOL,
    MessagesCallBody,
    encode_request,
)
from fkllmproxy.translate.codecs._messages_stream import StreamDecoder, StreamEncoder

__all__ = [
    "JSON_TOOL",
    "MessagesCallBody",
    "StreamDecoder",
    "StreamEncoder",
    "decode_answer",
    "decode_request",
    "encode_answer",
    "encode_request",
]
