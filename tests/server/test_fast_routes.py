"""The raw-ASGI hot routes answer exactly what Litestar's routes of the same paths answer.

Each request goes to the app twice: once as served (``FastRoutes`` in front) and once
through an app whose ``FastRoutes`` is unwrapped, so Litestar routes it to the same
handler core. Status, headers (bar the request id and the moving rate-limit counts),
body and the metrics route label must be the same. Then what only the fast path does
itself: watch for a client leaving mid-stream.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar

from fkllmproxy.config import load_config
from fkllmproxy.errors import BadRequest
from fkllmproxy.providers import StreamingCompletion
from fkllmproxy.server import RuntimeHolder, build_runtime, create_app
from fkllmproxy.server.fast_routes import FastRoutes
from fkllmproxy.server.middleware import RequestMiddleware
from tests.conftest import MASTER_KEY, MOCK_CONFIG

MAX_BODY = 300_000
CHAT = b'{"model": "mock", "messages": [{"role": "user", "content": "hello there"}]}'
CHAT_STREAM = CHAT[:-1] + b', "stream": true, "stream_options": {"include_usage": true}}'
MESSAGES = CHAT[:-1] + b', "max_tokens": 50}'
MESSAGES_STREAM = MESSAGES[:-1] + b', "stream": true}'
EMBED = b'{"model": "mock", "input": "two words"}'
DEEP = (
    b'{"model": "mock", "messages": [{"role": "user", "content": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}]}"
)


@pytest.fixture(scope="module")
def holder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeHolder]:
    tmp: Path = tmp_path_factory.mktemp("fast")
    config = tmp / "config.toml"
    config.write_text(MOCK_CONFIG)
    loaded = load_config(
        config_path=config,
        environ={
            "APP_AUTH__MASTER_KEY": MASTER_KEY,
            "APP_STATE__DIRECTORY": str(tmp),
            "APP_SERVER__MAX_REQUEST_SIZE": str(MAX_BODY),
        },
    )
    yield RuntimeHolder(build_runtime(loaded))


def litestar_only(app: Litestar) -> Litestar:
    """``app`` with its ``FastRoutes`` unwrapped: every request is routed by Litestar."""
    middleware = app.asgi_handler
    assert isinstance(middleware, RequestMiddleware) and isinstance(middleware.app, FastRoutes)
    app.asgi_handler = RequestMiddleware(middleware.app.app)  # type: ignore[assignment]
    return app


class Exchange:
    """One request through an ASGI app in this process, and what it sent back."""

    def __init__(
        self, method: str, path: str, chunks: list[bytes], headers: dict[str, str]
    ) -> None:
        size = sum(len(c) for c in chunks)
        framed = chunks and "transfer-encoding" not in headers
        raw = [(b"content-length", str(size).encode())] if framed else []
        raw += [(k.encode(), v.encode()) for k, v in headers.items()]
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": raw,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 4000),
        }
        self.incoming = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks or [b""])
        ]
        self.sent: list[dict[str, Any]] = []
        self.finished = asyncio.Event()
        self.hang_up_after_frames: int | None = None
        # The server's send raising from this frame on, before it says http.disconnect.
        self.send_fails_from_frame: int | None = None

    async def receive(self) -> dict[str, Any]:
        if self.incoming:
            return self.incoming.pop(0)
        await self.finished.wait()  # as a server does: nothing more until the client goes
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        frames = len(self.sent)
        if self.send_fails_from_frame is not None and frames >= self.send_fails_from_frame:
            raise OSError("the client closed the connection")
        self.sent.append(message)
        if message["type"] == "http.response.body":
            body_frames = len(self.sent) - 1
            if not message.get("more_body") or body_frames == self.hang_up_after_frames:
                self.finished.set()

    async def run(self, app: Any) -> Exchange:
        await asyncio.wait_for(app(self.scope, self.receive, self.send), timeout=30)
        return self

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers; the request id, rate-limit counts and length made comparable."""
        out = []
        for name, value in self.sent[0]["headers"]:
            if name == b"x-request-id" or name.startswith(b"x-ratelimit"):
                value = b"*"
            elif name == b"content-length":  # the made-up ids vary in length
                assert int(value) == len(b"".join(m.get("body", b"") for m in self.sent[1:]))
                value = b"*"
            out.append((name, value))
        return out

    @property
    def body(self) -> bytes:
        """The body, with the ids and timestamps the mock provider makes up blanked."""
        raw = b"".join(m.get("body", b"") for m in self.sent[1:])
        raw = re.sub(rb'"(id|created)":\s*("[^"]*"|\d+)', rb'"\1":"*"', raw)
        return raw

    @property
    def complete(self) -> bool:
        return bool(self.sent) and not self.sent[-1].get("more_body", False)


def headers(key: str | None = MASTER_KEY, **extra: str) -> dict[str, str]:
    out = {"content-type": "application/json", **extra}
    if key is not None:
        out["authorization"] = f"Bearer {key}"
    return out


CASES: list[tuple[str, str, str, list[bytes], dict[str, str]]] = [
    ("chat", "POST", "/v1/chat/completions", [CHAT], headers()),
    ("chat stream", "POST", "/v1/chat/completions", [CHAT_STREAM], headers()),
    ("chat in pieces", "POST", "/v1/chat/completions", [CHAT[:9], CHAT[9:30], CHAT[30:]], headers()),
    ("chat no key", "POST", "/v1/chat/completions", [CHAT], headers(None)),
    ("chat wrong key", "POST", "/v1/chat/completions", [CHAT], headers("sk-wrong-wrong")),
    ("chat x-api-key", "POST", "/v1/chat/completions", [CHAT], {"x-api-key": MASTER_KEY}),
    ("chat empty", "POST", "/v1/chat/completions", [], headers()),
    ("chat not json", "POST", "/v1/chat/completions", [b"{nope"], headers()),
    ("chat bad field", "POST", "/v1/chat/completions", [b'{"model": 1, "messages": []}'], headers()),
    ("chat unknown model", "POST", "/v1/chat/completions", [CHAT.replace(b'"mock"', b'"nope"')], headers()),
    ("chat too big", "POST", "/v1/chat/completions", [b" " * (MAX_BODY + 1)], headers()),
    ("chat too big in pieces", "POST", "/v1/chat/completions", [b" " * MAX_BODY, b" "], headers()),
    ("chat too big chunked", "POST", "/v1/chat/completions", [b" " * MAX_BODY, b" "], headers(**{"transfer-encoding": "chunked"})),
    ("chat too deep", "POST", "/v1/chat/completions", [DEEP], headers()),
    ("chat invalid utf-8", "POST", "/v1/chat/completions", [CHAT.replace(b"hello", b"\xff\xfe")], headers()),
    ("chat GET", "GET", "/v1/chat/completions", [], headers()),
    ("chat PUT", "PUT", "/v1/chat/completions", [CHAT], headers()),
    ("messages", "POST", "/v1/messages", [MESSAGES], headers()),
    ("messages stream", "POST", "/v1/messages", [MESSAGES_STREAM], headers()),
    ("messages no key", "POST", "/v1/messages", [MESSAGES], headers(None)),
    ("messages not json", "POST", "/v1/messages", [b"[1, 2"], headers()),
    ("messages unknown model", "POST", "/v1/messages", [MESSAGES.replace(b'"mock"', b'"nope"')], headers()),
    ("messages too deep", "POST", "/v1/messages", [DEEP], headers()),
    ("messages too big", "POST", "/v1/messages", [b" " * (MAX_BODY + 1)], headers()),
    ("messages GET", "GET", "/v1/messages", [], headers()),
    ("embeddings", "POST", "/v1/embeddings", [EMBED], headers()),
    ("embeddings no key", "POST", "/v1/embeddings", [EMBED], headers(None)),
    ("embeddings bad field", "POST", "/v1/embeddings", [b'{"model": "mock"}'], headers()),
    ("embeddings DELETE", "DELETE", "/v1/embeddings", [], headers()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "chunks", "sent_headers"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_same_answer_as_through_litestar(
    holder: RuntimeHolder,
    method: str,
    path: str,
    chunks: list[bytes],
    sent_headers: dict[str, str],
) -> None:
    """Status, headers, body, completeness and route label all match Litestar's."""
    fast = await Exchange(method, path, list(chunks), sent_headers).run(create_app(holder))
    plain = await Exchange(method, path, list(chunks), sent_headers).run(
        litestar_only(create_app(holder))
    )
    assert fast.status == plain.status
    assert fast.headers == plain.headers
    assert fast.body == plain.body
    assert fast.complete and plain.complete
    label = path if method == "POST" else None  # Litestar labels a 405 "unmatched"
    assert fast.scope.get("path_template") == plain.scope.get("path_template") == label
    context, plain_context = fast.scope["fkllm"], plain.scope["fkllm"]
    assert (context.error_code, context.model, context.provider, context.client) == (
        plain_context.error_code,
        plain_context.model,
        plain_context.provider,
        plain_context.client,
    )


@pytest.mark.parametrize(
    ("fault", "status"), [(RecursionError, 400), (RuntimeError, 500)], ids=["deep", "bug"]
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_faults_in_a_handler_answer_as_through_litestar(
    holder: RuntimeHolder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fault: type[Exception],
    status: int,
    path: str,
) -> None:
    """A RecursionError from deep in a handler is the client's 400; any other bug a logged 500."""

    async def failing_chat(request: Any) -> Any:
        raise fault("from inside the handler")

    monkeypatch.setattr(holder.runtime.providers["mock"], "chat", failing_chat)
    body = MESSAGES if path == "/v1/messages" else CHAT
    with caplog.at_level("ERROR"):
        fast = await Exchange("POST", path, [body], headers()).run(create_app(holder))
    logged = [r for r in caplog.records if r.getMessage() == "internal error"]
    plain = await Exchange("POST", path, [body], headers()).run(litestar_only(create_app(holder)))
    assert fast.status == plain.status == status
    assert (fast.headers, fast.body) == (plain.headers, plain.body)
    assert b"Traceback" not in fast.body and b"from inside" not in fast.body
    assert len(logged) == (1 if status == 500 else 0)
    assert fast.scope["fkllm"].error_code == plain.scope["fkllm"].error_code
    assert fast.scope["fkllm"].error_code == (BadRequest.code if status == 400 else None)


async def test_wrong_method_is_litestars_405(holder: RuntimeHolder) -> None:
    """GET on a hot route still gets the 405 error body of every other route."""
    got = await Exchange("GET", "/v1/chat/completions", [], headers()).run(create_app(holder))
    assert got.status == 405
    assert b"Method GET is not allowed on /v1/chat/completions" in got.body
    assert got.scope["fkllm"].error_code == "http_error"


async def test_deep_nesting_is_a_400_not_a_500(holder: RuntimeHolder) -> None:
    """JSON nested past the interpreter's limit is the client's 400, in each API's shape."""
    chat = await Exchange("POST", "/v1/chat/completions", [DEEP], headers()).run(create_app(holder))
    assert chat.status == 400 and b'"type":"invalid_request_error"' in chat.body
    messages = await Exchange("POST", "/v1/messages", [DEEP], headers()).run(create_app(holder))
    assert messages.status == 400 and messages.body.startswith(b'{"type":"error"')


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/chat/completions", CHAT_STREAM), ("/v1/messages", MESSAGES_STREAM)],
)
async def test_hang_up_mid_stream_stops_and_closes_the_stream(
    holder: RuntimeHolder, monkeypatch: pytest.MonkeyPatch, path: str, body: bytes
) -> None:
    """After two frames the client leaves: no more frames, upstream closed, 200 noted as cut."""
    provider = holder.runtime.providers["mock"]
    chat = provider.chat
    closed: list[bool] = []

    async def watched_chat(request: Any) -> Any:
        result = await chat(request)
        if isinstance(result, StreamingCompletion):
            inner = result.aclose

            async def aclose() -> None:
                closed.append(True)
                await inner()

            result = StreamingCompletion(chunks=result.chunks, aclose=aclose, usage=result.usage)
        return result

    monkeypatch.setattr(provider, "chat", watched_chat)
    whole = await Exchange("POST", path, [body], headers()).run(create_app(holder))
    assert whole.complete and closed == [True]
    exchange = Exchange("POST", path, [body], headers())
    exchange.hang_up_after_frames = 2
    await exchange.run(create_app(holder))
    assert exchange.status == 200
    assert not exchange.complete
    assert len(exchange.sent) < len(whole.sent) - 3, "the stream went on after the client left"
    assert closed == [True, True]
    assert exchange.scope["fkllm"].error_code == "client_closed_request"


async def test_a_send_that_fails_mid_stream_is_a_client_that_left(
    holder: RuntimeHolder,
) -> None:
    """The server's send raises before it reports the disconnect (a race under load): the
    stream stops, the request is noted as the client's hang-up, not an internal error."""
    exchange = Exchange("POST", "/v1/chat/completions", [CHAT_STREAM], headers())
    exchange.send_fails_from_frame = 3
    await exchange.run(create_app(holder))
    assert exchange.status == 200 and not exchange.complete
    assert len(exchange.sent) == 3
    assert exchange.scope["fkllm"].error_code == "client_closed_request"
