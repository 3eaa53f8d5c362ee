"""A Locust scenario for a running fkllmproxy: chat completions, streams and Messages calls.

Each simulated user sends what the OpenAI and Anthropic SDKs send, in the proportions
3 chat : 2 streamed chat : 2 Messages, and checks each answer the way a client would
(status 200, the fields it reads, a stream's ``[DONE]`` / ``message_stop``), so a
request that "succeeds" with a broken body counts as a failure. Settings come from the
environment::

    FKLLM_BASE_URL   the proxy (default http://127.0.0.1:4000; --host overrides it)
    FKLLM_MODEL      the model to call (default "mock")
    FKLLM_PROMPT     the user message (default "Say hello in one word.")
    FKLLM_API_KEY    a client key (default: $APP_AUTH__MASTER_KEY)
    FKLLM_MAX_TOKENS max_tokens per request (default 64)

Run it headless for a minute with 20 users::

    make loadtest USERS=20 DURATION=1m
    # or: locust -f examples/loadtest/locustfile.py --headless -u 20 -r 5 -t 1m

or without ``--headless`` for Locust's web UI on http://127.0.0.1:8089.
"""

from __future__ import annotations

import json
import os

from locust import FastHttpUser, between, task

BASE_URL = os.environ.get("FKLLM_BASE_URL", "http://127.0.0.1:4000").rstrip("/")
MODEL = os.environ.get("FKLLM_MODEL", "mock")
PROMPT = os.environ.get("FKLLM_PROMPT", "Say hello in one word.")
API_KEY = os.environ.get("FKLLM_API_KEY") or os.environ.get("APP_AUTH__MASTER_KEY", "")
MAX_TOKENS = int(os.environ.get("FKLLM_MAX_TOKENS", "64"))

_MESSAGES = [{"role": "user", "content": PROMPT}]
CHAT = json.dumps({"model": MODEL, "messages": _MESSAGES, "max_tokens": MAX_TOKENS})
CHAT_STREAM = json.dumps(
    {
        "model": MODEL,
        "messages": _MESSAGES,
        "max_tokens": MAX_TOKENS,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
)
MESSAGES = json.dumps({"model": MODEL, "max_tokens": MAX_TOKENS, "messages": _MESSAGES})
OPENAI_HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
ANTHROPIC_HEADERS = {
    "x-api-key": API_KEY,
    "anthropic-version": "2023-06-01",
    "Content-Type": "application/json",
}


def _problem(status: int, text: str) -> str:
    return f"HTTP {status}: {text[:200]}"


class ProxyUser(FastHttpUser):
    """One client of the proxy, a short think time between its requests."""

    host = BASE_URL
    wait_time = between(0.05, 0.25)

    @task(3)
    def chat(self) -> None:
        with self.client.post(
            "/v1/chat/completions",
            data=CHAT,
            headers=OPENAI_HEADERS,
            name="chat",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(_problem(response.status_code, response.text or ""))
                return
            try:
                message = response.json()["choices"][0]["message"]
            except (ValueError, KeyError, IndexError, TypeError):
                response.failure("200 without choices[0].message")
                return
            if not (message.get("content") or message.get("tool_calls")):
                response.failure("200 with an empty answer")

    @task(2)
    def chat_stream(self) -> None:
        with self.client.post(
            "/v1/chat/completions",
            data=CHAT_STREAM,
            headers=OPENAI_HEADERS,
            name="chat stream",
            catch_response=True,
        ) as response:
            body = response.text or ""
            if response.status_code != 200:
                response.failure(_problem(response.status_code, body))
            elif not body.rstrip().endswith("data: [DONE]"):
                response.failure("the stream did not end with data: [DONE]")

    @task(2)
    def messages(self) -> None:
        with self.client.post(
            "/v1/messages",
            data=MESSAGES,
            headers=ANTHROPIC_HEADERS,
            name="messages",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(_problem(response.status_code, response.text or ""))
                return
            try:
                answer = response.json()
            except ValueError:
                response.failure("200 with a body that is not JSON")
                return
            if answer.get("type") != "message" or not answer.get("content"):
                response.failure("200 without a message's content")
