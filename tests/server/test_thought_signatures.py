"""Gemini thought signatures through ``fkllm serve``, for every client API.

The upstream is the fake acting as a Gemini 3 thinking model (``signed``): it signs the
first ``functionCall`` of an answer and refuses, with Google's 400, a later request whose
current turn brings a call back without the signature it issued. A two-turn tool round
trip (the model calls ``get_weather``, the client sends the result, the model answers)
must therefore carry the signature out to the client and back: inside the tool call id
(Chat Completions), the ``tool_use`` id (Messages), the ``function_call``'s ``call_id``
(Responses), and as the raw part (Gemini, passed through). Each test checks what the
client got and what the upstream received on the second turn. Also: parallel calls (only
the first signed), two sequential steps in one turn (each signed), thinking, Vertex AI,
and a client that drops the signature getting Google's 400 as a client error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
from fkllmproxy.translate.codecs._ids import signature_of
from tests.conftest import MASTER_KEY, RunningDaemon

CONFIG = """
[[providers]]
name = "gem"
type = "gemini"
base_url = "{url}"
api_key_env = "FAKE_GOOGLE_KEY"

[[providers]]
name = "vtx"
type = "vertex"
base_url = "{url}"
credentials_file = "{credentials}"

[[models]]
name = "gem3"
targets = [{{ provider = "gem", model = "signed" }}]

[[models]]
name = "vtx3"
targets = [{{ provider = "vtx", model = "signed" }}]

[[models]]
name = "gem3-think"
targets = [{{ provider = "gem", model = "signed-thinking" }}]

[[models]]
name = "gem3-parallel"
targets = [{{ provider = "gem", model = "signed-tools-all" }}]
"""
CITY = "Paris"
CHAT_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
MESSAGES_TOOL: Any = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TIME_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
RESPONSES_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    tmp = tmp_path_factory.mktemp("thought-signatures")
    credentials = upstream.write_service_account(tmp / "sa.json")
    with RunningDaemon(
        tmp,
        CONFIG.format(url=upstream.url, credentials=credentials),
        env={"FAKE_GOOGLE_KEY": "google-upstream-key"},
    ) as running:
        yield running


@pytest.fixture
def up(upstream: FakeUpstream) -> FakeUpstream:
    upstream.clear()
    return upstream


@pytest.fixture
def oai(daemon: RunningDaemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=daemon.url + "/v1", api_key=MASTER_KEY, max_retries=0)


@pytest.fixture
def claude(daemon: RunningDaemon) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=daemon.url, api_key=MASTER_KEY, max_retries=0)


def model_calls(up: FakeUpstream) -> list[RecordedRequest]:
    return [r for r in up.requests if r.path.endswith(("generateContent", "GenerateContent"))]


def issued(up: FakeUpstream) -> str:
    """The one signature the fake issued in this test."""
    (signature,) = up.thought_signatures.issued
    return signature


def sent_back_call(up: FakeUpstream) -> dict[str, Any]:
    """The ``functionCall`` part the upstream received on the second turn."""
    first, second = model_calls(up)
    assert "thoughtSignature" not in json.dumps(first.json)
    (model_turn,) = [c for c in second.json["contents"] if c["role"] == "model"]
    (part,) = [p for p in model_turn["parts"] if "functionCall" in p]
    assert part["functionCall"]["name"] == "get_weather"
    return dict(part)


class TestChatCompletions:
    @pytest.mark.parametrize("model", ["gem3", "vtx3"])
    def test_round_trip(self, oai: openai.OpenAI, up: FakeUpstream, model: str) -> None:
        """The signature rides in the tool call id and goes back on the functionCall part
        (Gemini API and Vertex AI alike)."""
        messages: list[Any] = [{"role": "user", "content": CITY}]
        first = oai.chat.completions.create(model=model, messages=messages, tools=[CHAT_TOOL])
        (call,) = first.choices[0].message.tool_calls or []
        assert first.choices[0].finish_reason == "tool_calls"
        assert call.type == "function" and json.loads(call.function.arguments) == {"city": CITY}
        assert signature_of(call.id) == issued(up)
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ]
        second = oai.chat.completions.create(model=model, messages=messages, tools=[CHAT_TOOL])
        assert second.choices[0].message.content == "tool said: sunny"
        assert sent_back_call(up)["thoughtSignature"] == issued(up)

    def test_two_steps_in_one_turn(self, oai: openai.OpenAI, up: FakeUpstream) -> None:
        """Sequential steps after one user text: each step's call goes back with its own
        signature (Gemini checks every step of the current turn)."""
        question: Any = {"role": "user", "content": CITY}
        steps = []
        for _ in range(2):  # two answers that each call get_weather, each signed
            answer = oai.chat.completions.create(
                model="gem3", messages=[question], tools=[CHAT_TOOL]
            )
            steps.append(answer.choices[0].message)
        messages: list[Any] = [question]
        for number, step in enumerate(steps):
            (call,) = step.tool_calls or []
            messages += [
                step.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": f"step{number}"},
            ]
        up.clear()
        final = oai.chat.completions.create(model="gem3", messages=messages, tools=[CHAT_TOOL])
        assert final.choices[0].message.content == "tool said: step1"
        (sent,) = model_calls(up)
        signatures = [
            part.get("thoughtSignature")
            for content in sent.json["contents"]
            for part in content["parts"]
            if "functionCall" in part
        ]
        assert signatures == [signature_of(s.tool_calls[0].id) for s in steps if s.tool_calls]
        assert None not in signatures and len(set(signatures)) == 2

    def test_streamed_round_trip(self, oai: openai.OpenAI, up: FakeUpstream) -> None:
        """Streamed both ways: the id in the first tool-call delta carries the signature."""
        messages: list[Any] = [{"role": "user", "content": CITY}]
        ids, names, arguments = [], [], ""
        for chunk in oai.chat.completions.create(
            model="gem3", messages=messages, tools=[CHAT_TOOL], stream=True
        ):
            for delta in (c.delta for c in chunk.choices):
                for piece in delta.tool_calls or []:
                    ids += [piece.id] if piece.id else []
                    if piece.function and piece.function.name:
                        names.append(piece.function.name)
                    arguments += (piece.function and piece.function.arguments) or ""
        (call_id,) = ids
        assert names == ["get_weather"] and json.loads(arguments) == {"city": CITY}
        assert signature_of(call_id) == issued(up)
        messages += [
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
        ]
        text = "".join(
            c.choices[0].delta.content or ""
            for c in oai.chat.completions.create(
                model="gem3", messages=messages, tools=[CHAT_TOOL], stream=True
            )
            if c.choices
        )
        assert text == "tool said: sunny"
        assert sent_back_call(up)["thoughtSignature"] == issued(up)

    def test_parallel_calls_only_the_first_signed(
        self, oai: openai.OpenAI, up: FakeUpstream
    ) -> None:
        """Parallel calls: only the first id carries a signature, and only the first
        functionCall part goes back signed."""
        messages: list[Any] = [{"role": "user", "content": CITY}]
        tools = [CHAT_TOOL, TIME_TOOL]
        first = oai.chat.completions.create(model="gem3-parallel", messages=messages, tools=tools)
        weather, time = first.choices[0].message.tool_calls or []
        assert weather.type == time.type == "function"
        assert (weather.function.name, time.function.name) == ("get_weather", "get_time")
        assert signature_of(weather.id) == issued(up) and signature_of(time.id) is None
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": weather.id, "content": "sunny"},
            {"role": "tool", "tool_call_id": time.id, "content": "noon"},
        ]
        second = oai.chat.completions.create(model="gem3-parallel", messages=messages, tools=tools)
        assert second.choices[0].message.content == "tool said: sunny noon"
        (model_turn,) = [c for c in model_calls(up)[1].json["contents"] if c["role"] == "model"]
        signed, unsigned = model_turn["parts"]
        assert signed["thoughtSignature"] == issued(up) and "thoughtSignature" not in unsigned

    def test_thinking_round_trip(self, oai: openai.OpenAI, up: FakeUpstream) -> None:
        """With reasoning_effort (a thinking budget upstream) the call stays signed."""
        messages: list[Any] = [{"role": "user", "content": CITY}]
        first = oai.chat.completions.create(
            model="gem3-think", messages=messages, tools=[CHAT_TOOL], reasoning_effort="low"
        )
        (call,) = first.choices[0].message.tool_calls or []
        assert "thinkingBudget" in model_calls(up)[0].json["generationConfig"]["thinkingConfig"]
        assert signature_of(call.id) == issued(up)
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ]
        second = oai.chat.completions.create(
            model="gem3-think", messages=messages, tools=[CHAT_TOOL], reasoning_effort="low"
        )
        assert second.choices[0].message.content == "tool said: sunny"
        assert sent_back_call(up)["thoughtSignature"] == issued(up)

    def test_a_rebuilt_call_id_gets_the_providers_400(
        self, oai: openai.OpenAI, up: FakeUpstream
    ) -> None:
        """A client that drops the signature (its own call id) gets Google's 400 as a
        client error naming the missing signature, not a 500."""
        messages: list[Any] = [{"role": "user", "content": CITY}]
        first = oai.chat.completions.create(model="gem3", messages=messages, tools=[CHAT_TOOL])
        (call,) = first.choices[0].message.tool_calls or []
        assert call.type == "function"
        rebuilt = {"id": "call_1", "type": "function", "function": call.function.model_dump()}
        messages += [
            {"role": "assistant", "tool_calls": [rebuilt]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]
        with pytest.raises(openai.BadRequestError) as refused:
            oai.chat.completions.create(model="gem3", messages=messages, tools=[CHAT_TOOL])
        assert refused.value.status_code == 400
        assert "missing a thought_signature" in str(refused.value.message)
        assert "get_weather" in str(refused.value.message)
        assert "thoughtSignature" not in sent_back_call(up)


class TestMessages:
    def test_round_trip(self, claude: anthropic.Anthropic, up: FakeUpstream) -> None:
        """The signature rides in the tool_use id and goes back on the functionCall part."""
        question: Any = {"role": "user", "content": CITY}
        first = claude.messages.create(
            model="gem3", max_tokens=512, tools=[MESSAGES_TOOL], messages=[question]
        )
        (use,) = first.content
        assert use.type == "tool_use" and use.input == {"city": CITY}
        assert first.stop_reason == "tool_use"
        assert signature_of(use.id) == issued(up)
        result: Any = {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}
        second = claude.messages.create(
            model="gem3",
            max_tokens=512,
            tools=[MESSAGES_TOOL],
            messages=[
                question,
                {"role": "assistant", "content": first.content},
                {"role": "user", "content": [result]},
            ],
        )
        assert [b.text for b in second.content if b.type == "text"] == ["tool said: sunny"]
        assert sent_back_call(up)["thoughtSignature"] == issued(up)

    def test_two_steps_in_one_turn(self, claude: anthropic.Anthropic, up: FakeUpstream) -> None:
        """Sequential steps after one user text: each tool_use goes back with its own
        signature on its functionCall part."""
        question: Any = {"role": "user", "content": CITY}
        steps = [
            claude.messages.create(
                model="gem3", max_tokens=512, tools=[MESSAGES_TOOL], messages=[question]
            )
            for _ in range(2)
        ]
        messages: list[Any] = [question]
        for number, step in enumerate(steps):
            (use,) = step.content
            assert use.type == "tool_use"
            result = {"type": "tool_result", "tool_use_id": use.id, "content": f"step{number}"}
            messages += [
                {"role": "assistant", "content": step.content},
                {"role": "user", "content": [result]},
            ]
        up.clear()
        final = claude.messages.create(
            model="gem3", max_tokens=512, tools=[MESSAGES_TOOL], messages=messages
        )
        assert [b.text for b in final.content if b.type == "text"] == ["tool said: step1"]
        (sent,) = model_calls(up)
        signatures = [
            part.get("thoughtSignature")
            for content in sent.json["contents"]
            for part in content["parts"]
            if "functionCall" in part
        ]
        expected = [
            signature_of(block.id) for s in steps for block in s.content if block.type == "tool_use"
        ]
        assert signatures == expected and None not in signatures

    def test_streamed_thinking_round_trip(
        self, claude: anthropic.Anthropic, up: FakeUpstream
    ) -> None:
        """Streamed with thinking on: the thought summary and the signed call both come
        back, and the signature reaches the upstream again on the call's part."""
        question: Any = {"role": "user", "content": CITY}
        thinking: Any = {"type": "enabled", "budget_tokens": 2048}
        with claude.messages.stream(
            model="gem3-think",
            max_tokens=4096,
            thinking=thinking,
            tools=[MESSAGES_TOOL],
            messages=[question],
        ) as stream:
            first = stream.get_final_message()
        assert [block.type for block in first.content] == ["thinking", "tool_use"]
        use = first.content[1]
        assert use.type == "tool_use" and use.input == {"city": CITY}
        assert signature_of(use.id) == issued(up)
        result: Any = {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}
        with claude.messages.stream(
            model="gem3-think",
            max_tokens=4096,
            thinking=thinking,
            tools=[MESSAGES_TOOL],
            messages=[
                question,
                {"role": "assistant", "content": first.content},
                {"role": "user", "content": [result]},
            ],
        ) as stream:
            text = "".join(stream.text_stream)
        assert text == "tool said: sunny"
        assert sent_back_call(up)["thoughtSignature"] == issued(up)


class TestResponses:
    def test_round_trip_by_full_input(self, oai: openai.OpenAI, up: FakeUpstream) -> None:
        """The signature rides in the function_call's call_id; the client replays the items."""
        history: list[Any] = [{"role": "user", "content": CITY}]
        first = oai.responses.create(model="gem3", input=history, tools=[RESPONSES_TOOL])
        (call,) = first.output
        assert call.type == "function_call" and json.loads(call.arguments) == {"city": CITY}
        assert signature_of(call.call_id) == issued(up)
        history += [item.model_dump(exclude_none=True) for item in first.output]
        history.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
        second = oai.responses.create(model="gem3", input=history, tools=[RESPONSES_TOOL])
        assert second.output_text == "tool said: sunny"
        assert sent_back_call(up)["thoughtSignature"] == issued(up)

    def test_reasoning_round_trip_by_full_input(self, oai: openai.OpenAI, up: FakeUpstream) -> None:
        """With a reasoning summary asked for, the reasoning item and the signed call are
        replayed together and the call's signature still reaches the upstream."""
        history: list[Any] = [{"role": "user", "content": CITY}]
        reasoning: Any = {"effort": "low", "summary": "auto"}
        first = oai.responses.create(
            model="gem3-think", input=history, tools=[RESPONSES_TOOL], reasoning=reasoning
        )
        assert [item.type for item in first.output] == ["reasoning", "function_call"]
        call = first.output[1]
        assert call.type == "function_call" and signature_of(call.call_id) == issued(up)
        history += [item.model_dump(exclude_none=True) for item in first.output]
        history.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
        second = oai.responses.create(
            model="gem3-think", input=history, tools=[RESPONSES_TOOL], reasoning=reasoning
        )
        assert second.output_text == "tool said: sunny"
        assert sent_back_call(up)["thoughtSignature"] == issued(up)

    def test_streamed_round_trip_by_previous_response_id(
        self, oai: openai.OpenAI, up: FakeUpstream
    ) -> None:
        """Streamed, the second turn by ``previous_response_id`` (the stored call carries
        the signature too)."""
        with oai.responses.stream(model="gem3", input=CITY, tools=[RESPONSES_TOOL]) as stream:
            first = stream.get_final_response()
        (call,) = first.output
        assert call.type == "function_call"
        assert signature_of(call.call_id) == issued(up)
        output: Any = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
        with oai.responses.stream(
            model="gem3", previous_response_id=first.id, input=[output], tools=[RESPONSES_TOOL]
        ) as stream:
            second = stream.get_final_response()
        assert second.output_text == "tool said: sunny"
        assert sent_back_call(up)["thoughtSignature"] == issued(up)


class TestGeminiPassthrough:
    @staticmethod
    def client(daemon: RunningDaemon) -> genai.Client:
        options = types.HttpOptions(base_url=daemon.url, api_version="v1beta", timeout=30_000)
        return genai.Client(api_key=MASTER_KEY, http_options=options)

    @staticmethod
    def tools() -> types.GenerateContentConfig:
        declaration = types.FunctionDeclaration(
            name="get_weather",
            description="Weather for a city.",
            parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
        )
        return types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[declaration])],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )

    @pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
    def test_round_trip(self, daemon: RunningDaemon, up: FakeUpstream, stream: bool) -> None:
        """The google-genai SDK gets the raw signed part and sends it back as it got it."""
        client, config = self.client(daemon), self.tools()
        asked = types.Content(role="user", parts=[types.Part(text=CITY)])
        if stream:
            chunks = list(
                client.models.generate_content_stream(model="gem3", contents=[asked], config=config)
            )
            (chunk,) = [c for c in chunks if c.function_calls]
            model_turn = chunk.candidates[0].content  # type: ignore[index]
        else:
            first = client.models.generate_content(model="gem3", contents=[asked], config=config)
            model_turn = first.candidates[0].content  # type: ignore[index]
        assert model_turn is not None and model_turn.parts
        (part,) = model_turn.parts
        assert part.function_call is not None and part.function_call.args == {"city": CITY}
        assert part.thought_signature == base64.b64decode(issued(up))
        answer = types.Part.from_function_response(name="get_weather", response={"r": "sunny"})
        contents = [asked, model_turn, types.Content(role="user", parts=[answer])]
        second = client.models.generate_content(model="gem3", contents=contents, config=config)
        assert second.text == "tool said: sunny"
        # protobuf bytes: the SDK may send them URL-safe; Google (and the fake) decode both.
        sent = sent_back_call(up)["thoughtSignature"]
        urlsafe = sent.replace("-", "+").replace("_", "/")
        assert base64.b64decode(urlsafe + "=" * (-len(urlsafe) % 4)) == base64.b64decode(issued(up))


def test_the_gemini_api_relays_the_refusal(daemon: RunningDaemon, up: FakeUpstream) -> None:
    """A Gemini client that strips the signature gets Google's 400 as Google sent it."""
    url = f"{daemon.url}/v1beta/models/gem3:generateContent"
    headers = {"x-goog-api-key": MASTER_KEY}
    asked = {"role": "user", "parts": [{"text": CITY}]}
    tools = [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "OBJECT"}}]}]
    first = httpx.post(url, json={"contents": [asked], "tools": tools}, headers=headers)
    model_turn = first.json()["candidates"][0]["content"]
    assert model_turn["parts"][0].pop("thoughtSignature") == issued(up)
    result = {"functionResponse": {"name": "get_weather", "response": {"r": "sunny"}}}
    contents = [asked, model_turn, {"role": "user", "parts": [result]}]
    refused = httpx.post(url, json={"contents": contents, "tools": tools}, headers=headers)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert "missing a thought_signature" in error["message"]
