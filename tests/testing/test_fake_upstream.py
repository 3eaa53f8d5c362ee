"""The fake upstream speaks the providers' real wire formats and acts out every fault.

Driven with plain httpx and with the official SDKs pointed straight at it: if the
SDKs parse its answers, the fake speaks the formats the proxy will meet in production.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import struct
import subprocess
import sys
from typing import Any

import httpx
import openai
import pytest

from fkllmproxy.testing.behaviour import (
    Prompt,
    ToolSpec,
    embedding_vector,
    parse_behaviour,
    plan_answer,
)
from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.conftest import free_port, wait_until

USER = [{"role": "user", "content": "hello brave new world"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def oai(up: FakeUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=up.url + "/v1", api_key="sk-up", max_retries=0, timeout=10)


class TestBehaviourNames:
    @pytest.mark.parametrize(
        ("name", "kind", "number"),
        [
            ("gpt-4o-mini", "ok", 0),
            ("fault-500", "status", 500),
            ("500", "status", 500),
            ("fault-503-primary", "status", 503),
            ("fault-reset", "reset", 0),
            ("hang", "hang", 0),
            ("slow-stream", "slow-stream", 200),
            ("slow-stream-50", "slow-stream", 50),
            ("models/tools-all", "tools-all", 0),
            ("latency-250", "ok", 250),
        ],
    )
    def test_names_map_to_behaviours(self, name: str, kind: str, number: int) -> None:
        """Model names and script steps select behaviours by prefix."""
        behaviour = parse_behaviour(name)
        assert behaviour.kind == kind
        assert number in (0, behaviour.status, behaviour.chunk_gap_ms, behaviour.delay_ms)

    def test_tool_names_the_tool(self) -> None:
        """``tool-NAME`` calls that tool with the last word of the user's text."""
        behaviour = parse_behaviour("tool-read_file")
        assert (behaviour.kind, behaviour.tool) == ("tool", "read_file")
        prompt = Prompt(model="m", last_user_text="context first /tmp/notes.txt")
        prompt.tools = [ToolSpec("list_directory", "dir_path"), ToolSpec("read_file", "file_path")]
        answer = plan_answer(prompt, behaviour)
        assert [(c.name, c.arguments) for c in answer.tool_calls] == [
            ("read_file", {"file_path": "/tmp/notes.txt"})
        ]

    def test_429_retry_after(self) -> None:
        assert parse_behaviour("fault-429-retry-7").retry_after == 7
        assert parse_behaviour("429").retry_after == 1


class TestOpenAI:
    def test_completion_echoes_and_counts(self, fake_upstream: FakeUpstream) -> None:
        """The answer echoes the last user text and counts words as tokens."""
        reply = oai(fake_upstream).chat.completions.create(model="gpt-4o-mini", messages=USER)
        assert reply.choices[0].message.content == "echo: hello brave new world"
        assert reply.choices[0].finish_reason == "stop"
        assert reply.model == "gpt-4o-mini"
        assert reply.usage is not None
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (4, 5)
        assert reply.usage.total_tokens == 9

    def test_request_is_recorded(self, fake_upstream: FakeUpstream) -> None:
        oai(fake_upstream).chat.completions.create(
            model="m1", messages=USER, extra_body={"custom_field": {"x": 1}}
        )
        (seen,) = fake_upstream.requests
        assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
        assert seen.headers["authorization"] == "Bearer sk-up"
        assert seen.json["custom_field"] == {"x": 1}
        fake_upstream.clear()
        assert fake_upstream.requests == []

    def test_stream_with_usage(self, fake_upstream: FakeUpstream) -> None:
        stream = oai(fake_upstream).chat.completions.create(
            model="m", messages=USER, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "echo: hello brave new world"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5

    def test_stream_raw_frames_end_with_done(self, fake_upstream: FakeUpstream) -> None:
        body = {"model": "m", "messages": USER, "stream": True}
        with httpx.stream("POST", fake_upstream.url + "/v1/chat/completions", json=body) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in r.iter_lines() if line]
        assert lines[-1] == "data: [DONE]"
        assert all(line.startswith("data: ") for line in lines)
        assert '"usage"' not in "".join(lines)

    def test_max_tokens_and_stop(self, fake_upstream: FakeUpstream) -> None:
        client = oai(fake_upstream)
        cut = client.chat.completions.create(model="m", messages=USER, max_tokens=2)
        assert cut.choices[0].message.content == "echo: hello"
        assert cut.choices[0].finish_reason == "length"
        stopped = client.chat.completions.create(model="m", messages=USER, stop=["new"])
        assert stopped.choices[0].message.content == "echo: hello brave "
        assert stopped.choices[0].finish_reason == "stop"

    def test_json_mode_answers_json(self, fake_upstream: FakeUpstream) -> None:
        reply = oai(fake_upstream).chat.completions.create(
            model="m", messages=USER, response_format={"type": "json_object"}
        )
        assert reply.choices[0].message.content == '{"echo": "hello brave new world"}'

    def test_tool_call_then_result(self, fake_upstream: FakeUpstream) -> None:
        """``tools`` calls the first tool; a tool result after it gets a text answer."""
        client = oai(fake_upstream)
        asked = [{"role": "user", "content": "Paris"}]
        first = client.chat.completions.create(model="tools", messages=asked, tools=[WEATHER_TOOL])
        (call,) = first.choices[0].message.tool_calls or []
        assert first.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "get_weather"
        assert call.function.arguments == '{"city":"Paris"}'
        follow = [
            *asked,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ]
        second = client.chat.completions.create(
            model="tools", messages=follow, tools=[WEATHER_TOOL]
        )
        assert second.choices[0].message.content == "tool said: sunny"

    def test_streamed_tool_call_arguments(self, fake_upstream: FakeUpstream) -> None:
        stream = oai(fake_upstream).chat.completions.create(
            model="tools-all",
            messages=[{"role": "user", "content": "Rome"}],
            tools=[WEATHER_TOOL, {**WEATHER_TOOL, "function": {"name": "get_time"}}],
            stream=True,
        )
        arguments: dict[int, str] = {}
        names: dict[int, str] = {}
        for chunk in stream:
            for delta in chunk.choices[0].delta.tool_calls or []:
                if delta.function and delta.function.name:
                    names[delta.index] = delta.function.name
                arguments[delta.index] = arguments.get(delta.index, "") + (
                    (delta.function and delta.function.arguments) or ""
                )
        assert names == {0: "get_weather", 1: "get_time"}
        assert arguments == {0: '{"city":"Rome"}', 1: '{"input":"Rome"}'}

    def test_forced_tool_choice_calls_that_tool(self, fake_upstream: FakeUpstream) -> None:
        reply = oai(fake_upstream).chat.completions.create(
            model="gpt-4o-mini",
            messages=USER,
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
        assert (reply.choices[0].message.tool_calls or [])[0].function.name == "get_weather"

    @pytest.mark.parametrize(
        ("body", "param"),
        [
            ({"messages": USER}, "model"),
            ({"model": "m"}, "messages"),
            ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
            ({"model": "m", "messages": [{"role": "tool", "content": "x", "tool_call_id": "c"}]},
             "messages[0].role"),
            ({"model": "m", "messages": USER, "stream_options": {"include_usage": True}},
             "stream_options"),
        ],
    )  # fmt: skip
    def test_invalid_requests_rejected_like_openai(
        self, fake_upstream: FakeUpstream, body: dict[str, Any], param: str
    ) -> None:
        response = httpx.post(fake_upstream.url + "/v1/chat/completions", json=body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["param"] == param

    def test_unanswered_tool_call_rejected(self, fake_upstream: FakeUpstream) -> None:
        call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        messages = [*USER, {"role": "assistant", "tool_calls": [call]}, *USER]
        with pytest.raises(openai.BadRequestError, match="call_1"):
            oai(fake_upstream).chat.completions.create(model="m", messages=messages)

    def test_embeddings_float_and_base64(self, fake_upstream: FakeUpstream) -> None:
        client = oai(fake_upstream)
        result = client.embeddings.create(model="e", input=["one two", "three"], dimensions=4)
        assert [d.embedding for d in result.data] == [
            pytest.approx(embedding_vector("one two", 4), abs=1e-6),
            pytest.approx(embedding_vector("three", 4), abs=1e-6),
        ]
        assert result.usage.prompt_tokens == 3
        raw = httpx.post(
            fake_upstream.url + "/v1/embeddings",
            json={"model": "e", "input": "one two", "encoding_format": "base64", "dimensions": 4},
        ).json()
        decoded = struct.unpack("<4f", base64.b64decode(raw["data"][0]["embedding"]))
        assert decoded == pytest.approx(embedding_vector("one two", 4), abs=1e-6)

    def test_models_list(self, fake_upstream: FakeUpstream) -> None:
        ids = [model.id for model in oai(fake_upstream).models.list()]
        assert "gpt-4o-mini" in ids

    def test_unknown_route_is_404(self, fake_upstream: FakeUpstream) -> None:
        assert httpx.post(fake_upstream.url + "/v2/nothing", json={}).status_code == 404
        assert httpx.get(fake_upstream.url + "/v1/chat/completions").status_code == 405


class TestAzure:
    def path(self, up: FakeUpstream, what: str = "chat/completions") -> str:
        return f"{up.url}/openai/deployments/my-gpt/{what}"

    def test_chat_with_key_and_version(self, fake_upstream: FakeUpstream) -> None:
        client = openai.AzureOpenAI(
            azure_endpoint=fake_upstream.url,
            api_key="az-key",
            api_version="2024-10-21",
            max_retries=0,
        )
        reply = client.chat.completions.create(model="my-gpt", messages=USER)
        assert reply.choices[0].message.content == "echo: hello brave new world"
        seen = fake_upstream.requests[-1]
        assert seen.path == "/openai/deployments/my-gpt/chat/completions"
        assert seen.query["api-version"] == "2024-10-21"
        assert seen.headers["api-key"] == "az-key"
        vectors = client.embeddings.create(model="my-gpt", input="x")
        assert len(vectors.data[0].embedding) == 8

    def test_stream_starts_with_prompt_filter_chunk(self, fake_upstream: FakeUpstream) -> None:
        body = {"messages": USER, "stream": True}
        url = self.path(fake_upstream) + "?api-version=2024-10-21"
        with httpx.stream("POST", url, json=body, headers={"api-key": "k"}) as response:
            frames = [line for line in response.iter_lines() if line]
        assert '"choices":[]' in frames[0] and "prompt_filter_results" in frames[0]
        assert frames[-1] == "data: [DONE]"

    def test_missing_key_or_version(self, fake_upstream: FakeUpstream) -> None:
        url = self.path(fake_upstream)
        no_key = httpx.post(url + "?api-version=2024-10-21", json={"messages": USER})
        assert no_key.status_code == 401
        assert no_key.json()["error"]["code"] == "401"
        no_version = httpx.post(url, json={"messages": USER}, headers={"api-key": "k"})
        assert no_version.status_code == 404


def chat(up: FakeUpstream, model: str, **kwargs: Any) -> httpx.Response:
    body = {"model": model, "messages": USER, **kwargs}
    return httpx.post(up.url + "/v1/chat/completions", json=body, timeout=10)


class TestFaults:
    @pytest.mark.parametrize(
        ("model", "status", "error_type"),
        [
            ("fault-500", 500, "server_error"),
            ("fault-503", 503, "server_error"),
            ("fault-400", 400, "invalid_request_error"),
            ("fault-401", 401, "invalid_request_error"),
            ("fault-429", 429, "requests"),
        ],
    )
    def test_status_faults(
        self, fake_upstream: FakeUpstream, model: str, status: int, error_type: str
    ) -> None:
        response = chat(fake_upstream, model)
        assert response.status_code == status
        assert response.json()["error"]["type"] == error_type

    def test_429_carries_retry_after(self, fake_upstream: FakeUpstream) -> None:
        response = chat(fake_upstream, "fault-429-retry-3")
        assert response.headers["retry-after"] == "3"

    def test_script_then_default(self, fake_upstream: FakeUpstream) -> None:
        """Scripted steps apply to that model in order, then its name decides again."""
        fake_upstream.script("gpt-4o-mini", ["500", "fault-429-retry-2", "ok"])
        statuses = [chat(fake_upstream, "gpt-4o-mini").status_code for _ in range(4)]
        assert statuses == [500, 429, 200, 200]
        assert chat(fake_upstream, "other").status_code == 200

    def test_reset(self, fake_upstream: FakeUpstream) -> None:
        with pytest.raises(httpx.TransportError):
            chat(fake_upstream, "fault-reset")
        assert fake_upstream.requests[-1].json["model"] == "fault-reset"
        assert chat(fake_upstream, "ok").status_code == 200

    def test_hang_until_client_gives_up_and_stop_is_prompt(self) -> None:
        up = FakeUpstream().start()
        try:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(
                    up.url + "/v1/chat/completions",
                    json={"model": "fault-hang", "messages": USER},
                    timeout=httpx.Timeout(10, read=0.3),
                )
        finally:
            up.stop(timeout=5)  # raises if the hanging connection blocked shutdown

    def test_stop_does_not_wait_for_open_hanging_connections(self) -> None:
        up = FakeUpstream().start()
        with socket.create_connection(("127.0.0.1", up.port), timeout=5) as sock:
            body = b'{"model":"fault-hang","messages":[{"role":"user","content":"x"}]}'
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            assert wait_until(lambda: len(up.requests) == 1, timeout=10)
            up.stop(timeout=5)
            assert sock.recv(100) == b""  # closed by the server, no answer

    def test_nonjson(self, fake_upstream: FakeUpstream) -> None:
        response = chat(fake_upstream, "fault-nonjson")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        with pytest.raises(ValueError):
            response.json()

    def test_latency_delays_the_answer(self, fake_upstream: FakeUpstream) -> None:
        """``latency_ms`` and ``latency-MS`` both hold the answer back."""

        def post(model: str) -> httpx.Response:
            return httpx.post(
                fake_upstream.url + "/v1/chat/completions",
                json={"model": model, "messages": USER},
                timeout=httpx.Timeout(10, read=0.3),
            )

        fake_upstream.latency_ms = 20_000
        with pytest.raises(httpx.ReadTimeout):
            post("m")
        fake_upstream.latency_ms = 0
        with pytest.raises(httpx.ReadTimeout):
            post("latency-20000")
        assert post("m").status_code == 200

    def test_slow_stream_flushes_each_chunk(self, fake_upstream: FakeUpstream) -> None:
        """The first chunk arrives while the rest is still minutes away."""
        body = {"model": "slow-stream-60000", "messages": USER, "stream": True}
        with httpx.stream(
            "POST", fake_upstream.url + "/v1/chat/completions", json=body, timeout=10
        ) as response:
            first = next(line for line in response.iter_lines() if line)
        assert '"role":"assistant"' in first

    def test_cut_stream_has_no_terminator(self, fake_upstream: FakeUpstream) -> None:
        stream = oai(fake_upstream).chat.completions.create(
            model="cut-stream", messages=USER, stream=True
        )
        received: list[str] = []
        with pytest.raises(openai.APIConnectionError):
            for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
        assert received  # some chunks came before the cut
        with pytest.raises(httpx.TransportError):
            chat(fake_upstream, "cut-stream")  # non-streaming: half a body, then close

    def test_error_midstream(self, fake_upstream: FakeUpstream) -> None:
        stream = oai(fake_upstream).chat.completions.create(
            model="error-midstream", messages=USER, stream=True
        )
        with pytest.raises(openai.APIError, match="error-midstream"):
            for _ in stream:
                pass

    def test_safety_is_content_filter(self, fake_upstream: FakeUpstream) -> None:
        reply = oai(fake_upstream).chat.completions.create(model="fault-safety", messages=USER)
        assert reply.choices[0].finish_reason == "content_filter"

    def test_cached_tokens_reported(self, fake_upstream: FakeUpstream) -> None:
        reply = oai(fake_upstream).chat.completions.create(model="cached", messages=USER)
        assert reply.usage is not None and reply.usage.prompt_tokens_details is not None
        assert reply.usage.prompt_tokens_details.cached_tokens == 2


class TestHttpLayer:
    def test_chunked_request_body_and_keep_alive(self, fake_upstream: FakeUpstream) -> None:
        """A chunked body is read whole, and the connection serves the next request."""
        payload = b'{"model": "m", "messages": [{"role": "user", "content": "chunky"}]}'

        def pieces() -> Any:
            yield payload[:10]
            yield payload[10:]

        with httpx.Client(base_url=fake_upstream.url) as client:
            first = client.post("/v1/chat/completions", content=pieces())
            second = client.post("/v1/chat/completions", content=payload)
        assert first.json()["choices"][0]["message"]["content"] == "echo: chunky"
        assert second.status_code == 200
        assert fake_upstream.requests[0].body == payload
        assert "transfer-encoding" in fake_upstream.requests[0].headers

    def test_garbage_gets_400(self, fake_upstream: FakeUpstream) -> None:
        with socket.create_connection(("127.0.0.1", fake_upstream.port), timeout=5) as sock:
            sock.sendall(b"NONSENSE\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 400")

    async def test_async_context_manager(self) -> None:
        async with FakeUpstream() as up, httpx.AsyncClient() as client:
            response = await client.post(
                up.url + "/v1/chat/completions", json={"model": "m", "messages": USER}
            )
        assert response.status_code == 200


class TestCommand:
    def test_mock_upstream_serves_then_stops_on_sigterm(self) -> None:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "fkllmproxy", "mock-upstream", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:

            def serving() -> bool:
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200
                except httpx.TransportError:
                    return False

            assert wait_until(serving, timeout=30), process.stderr
            reply = chat(FakeUpstream("127.0.0.1", port), "m")
            assert reply.json()["choices"][0]["message"]["content"].startswith("echo:")
            os.kill(process.pid, signal.SIGTERM)
            out, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        assert process.returncode == 0, err
        assert f"127.0.0.1:{port}" in out.decode()

    def test_port_in_use_is_one_line_error(self) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = subprocess.run(
                [sys.executable, "-m", "fkllmproxy", "mock-upstream", "--port", str(port)],
                capture_output=True,
                text=True,
                timeout=30,
            )
        assert result.returncode == 1
        assert result.stderr.startswith("fkllm: cannot listen")
        assert "Traceback" not in result.stderr


def test_tool_behaviour_calls_the_named_tool_with_the_last_word() -> None:
    """tool-NAME calls NAME (any case) with its first parameter set to the prompt's last word."""
    from fkllmproxy.testing.behaviour import Prompt, ToolSpec, parse_behaviour, plan_answer

    prompt = Prompt(
        model="tool-read",
        last_user_text="Show me /tmp/a.txt",
        tools=[ToolSpec("Agent", "prompt"), ToolSpec("Read", "file_path")],
    )
    answer = plan_answer(prompt, parse_behaviour("tool-read"))
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [
        ("Read", {"file_path": "/tmp/a.txt"})
    ]
