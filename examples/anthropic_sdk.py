"""The official Anthropic SDK through fkllmproxy: a message, a stream, a tool call.

Against `make run` (the demo on the mock provider) it needs nothing else:

    .venv/bin/python examples/anthropic_sdk.py

Elsewhere set FKLLM_URL (default http://127.0.0.1:4000), FKLLM_KEY (a proxy key;
default: the master key `make run` wrote to .run/env) and MODEL (a [[models]] name,
default claude-sonnet-5). The model may be served by any provider: the proxy
translates when it is not Anthropic.
"""

from __future__ import annotations

import os
from pathlib import Path

import anthropic


def proxy_key() -> str:
    key = os.environ.get("FKLLM_KEY")
    env_file = Path(".run/env")
    if not key and env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("APP_AUTH__MASTER_KEY="):
                key = line.split("=", 1)[1].strip()
    if not key:
        raise SystemExit("set FKLLM_KEY to a proxy key")
    return key


URL = os.environ.get("FKLLM_URL", "http://127.0.0.1:4000")
MODEL = os.environ.get("MODEL", "claude-sonnet-5")
# No /v1 in base_url: the SDK adds /v1/messages itself.
client = anthropic.Anthropic(base_url=URL, api_key=proxy_key())

print("== a message")
reply = client.messages.create(
    model=MODEL,
    max_tokens=256,
    system="Answer in one sentence.",
    messages=[{"role": "user", "content": "What is a reverse proxy?"}],
)
print(reply.content[0].text if reply.content[0].type == "text" else reply.content[0])
print("usage:", reply.usage.input_tokens, "in,", reply.usage.output_tokens, "out")

print("== a stream")
with client.messages.stream(
    model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "Count to five."}]
) as stream:
    for text in stream.text_stream:
        print(text, end="", flush=True)
print()

print("== a tool call")
weather_tool = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
question = {"role": "user", "content": "What is the weather in Oslo?"}
first = client.messages.create(
    model=MODEL, max_tokens=256, tools=[weather_tool], messages=[question]
)
uses = [block for block in first.content if block.type == "tool_use"]
if not uses:
    # The demo's mock provider never calls tools; a real model usually does here.
    print("no tool call; the model said:", first.content[0].text if first.content else "")
else:
    results = [
        {"type": "tool_result", "tool_use_id": use.id, "content": "Light rain, 9 degrees."}
        for use in uses
    ]
    final = client.messages.create(
        model=MODEL,
        max_tokens=256,
        tools=[weather_tool],
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": results},
        ],
    )
    print(final.content[0].text if final.content and final.content[0].type == "text" else final)

print("== count tokens")
count = client.messages.count_tokens(model=MODEL, messages=[question])
print("input tokens:", count.input_tokens)
