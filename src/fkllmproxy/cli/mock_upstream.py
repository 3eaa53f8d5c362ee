"""``fkllm mock-upstream``: run the fake provider in the foreground.

For trying the proxy without a provider account and for load tests: it speaks
OpenAI's, Anthropic's, Gemini's, Vertex AI's and Cohere's wire formats, and the upstream model
name picks a behaviour (``fault-500``, ``slow-stream-100``, ``latency-200``, ...).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from fkllmproxy.cli.app import app, fail

if TYPE_CHECKING:
    from fkllmproxy.testing.fake_upstream import FakeUpstream


@app.command("mock-upstream")
def mock_upstream(
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port (0 picks a free one)")] = 18001,
    latency_ms: Annotated[
        int, typer.Option("--latency-ms", min=0, help="Delay before every model answer")
    ] = 0,
) -> None:
    """Run a fake LLM provider (OpenAI, Anthropic, Gemini, Vertex, Cohere formats) until stopped."""
    from fkllmproxy.testing.fake_upstream import FakeUpstream

    upstream = FakeUpstream(host, port, latency_ms=latency_ms, record=False)
    try:
        asyncio.run(_serve(upstream))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1)
    raise typer.Exit(0)


async def _serve(upstream: FakeUpstream) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await upstream.start_serving(stop)
    sys.stdout.write(
        f"fkllm mock-upstream listening on {upstream.url} "
        f"(OpenAI base_url {upstream.url}/v1; Anthropic and Gemini at the root)\n"
    )
    sys.stdout.flush()
    await upstream.wait_stopped()
