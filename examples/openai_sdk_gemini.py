"""The official OpenAI SDK talking to Gemini through fkllmproxy.

Start the proxy with a Gemini key (no config file needed), then run this script:

    GOOGLE_API_KEY=... APP_AUTH__MASTER_KEY=sk-local-123 fkllm serve
    FKLLM_KEY=sk-local-123 python examples/openai_sdk_gemini.py

``FKLLM_URL`` (default http://127.0.0.1:4000/v1) and ``FKLLM_MODEL`` (default
gemini-pro) point it elsewhere; against ``make run`` (the mock provider) it works too,
minus the tool call.
"""

from __future__ import annotations

import json
import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("FKLLM_URL", "http://127.0.0.1:4000/v1"),
    api_key=os.environ.get("FKLLM_KEY") or os.environ.get("APP_AUTH__MASTER_KEY", "none"),
)
MODEL = os.environ.get("FKLLM_MODEL", "gemini-pro")

# 1. A plain completion, with a system prompt (it becomes Gemini's systemInstruction).
reply = client.chat.completions.create(
    model=MODEL,
    messages=[
        {"role": "system", "content": "Answer in one short sentence."},
        {"role": "user", "content": "What is a reverse proxy?"},
    ],
)
print("answer:", reply.choices[0].message.content)
print("usage: ", reply.usage)

# 2. The same, streamed, with the token counts at the end.
print("stream: ", end="", flush=True)
stream = client.chat.completions.create(
    model=MODEL,
    messages=[{"role": "user", "content": "Count from one to five in words."}],
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
    if chunk.usage:
        print(f"\n({chunk.usage.total_tokens} tokens)")

# 3. A tool call and its result, over two turns.
tools = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
messages: list = [{"role": "user", "content": "What's the weather in Lisbon?"}]
first = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
message = first.choices[0].message
if message.tool_calls:
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls:
        city = json.loads(call.function.arguments).get("city", "?")
        print(f"tool call: {call.function.name}({city!r}) id={call.id[:20]}...")
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "21C, clear sky"})
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    print("after the tool:", second.choices[0].message.content)
else:
    print("no tool call:", message.content)
