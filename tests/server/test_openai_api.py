"""The OpenAI-shaped API through a real daemon (Granian on a real port), mock provider."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY, RunningDaemon


def chat_body(**extra: object) -> dict[str, object]:
    return {"model": "mock", "messages": [{"role": "user", "content": "Hello there"}], **extra}


class TestWithOpenAISDK:
    def test_completion(self, mock_daemon: RunningDaemon) -> None:
        client = openai.OpenAI(base_url=mock_daemon.url + "/v1", api_key=MASTER_KEY)
        reply = client.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "Hello there"}]
        )
        assert (
            reply.choices[0].message.content == "This is the fkllmproxy mock. You said: Hello there"
        )
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage is not None and reply.usage.prompt_tokens == 2

    def test_streaming_with_usage(self, mock_daemon: RunningDaemon) -> None:
        client = openai.OpenAI(base_url=mock_daemon.url + "/v1", api_key=MASTER_KEY)
        stream = client.chat.completions.create(
            model="mock",
            messages=[{"role": "user", "content": "Hello there"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "This is the fkllmproxy mock. You said: Hello there"
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    async def test_async_client(self, mock_daemon: RunningDaemon) -> None:
        client = openai.AsyncOpenAI(base_url=mock_daemon.url + "/v1", api_key=MASTER_KEY)
        reply = await client.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "async"}]
        )
        assert reply.choices[0].message.content.endswith("You said: async")
        await client.close()

    def test_models_list(self, mock_daemon: RunningDaemon) -> None:
        client = openai.OpenAI(base_url=mock_daemon.url + "/v1", api_key=MASTER_KEY)
        assert [m.id for m in client.models.list()] == ["mock"]

    def test_embeddings(self, mock_daemon: RunningDaemon) -> None:
        client = openai.OpenAI(base_url=mock_daemon.url + "/v1", api_key=MASTER_KEY)
        result = client.embeddings.create(model="mock", input=["a", "b"])
        assert len(result.data) == 2 and len(result.data[0].embedding) == 16

    def test_wrong_key_raises_authentication_error(self, mock_daemon: RunningDaemon) -> None:
        client = openai.OpenAI(base_url=mock_daemon.url + "/v1", api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            client.models.list()

    def test_unknown_model_raises_not_found(self, mock_daemon: RunningDaemon) -> None:
        client = openai.OpenAI(base_url=mock_daemon.url + "/v1", api_key=MASTER_KEY, max_retries=0)
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "x"}]
            )
        assert "Available models: mock" in str(info.value)


def post(daemon: RunningDaemon, content: bytes | str, **headers: str) -> httpx.Response:
    all_headers = {"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"}
    all_headers.update(headers)
    return httpx.post(daemon.url + "/v1/chat/completions", content=content, headers=all_headers)


class TestBadInput:
    """Client mistakes get a clear 4xx in OpenAI's shape, never a 500."""

    @pytest.mark.parametrize(
        ("body", "status", "param", "words"),
        [
            (b"{", 400, None, "not valid JSON"),
            (b"", 400, None, "empty"),
            (b"[1,2]", 400, None, "Invalid request body"),
            (b'{"model": 5, "messages": []}', 400, "model", "Expected `str`"),
            (b'{"model": "mock"}', 400, "messages", "Missing required field 'messages'"),
            (b'{"model": "mock", "messages": []}', 400, "messages", "length >= 1"),
            (
                b'{"model": "mock", "messages": [{"role": "robot", "content": "x"}]}',
                400,
                "messages[0].role",
                "Invalid enum",
            ),
            (
                b'{"model": "mock", "messages": [{"role": "user"}], "temperature": 9}',
                400,
                "temperature",
                "<= 2",
            ),
            (
                b'{"model": "mock", "messages": [{"role": "user"}], "stream": "yes"}',
                400,
                "stream",
                "Expected `bool",
            ),
            (
                b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}',
                404,
                "model",
                "does not exist",
            ),
        ],
    )
    def test_rejected_with_field(
        self, mock_daemon: RunningDaemon, body: bytes, status: int, param: str | None, words: str
    ) -> None:
        response = post(mock_daemon, body)
        assert response.status_code == status
        error = response.json()["error"]
        assert set(error) == {"message", "type", "code", "param"}
        assert error["param"] == param
        assert words in error["message"]

    def test_missing_key(self, mock_daemon: RunningDaemon) -> None:
        response = httpx.post(mock_daemon.url + "/v1/chat/completions", json=chat_body())
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"]["type"] == "authentication_error"

    def test_wrong_key(self, mock_daemon: RunningDaemon) -> None:
        response = post(mock_daemon, b"{}", authorization="Bearer nope")
        assert response.status_code == 401

    def test_x_api_key_header(self, mock_daemon: RunningDaemon) -> None:
        response = httpx.post(
            mock_daemon.url + "/v1/chat/completions",
            json=chat_body(),
            headers={"x-api-key": MASTER_KEY},
        )
        assert response.status_code == 200

    def test_oversize_body(self, start_daemon: object) -> None:
        daemon = start_daemon(env={"APP_SERVER__MAX_REQUEST_SIZE": "1000"})  # type: ignore[operator]
        big = '{"model": "mock", "messages": [{"role": "user", "content": "' + "x" * 2000 + '"}]}'
        response = post(daemon, big)
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "request_too_large"

    def test_unknown_route_and_method(self, mock_daemon: RunningDaemon) -> None:
        assert httpx.get(mock_daemon.url + "/v1/nothing").status_code == 404
        response = httpx.get(mock_daemon.url + "/v1/chat/completions")
        assert response.status_code == 405
        assert "error" in response.json()


class TestHeaders:
    def test_request_id_is_echoed_or_made(self, mock_daemon: RunningDaemon) -> None:
        mine = post(
            mock_daemon, httpx.Request("GET", "/").content or b"{}", **{"x-request-id": "abc-123"}
        )
        assert mine.headers["x-request-id"] == "abc-123"
        made = httpx.get(mock_daemon.url + "/health")
        assert len(made.headers["x-request-id"]) >= 16

    def test_rate_limit_headers_on_success_and_error(self, mock_daemon: RunningDaemon) -> None:
        for body in (
            b'{"model": "mock", "messages": []}',
            b'{"model":"mock","messages":[{"role":"user","content":"x"}]}',
        ):
            response = post(mock_daemon, body)
            assert int(response.headers["x-ratelimit-limit"]) == 1000
            assert "x-ratelimit-remaining" in response.headers
            assert "x-ratelimit-reset" in response.headers

    def test_rate_limited_with_retry_after(self, start_daemon: object) -> None:
        daemon = start_daemon(
            env={"APP_RATE_LIMIT__CAPACITY": "2", "APP_RATE_LIMIT__REFILL_PER_SECOND": "0.01"}
        )  # type: ignore[operator]
        statuses = [post(daemon, b"{}").status_code for _ in range(3)]
        assert statuses == [400, 400, 429]
        limited = post(daemon, b"{}")
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["type"] == "rate_limit_error"


class TestHealth:
    def test_public_health(self, mock_daemon: RunningDaemon) -> None:
        body = httpx.get(mock_daemon.url + "/health").json()
        assert body["status"] == "healthy"
        assert {"version", "uptime", "timestamp"} <= set(body)
        assert "providers" not in body

    def test_health_with_master_key_lists_providers(self, mock_daemon: RunningDaemon) -> None:
        body = httpx.get(mock_daemon.url + "/health", headers=mock_daemon.headers()).json()
        assert body["providers"] == [{"name": "mock", "type": "mock", "circuit": "closed"}]

    def test_ready(self, mock_daemon: RunningDaemon) -> None:
        assert httpx.get(mock_daemon.url + "/ready").status_code == 200
