"""Anthropic Messages <-> OpenAI Chat Completions, in both directions.

The one import for both users of this translation:

* the ``/v1/messages`` route, when a model is served by a provider of another kind:
  ``chat_request_from_messages`` for the request, then ``messages_response_from_chat``
  or ``MessagesStreamFromChat`` for the answer;
* the ``anthropic`` provider, for ``/v1/chat/completions`` clients:
  ``messages_request_from_chat`` for the request, then ``chat_response_from_messages``
  or ``ChatStreamFromMessages`` for the answer.

Each module's docstring holds its mapping table, and what it ignores or refuses.
"""

from __future__ import annotations

from fkllmproxy.translate._common import provider_label
from fkllmproxy.translate.anthropic_answers import (
    anthropic_usage,
    chat_response_from_messages,
    messages_response_from_chat,
    openai_usage,
)
from fkllmproxy.translate.anthropic_streams import ChatStreamFromMessages, MessagesStreamFromChat
from fkllmproxy.translate.chat_to_messages import (
    JSON_TOOL,
    MessagesCallBody,
    messages_request_from_chat,
)
from fkllmproxy.translate.messages_to_chat import chat_request_from_messages

__all__ = [
    "JSON_TOOL",
    "ChatStreamFromMessages",
    "MessagesCallBody",
    "MessagesStreamFromChat",
    "anthropic_usage",
    "chat_request_from_messages",
    "chat_response_from_messages",
    "messages_request_from_chat",
    "messages_response_from_chat",
    "openai_usage",
    "provider_label",
]
