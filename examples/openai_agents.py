"""The OpenAI Agents SDK through fkllmproxy, on the Responses API (the SDK's default).

Start the proxy, then run this script:

    APP_AUTH__MASTER_KEY=sk-local-123 fkllm serve --config examples/mock.toml
    FKLLM_KEY=sk-local-123 FKLLM_MODEL=mock python examples/openai_agents.py

``FKLLM_URL`` (default http://127.0.0.1:4000/v1) and ``FKLLM_MODEL`` point it elsewhere.
Any provider can be behind the model: an OpenAI provider with the Responses API gets the
SDK's requests untouched, others get them translated (function tools included). The
mock answers in text and never calls the tool; a real model does.
"""

from __future__ import annotations

import asyncio
import os

from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

set_tracing_disabled(True)  # traces would go to OpenAI's platform, not through the proxy


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny and 21 °C in {city}"


async def main() -> None:
    client = AsyncOpenAI(
        base_url=os.environ.get("FKLLM_URL", "http://127.0.0.1:4000/v1"),
        api_key=os.environ.get("FKLLM_KEY") or os.environ.get("APP_AUTH__MASTER_KEY", "none"),
    )
    agent = Agent(
        name="weather",
        instructions="Use the tool to answer questions about the weather.",
        tools=[get_weather],
        model=OpenAIResponsesModel(
            model=os.environ.get("FKLLM_MODEL", "gpt-4o-mini"), openai_client=client
        ),
    )
    result = await Runner.run(agent, "What is the weather in Paris?")
    print(result.final_output)


if __name__ == "__main__":
    asyncio.run(main())
