"""The fake speaks the Gemini API and Vertex AI, including Vertex's OAuth2 token flow."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from fkllmproxy.testing.behaviour import embedding_vector, parse_behaviour
from fkllmproxy.testing.fake_upstream import FakeUpstream

KEY = {"x-goog-api-key": "g-key"}
USER = {"role": "user", "parts": [{"text": "hello brave new world"}]}
BODY = {"contents": [USER]}
WEATHER = {
    "functionDeclarations": [
        {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
        }
    ]
}
VERTEX_MODEL = "/v1/projects/fake-project/locations/us-central1/publishers/google/models/{}:{}"


def gemini(
    up: FakeUpstream, model: str, body: Any, method: str = "generateContent", **params: str
) -> httpx.Response:
    url = f"{up.url}/v1beta/models/{model}:{method}"
    return httpx.post(url, json=body, headers=KEY, params=params, timeout=10)


def sse_frames(up: FakeUpstream, model: str, body: Any) -> list[dict[str, Any]]:
    url = f"{up.url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
    with httpx.stream("POST", url, json=body, headers=KEY, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    assert "[DONE]" not in raw
    chunks = [chunk for chunk in raw.split("\r\n\r\n") if chunk]
    assert all(chunk.startswith("data: ") for chunk in chunks)
    return [json.loads(chunk.removeprefix("data: ")) for chunk in chunks]


def text_of(response: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in response["candidates"][0]["content"]["parts"])


class TestGenerateContent:
    def test_answer_and_usage(self, fake_upstream: FakeUpstream) -> None:
        body = {**BODY, "systemInstruction": {"parts": [{"text": "be brief"}]}}
        answer = gemini(fake_upstream, "gemini-2.0-flash", body).json()
        candidate = answer["candidates"][0]
        assert candidate["content"]["role"] == "model"
        assert text_of(answer) == "echo: hello brave new world"
        assert candidate["finishReason"] == "STOP"
        assert answer["usageMetadata"] == {
            "promptTokenCount": 6,
            "candidatesTokenCount": 5,
            "totalTokenCount": 11,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 6}],
        }
        assert (
            fake_upstream.requests[-1].json["systemInstruction"]["parts"][0]["text"] == "be brief"
        )

    def test_key_in_query_and_missing_key(self, fake_upstream: FakeUpstream) -> None:
        url = f"{fake_upstream.url}/v1beta/models/m:generateContent"
        assert httpx.post(url, params={"key": "k"}, json=BODY).status_code == 200
        refused = httpx.post(url, json=BODY)
        assert refused.status_code == 403
        assert refused.json()["error"]["status"] == "PERMISSION_DENIED"

    def test_sse_stream(self, fake_upstream: FakeUpstream) -> None:
        frames = sse_frames(fake_upstream, "m", BODY)
        assert "".join(text_of(frame) for frame in frames) == "echo: hello brave new world"
        assert [f["candidates"][0].get("finishReason") for f in frames][-1] == "STOP"
        assert all("finishReason" not in f["candidates"][0] for f in frames[:-1])
        counts = [frame["usageMetadata"]["candidatesTokenCount"] for frame in frames]
        assert counts == sorted(counts) and counts[-1] == 5  # cumulative, the last is the total

    def test_stream_without_alt_sse_is_a_json_array(self, fake_upstream: FakeUpstream) -> None:
        response = gemini(fake_upstream, "m", BODY, "streamGenerateContent")
        elements = response.json()
        assert isinstance(elements, list) and len(elements) == 5
        assert "".join(text_of(e) for e in elements) == "echo: hello brave new world"

    def test_max_output_tokens_and_json_mode(self, fake_upstream: FakeUpstream) -> None:
        cut = gemini(fake_upstream, "m", {**BODY, "generationConfig": {"maxOutputTokens": 2}})
        assert cut.json()["candidates"][0]["finishReason"] == "MAX_TOKENS"
        json_mode = {**BODY, "generation_config": {"response_mime_type": "application/json"}}
        assert json.loads(text_of(gemini(fake_upstream, "m", json_mode).json())) == {
            "echo": "hello brave new world"
        }

    def test_cached_content_tokens(self, fake_upstream: FakeUpstream) -> None:
        usage = gemini(fake_upstream, "cached", BODY).json()["usageMetadata"]
        assert usage["cachedContentTokenCount"] == 2
        assert usage["promptTokenCount"] == 4  # Gemini's prompt count includes the cache

    def test_images_are_accepted_inline(self, fake_upstream: FakeUpstream) -> None:
        image = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(b"png").decode()}}
        body = {"contents": [{"role": "user", "parts": [{"text": "what is this"}, image]}]}
        assert text_of(gemini(fake_upstream, "m", body).json()) == "echo: what is this"


class TestFunctionCalling:
    def test_function_call_then_response(self, fake_upstream: FakeUpstream) -> None:
        asked = {"role": "user", "parts": [{"text": "Paris"}]}
        first = gemini(fake_upstream, "tools", {"contents": [asked], "tools": [WEATHER]}).json()
        (part,) = first["candidates"][0]["content"]["parts"]
        assert part["functionCall"] == {"name": "get_weather", "args": {"city": "Paris"}}
        answer = {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}
        contents = [asked, first["candidates"][0]["content"], {"role": "user", "parts": [answer]}]
        second = gemini(fake_upstream, "tools", {"contents": contents, "tools": [WEATHER]})
        assert text_of(second.json()) == "tool said: sunny"

    def test_function_call_streams_whole(self, fake_upstream: FakeUpstream) -> None:
        frames = sse_frames(fake_upstream, "tools", {**BODY, "tools": [WEATHER]})
        assert len(frames) == 1
        assert (
            frames[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"]
            == "get_weather"
        )

    def test_mode_any_forces_a_call(self, fake_upstream: FakeUpstream) -> None:
        config = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
        body = {**BODY, "tools": [WEATHER], "toolConfig": config}
        parts = gemini(fake_upstream, "plain", body).json()["candidates"][0]["content"]["parts"]
        assert "functionCall" in parts[0]


def call_turn(*names: str) -> dict[str, Any]:
    return {"role": "model", "parts": [{"functionCall": {"name": n, "args": {}}} for n in names]}


def response_turn(*names: str) -> dict[str, Any]:
    parts = [{"functionResponse": {"name": n, "response": {"r": 1}}} for n in names]
    return {"role": "user", "parts": parts}


class TestRequestRules:
    @pytest.mark.parametrize(
        ("body", "fragment"),
        [
            ({**BODY, "temperature": 0.5}, 'Unknown name "temperature"'),
            ({**BODY, "generationConfig": {"max_tokens": 5}}, 'Unknown name "max_tokens"'),
            ({**BODY, "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
                "type": "object", "additionalProperties": False}}]}]},
             'Unknown name "additionalProperties"'),
            ({"contents": [{"role": "user", "parts": [{"text": "a", "image_url": "x"}]}]},
             'Unknown name "image_url"'),
            ({"contents": []}, "contents is not specified"),
            ({"contents": [{"role": "assistant", "parts": [{"text": "a"}]}]},
             "valid role: user, model"),
            ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
            ({"contents": [USER, response_turn("f")]}, "function response turn comes"),
            ({"contents": [USER, call_turn("f", "g"), response_turn("f")]}, "number of function response"),
            ({"contents": [USER, {"role": "model", "parts": [{"text": "ok"}]}, call_turn("f")]},
             "function call turn comes"),
            ({**BODY, "tools": [{"functionDeclarations": [{"name": "bad name!"}]}]},
             "Invalid function name"),
        ],
    )  # fmt: skip
    def test_rejected_like_google(
        self, fake_upstream: FakeUpstream, body: dict[str, Any], fragment: str
    ) -> None:
        response = gemini(fake_upstream, "m", body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
        assert fragment in error["message"]

    def test_snake_case_names_accepted(self, fake_upstream: FakeUpstream) -> None:
        body = {
            "contents": [USER],
            "system_instruction": {"parts": [{"text": "s"}]},
            "generation_config": {"max_output_tokens": 50, "stop_sequences": ["zzz"]},
        }
        assert gemini(fake_upstream, "m", body).status_code == 200

    def test_a_full_tool_round_is_valid(self, fake_upstream: FakeUpstream) -> None:
        body = {"contents": [USER, call_turn("f", "g"), response_turn("f", "g")]}
        assert gemini(fake_upstream, "m", body).status_code == 200


TWO_TOOLS = {
    "functionDeclarations": [
        *WEATHER["functionDeclarations"],
        {"name": "get_time", "parameters": {"type": "OBJECT", "properties": {"zone": {}}}},
    ]
}
ASKED = {"role": "user", "parts": [{"text": "Paris"}]}


def weather_result(*names: str) -> dict[str, Any]:
    parts = [{"functionResponse": {"name": n, "response": {"result": "sunny"}}} for n in names]
    return {"role": "user", "parts": parts}


def signed_call(up: FakeUpstream, model: str = "signed") -> dict[str, Any]:
    """The model turn a signing model answers ``ASKED`` with (``get_weather`` called)."""
    first = gemini(up, model, {"contents": [ASKED], "tools": [WEATHER]})
    assert first.status_code == 200, first.text
    content: dict[str, Any] = first.json()["candidates"][0]["content"]
    return content


class TestThoughtSignatures:
    """``signed`` models act as Gemini 3 does with thought signatures on function calls."""

    def test_the_name_reads_as_signed_plus_a_behaviour(self) -> None:
        """``signed`` is ``tools`` that signs; ``signed-WORD`` is WORD that signs."""
        assert (parse_behaviour("signed").kind, parse_behaviour("signed").signed) == ("tools", True)
        assert parse_behaviour("models/signed-tools-all").kind == "tools-all"
        assert parse_behaviour("signed-thinking").signed
        assert not parse_behaviour("tools").signed

    def test_the_first_call_is_signed_with_opaque_base64(self, fake_upstream: FakeUpstream) -> None:
        """The functionCall part carries a base64 thoughtSignature the fake remembers."""
        (part,) = signed_call(fake_upstream)["parts"]
        assert part["functionCall"] == {"name": "get_weather", "args": {"city": "Paris"}}
        signature = part["thoughtSignature"]
        assert base64.b64decode(signature, validate=True)
        assert {"+", "/", "="} <= set(signature)  # all of base64's awkward characters
        assert fake_upstream.thought_signatures.issued == [signature]

    def test_parallel_calls_sign_only_the_first(self, fake_upstream: FakeUpstream) -> None:
        """Of parallel calls only the first functionCall part is signed."""
        body = {"contents": [ASKED], "tools": [TWO_TOOLS]}
        parts = gemini(fake_upstream, "signed-tools-all", body).json()["candidates"][0]["content"]
        first, second = parts["parts"]
        assert first["functionCall"]["name"] == "get_weather" and "thoughtSignature" in first
        assert second["functionCall"]["name"] == "get_time" and "thoughtSignature" not in second

    def test_a_streamed_call_is_signed(self, fake_upstream: FakeUpstream) -> None:
        """Streamed (SSE and JSON array), the call comes whole with its signature."""
        body = {"contents": [ASKED], "tools": [WEATHER]}
        (frame,) = sse_frames(fake_upstream, "signed", body)
        (part,) = frame["candidates"][0]["content"]["parts"]
        assert part["thoughtSignature"] == fake_upstream.thought_signatures.issued[-1]
        array = gemini(fake_upstream, "signed", body, "streamGenerateContent").json()
        (part,) = array[0]["candidates"][0]["content"]["parts"]
        assert part["thoughtSignature"] == fake_upstream.thought_signatures.issued[-1]
        assert len(set(fake_upstream.thought_signatures.issued)) == 2

    def test_a_thought_summary_comes_before_the_signed_call(
        self, fake_upstream: FakeUpstream
    ) -> None:
        """With includeThoughts the thought part comes first; the call is still signed."""
        body = {
            "contents": [ASKED],
            "tools": [WEATHER],
            "generationConfig": {"thinkingConfig": {"includeThoughts": True}},
        }
        answer = gemini(fake_upstream, "signed-thinking", body).json()
        thought, call = answer["candidates"][0]["content"]["parts"]
        assert thought["thought"] is True and "thoughtSignature" not in thought
        assert call["thoughtSignature"] == fake_upstream.thought_signatures.issued[-1]

    def test_its_own_signature_back_is_accepted(self, fake_upstream: FakeUpstream) -> None:
        """The call sent back as received, then the result: the model answers."""
        contents = [ASKED, signed_call(fake_upstream), weather_result("get_weather")]
        second = gemini(fake_upstream, "signed", {"contents": contents, "tools": [WEATHER]})
        assert second.status_code == 200, second.text
        assert text_of(second.json()) == "tool said: sunny"

    def test_url_safe_unpadded_base64_is_the_same_signature(
        self, fake_upstream: FakeUpstream
    ) -> None:
        """The signature is protobuf bytes: URL-safe, unpadded base64 of it is accepted."""
        call = signed_call(fake_upstream)
        signature = call["parts"][0]["thoughtSignature"]
        urlsafe = signature.replace("+", "-").replace("/", "_").rstrip("=")
        call["parts"][0]["thoughtSignature"] = urlsafe
        body = {"contents": [ASKED, call, weather_result("get_weather")], "tools": [WEATHER]}
        assert gemini(fake_upstream, "signed", body).status_code == 200

    def test_a_missing_signature_is_refused(self, fake_upstream: FakeUpstream) -> None:
        """A current-turn call without its signature: 400 naming the function and position."""
        call = signed_call(fake_upstream)
        del call["parts"][0]["thoughtSignature"]
        call["parts"].insert(0, {"text": "Let me look."})
        body = {"contents": [ASKED, call, weather_result("get_weather")], "tools": [WEATHER]}
        refused = gemini(fake_upstream, "signed", body)
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
        assert error["message"].startswith(
            "Function call is missing a thought_signature in functionCall parts."
        )
        assert "function call `default_api:get_weather`, position 1." in error["message"]
        streamed = gemini(fake_upstream, "signed", body, "streamGenerateContent", alt="sse")
        assert streamed.status_code == 400

    @pytest.mark.parametrize("foreign", ["c2lnbmF0dXJl", "not base64!", "Zm9v"])
    def test_a_signature_it_did_not_issue_is_refused(
        self, fake_upstream: FakeUpstream, foreign: str
    ) -> None:
        """A signature this model never issued (another's, or garbage) is refused."""
        call = signed_call(fake_upstream)
        call["parts"][0]["thoughtSignature"] = foreign
        body = {"contents": [ASKED, call, weather_result("get_weather")], "tools": [WEATHER]}
        refused = gemini(fake_upstream, "signed", body)
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == "Invalid thought signature."

    def test_a_signature_moved_to_another_call_is_refused(
        self, fake_upstream: FakeUpstream
    ) -> None:
        """A signature is good only on the call it was issued for."""
        signature = signed_call(fake_upstream)["parts"][0]["thoughtSignature"]
        call = {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_time", "args": {}}, "thoughtSignature": signature}
            ],
        }
        body = {"contents": [ASKED, call, weather_result("get_time")], "tools": [TWO_TOOLS]}
        assert gemini(fake_upstream, "signed", body).status_code == 400

    def test_each_step_of_the_current_turn_is_checked(self, fake_upstream: FakeUpstream) -> None:
        """Sequential steps: every step's first call needs its own signature."""
        step_one = signed_call(fake_upstream)
        contents = [ASKED, step_one, weather_result("get_weather")]
        step_two = gemini(
            fake_upstream, "signed", {"contents": [*contents, ASKED], "tools": [WEATHER]}
        )
        # A later step of the same turn, as a model calling again after a result would.
        step_two_call = step_two.json()["candidates"][0]["content"]
        turn = [*contents, step_two_call, weather_result("get_weather")]
        assert (
            gemini(fake_upstream, "signed", {"contents": turn, "tools": [WEATHER]}).status_code
            == 200
        )
        del turn[1]["parts"][0]["thoughtSignature"]
        refused = gemini(fake_upstream, "signed", {"contents": turn, "tools": [WEATHER]})
        assert refused.status_code == 400
        assert "missing a thought_signature" in refused.json()["error"]["message"]

    def test_earlier_turns_and_later_parallel_calls_are_not_checked(
        self, fake_upstream: FakeUpstream
    ) -> None:
        """Only the current turn is validated, and only each step's first call."""
        old_turn = [ASKED, call_turn("get_weather"), weather_result("get_weather")]
        model_text = {"role": "model", "parts": [{"text": "sunny"}]}
        body = {"contents": [*old_turn, model_text, ASKED], "tools": [TWO_TOOLS]}
        assert gemini(fake_upstream, "signed", body).status_code == 200
        parallel = gemini(
            fake_upstream, "signed-tools-all", {"contents": [ASKED], "tools": [TWO_TOOLS]}
        )
        content = parallel.json()["candidates"][0]["content"]
        contents = [ASKED, content, weather_result("get_weather", "get_time")]
        answer = gemini(
            fake_upstream, "signed-tools-all", {"contents": contents, "tools": [TWO_TOOLS]}
        )
        assert answer.status_code == 200, answer.text

    def test_other_models_neither_sign_nor_check(self, fake_upstream: FakeUpstream) -> None:
        """Without ``signed`` in the name, calls are unsigned and none is asked back."""
        (part,) = signed_call(fake_upstream, "tools")["parts"]
        assert "thoughtSignature" not in part
        contents = [ASKED, call_turn("get_weather"), weather_result("get_weather")]
        assert gemini(fake_upstream, "tools", {"contents": contents}).status_code == 200
        assert fake_upstream.thought_signatures.issued == []

    def test_vertex_models_sign_too(self, fake_upstream: FakeUpstream) -> None:
        """Vertex AI's publisher models sign and check as the Gemini API's do."""
        headers = {"authorization": f"Bearer {fake_upstream.issue_token()}"}
        url = fake_upstream.url + VERTEX_MODEL.format("signed", "generateContent")
        first = httpx.post(url, json={"contents": [ASKED], "tools": [WEATHER]}, headers=headers)
        call = first.json()["candidates"][0]["content"]
        assert call["parts"][0]["thoughtSignature"] == fake_upstream.thought_signatures.issued[-1]
        contents = [ASKED, call, weather_result("get_weather")]
        assert httpx.post(url, json={"contents": contents}, headers=headers).status_code == 200
        del call["parts"][0]["thoughtSignature"]
        assert httpx.post(url, json={"contents": contents}, headers=headers).status_code == 400


class TestEmbeddingsAndCounting:
    def test_embed_content(self, fake_upstream: FakeUpstream) -> None:
        body = {"content": {"parts": [{"text": "one two"}]}, "outputDimensionality": 4}
        answer = gemini(fake_upstream, "text-embedding-004", body, "embedContent").json()
        assert answer["embedding"]["values"] == pytest.approx(embedding_vector("one two", 4))

    def test_batch_embed_contents(self, fake_upstream: FakeUpstream) -> None:
        requests = [
            {"model": "models/e", "content": {"parts": [{"text": text}]}} for text in ("a", "b")
        ]
        answer = gemini(fake_upstream, "e", {"requests": requests}, "batchEmbedContents").json()
        assert [e["values"] for e in answer["embeddings"]] == [
            pytest.approx(embedding_vector("a")),
            pytest.approx(embedding_vector("b")),
        ]
        wrong = [{**requests[0], "model": "models/other"}]
        assert (
            gemini(fake_upstream, "e", {"requests": wrong}, "batchEmbedContents").status_code == 400
        )

    def test_count_tokens(self, fake_upstream: FakeUpstream) -> None:
        assert gemini(fake_upstream, "m", BODY, "countTokens").json()["totalTokens"] == 4
        wrapped = {"generateContentRequest": {**BODY, "model": "models/m"}}
        assert gemini(fake_upstream, "m", wrapped, "countTokens").json()["totalTokens"] == 4


class TestFaults:
    @pytest.mark.parametrize(
        ("model", "status", "code"),
        [
            ("fault-500", 500, "INTERNAL"),
            ("fault-503", 503, "UNAVAILABLE"),
            ("fault-429", 429, "RESOURCE_EXHAUSTED"),
            ("fault-400", 400, "INVALID_ARGUMENT"),
            ("fault-401", 401, "UNAUTHENTICATED"),
        ],
    )
    def test_status_faults_in_google_shape(
        self, fake_upstream: FakeUpstream, model: str, status: int, code: str
    ) -> None:
        response = gemini(fake_upstream, model, BODY)
        assert response.status_code == status
        assert response.json()["error"] == {
            "code": status,
            "message": response.json()["error"]["message"],
            "status": code,
        }

    def test_prompt_blocked(self, fake_upstream: FakeUpstream) -> None:
        answer = gemini(fake_upstream, "fault-safety", BODY).json()
        assert "candidates" not in answer
        assert answer["promptFeedback"]["blockReason"] == "SAFETY"

    def test_answer_blocked(self, fake_upstream: FakeUpstream) -> None:
        answer = gemini(fake_upstream, "fault-safety-output", BODY).json()
        candidate = answer["candidates"][0]
        assert candidate["finishReason"] == "SAFETY"
        assert "content" not in candidate

    def test_error_midstream(self, fake_upstream: FakeUpstream) -> None:
        frames = sse_frames(fake_upstream, "error-midstream", BODY)
        assert "candidates" in frames[0]
        assert frames[-1]["error"]["status"] == "INTERNAL"

    def test_cut_stream(self, fake_upstream: FakeUpstream) -> None:
        with pytest.raises(httpx.RemoteProtocolError):
            sse_frames(fake_upstream, "cut-stream", BODY)


def sign_grant(key_file: Path, audience: str, *, tamper: bool = False) -> str:
    """A service account's JWT-bearer assertion, signed as google-auth signs it."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    info = json.loads(key_file.read_text())
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    now = int(time.time())
    claims = {
        "iss": info["client_email"],
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "aud": audience,
        "iat": now,
        "exp": now + 3600,
    }

    def segment(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signing_input = f"{segment({'alg': 'RS256', 'typ': 'JWT'})}.{segment(claims)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    if tamper:
        signature = bytes([signature[0] ^ 1]) + signature[1:]
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def grant(up: FakeUpstream, assertion: str) -> httpx.Response:
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    return httpx.post(up.url + "/token", data=form, timeout=10)


class TestVertex:
    def test_token_then_generate(self, fake_upstream: FakeUpstream, tmp_path: Path) -> None:
        key_file = fake_upstream.write_service_account(tmp_path / "sa.json")
        info = json.loads(key_file.read_text())
        assert info["type"] == "service_account"
        assert info["token_uri"] == fake_upstream.url + "/token"
        issued = grant(fake_upstream, sign_grant(key_file, info["token_uri"]))
        assert issued.status_code == 200
        token = issued.json()
        assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
        assert fake_upstream.tokens_issued == 1
        url = fake_upstream.url + VERTEX_MODEL.format("gemini-2.0-flash", "generateContent")
        bearer = {"authorization": f"Bearer {token['access_token']}"}
        answer = httpx.post(url, json=BODY, headers=bearer)
        assert text_of(answer.json()) == "echo: hello brave new world"
        stream_url = fake_upstream.url + VERTEX_MODEL.format("m", "streamGenerateContent")
        with httpx.stream("POST", stream_url + "?alt=sse", json=BODY, headers=bearer) as response:
            assert response.read().count(b"data: ") == 5

    def test_bad_grants_refused(self, fake_upstream: FakeUpstream, tmp_path: Path) -> None:
        key_file = fake_upstream.write_service_account(tmp_path / "sa.json")
        audience = fake_upstream.url + "/token"
        tampered = grant(fake_upstream, sign_grant(key_file, audience, tamper=True))
        assert tampered.status_code == 400
        assert tampered.json()["error"] == "invalid_grant"
        wrong_audience = grant(fake_upstream, sign_grant(key_file, "https://example.invalid/t"))
        assert wrong_audience.json()["error"] == "invalid_grant"
        wrong_type = httpx.post(
            fake_upstream.url + "/token", data={"grant_type": "password", "assertion": "x"}
        )
        assert wrong_type.json()["error"] == "unsupported_grant_type"
        assert fake_upstream.tokens_issued == 0

    def test_token_required_and_expiry(self, fake_upstream: FakeUpstream) -> None:
        url = fake_upstream.url + VERTEX_MODEL.format("m", "generateContent")
        missing = httpx.post(url, json=BODY)
        assert missing.status_code == 401
        assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
        token = fake_upstream.issue_token()
        assert httpx.post(url, json=BODY, headers={"authorization": f"Bearer {token}"}).is_success
        fake_upstream.expire_tokens()
        expired = httpx.post(url, json=BODY, headers={"authorization": f"Bearer {token}"})
        assert expired.status_code == 401

    def test_predict_embeddings(self, fake_upstream: FakeUpstream) -> None:
        url = fake_upstream.url + VERTEX_MODEL.format("text-embedding-005", "predict")
        body = {"instances": [{"content": "one two"}], "parameters": {"outputDimensionality": 4}}
        bearer = {"authorization": f"Bearer {fake_upstream.issue_token()}"}
        (prediction,) = httpx.post(url, json=body, headers=bearer).json()["predictions"]
        assert prediction["embeddings"]["values"] == pytest.approx(embedding_vector("one two", 4))
        assert prediction["embeddings"]["statistics"]["token_count"] == 2

    def test_token_endpoint_faults_by_script(self, fake_upstream: FakeUpstream) -> None:
        fake_upstream.script("/token", ["500"])
        failed = httpx.post(fake_upstream.url + "/token", data={"grant_type": "x"})
        assert failed.status_code == 500
        assert failed.json()["error"] == "server_error"

    def test_google_auth_service_account_flow(
        self, fake_upstream: FakeUpstream, tmp_path: Path
    ) -> None:
        """google-auth's own service-account flow works against the fake endpoint."""
        service_account = pytest.importorskip("google.oauth2.service_account")
        transport = pytest.importorskip("google.auth.transport")

        class Response(transport.Response):  # type: ignore[name-defined,misc]
            def __init__(self, response: httpx.Response) -> None:
                self._response = response

            status = property(lambda self: self._response.status_code)
            headers = property(lambda self: dict(self._response.headers))
            data = property(lambda self: self._response.content)

        class Request(transport.Request):  # type: ignore[name-defined,misc]
            def __call__(self, url: str, method: str = "GET", body: Any = None,
                         headers: Any = None, timeout: Any = None, **_: Any) -> Response:  # fmt: skip
                return Response(httpx.request(method, url, content=body, headers=headers))

        key_file = fake_upstream.write_service_account(tmp_path / "sa.json")
        credentials = service_account.Credentials.from_service_account_file(
            str(key_file), scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        credentials.refresh(Request())
        assert credentials.token.startswith("ya29.")
        assert fake_upstream.tokens_issued == 1
        assert fake_upstream.token_claims[0]["iss"].endswith("iam.gserviceaccount.com")
