"""A fake LLM provider on a real socket, for tests, benchmarks and ``fkllm mock-upstream``.

It speaks the providers' public wire formats (OpenAI and Azure OpenAI, Anthropic
Messages, the Gemini API, Vertex AI with its OAuth2 token endpoint, Cohere v2) as their
documentation describes them, and records every request it receives, so tests can
check both what a client got and what the upstream was sent::

    with FakeUpstream() as up:               # a free 127.0.0.1 port, its own thread
        client = openai.OpenAI(base_url=up.url + "/v1", api_key="k")
        client.chat.completions.create(model="fault-500", messages=[...])  # 500
        up.script("gpt-4o-mini", ["500", "ok"])   # next requests for that model
        up.requests[-1].json["model"]
        up.thought_signatures.issued             # what ``signed`` Gemini models signed with

Behaviour is chosen by the upstream model name or a script; see
``fkllmproxy.testing.behaviour`` for the names. Deterministic answers: the reply to a
prompt is ``echo: <last user text>``, tokens are whitespace-separated words.
"""

from __future__ import annotations

import asyncio
import threading
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

from fkllmproxy.testing._flow import Exchange
from fkllmproxy.testing._gemini import ThoughtSignatures
from fkllmproxy.testing._http import HttpRequest, ProtocolError, Responder, read_request
from fkllmproxy.testing._oauth import KeyPair, TokenLedger, write_service_account
from fkllmproxy.testing._routes import ROUTES
from fkllmproxy.testing.behaviour import Behaviour, parse_behaviour

__all__ = ["FakeUpstream", "RecordedRequest"]

_decode = msgspec.json.decode
_STOP_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it (headers lower-case, ``json`` when it parsed)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any


class FakeUpstream:
    """The fake provider server; a context manager (sync or async) that runs it.

    ``with FakeUpstream()`` runs the server in a background thread with its own event
    loop and stops it on exit; ``await up.serve_forever()`` runs it on the caller's loop
    (the CLI). ``latency_ms`` delays every model answer; ``record=False`` keeps no
    request log (long benchmark runs).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_ms: int = 0,
        record: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.latency_ms = latency_ms
        self.record = record
        self.requests: list[RecordedRequest] = []
        self._scripts: dict[str, deque[str]] = {}
        self._lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self.tokens = TokenLedger()
        self.token_lifetime_secs = 3600.0
        self.token_claims: list[dict[str, Any]] = []
        self.service_key: KeyPair | None = None
        self.thought_signatures = ThoughtSignatures()

    # --- what tests use -------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        return f"http://{self.host}:{self.port}"

    def clear(self) -> None:
        """Forget recorded requests, pending scripts and the list of thought signatures
        issued (which stay valid: a conversation may go on after a clear)."""
        with self._lock:
            self.requests.clear()
            self._scripts.clear()
        self.thought_signatures.clear_record()

    def script(self, model: str, steps: list[str]) -> None:
        """Make the next requests for ``model`` behave as ``steps`` say, in order.

        ``model`` is the upstream model as the fake sees it: the body's ``model`` for
        OpenAI, Anthropic and Cohere, the path's model for Gemini and Vertex, the deployment
        for Azure, and ``"/token"`` for the OAuth2 token endpoint. Steps use the names
        of ``fkllmproxy.testing.behaviour`` (``"500"``, ``"429-retry-2"``, ``"ok"``...).
        """
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(steps)

    def behaviour_for(self, model: str) -> Behaviour:
        """The next scripted step for ``model`` if any, else what its name says."""
        with self._lock:
            steps = self._scripts.get(model)
            step = steps.popleft() if steps else None
        return parse_behaviour(step if step is not None else model)

    # --- Vertex AI credentials -----------------------------------------------------

    @property
    def tokens_issued(self) -> int:
        """How many access tokens ``POST /token`` has handed out (proves caching)."""
        return self.tokens.issued

    def issue_token(self) -> str:
        """A valid Vertex access token, without going through ``POST /token``."""
        return self.tokens.issue(self.token_lifetime_secs)

    def expire_tokens(self) -> None:
        """Make every token issued so far invalid, as if it had expired."""
        self.tokens.expire_all()

    def write_service_account(self, path: str | Path) -> Path:
        """Write a throwaway service-account key file whose ``token_uri`` is this fake.

        The key is a real RSA key (made once per process), so google-auth signs its
        JWT grants with it and the fake checks the signature.
        """
        self.service_key = KeyPair.shared()
        return write_service_account(Path(path), f"{self.url}/token", self.service_key)

    # --- running it in a thread -----------------------------------------------------

    def start(self, timeout: float = 10.0) -> FakeUpstream:
        """Start serving in a background thread; returns once the port is bound."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start_serving())
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_until_complete(self.wait_stopped())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise RuntimeError("fake upstream did not start in time")
        if failure:
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background server: close the socket and every open connection."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed() and self._stopping is not None:
            loop.call_soon_threadsafe(self._stopping.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"fake upstream did not stop within {timeout} s")
        self._thread = None
        self._loop = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeUpstream:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # --- running it on the current loop ---------------------------------------------

    async def serve_forever(self, stop: asyncio.Event | None = None) -> None:
        """Serve on the running loop until ``stop`` is set (or the task is cancelled)."""
        await self.start_serving(stop)
        await self.wait_stopped()

    async def start_serving(self, stop: asyncio.Event | None = None) -> None:
        """Bind and start accepting on the running loop; ``port`` is known afterwards."""
        self._stopping = stop or asyncio.Event()
        self._server = await asyncio.start_server(
            self._serve_connection, self.host, self.port, backlog=4096, limit=1024 * 1024
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def wait_stopped(self) -> None:
        """Wait for the stop signal, then close the socket and every open connection."""
        assert self._stopping is not None and self._server is not None
        try:
            await self._stopping.wait()
        finally:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            if self._connections:
                await asyncio.wait(list(self._connections), timeout=_STOP_WAIT)
            await self._server.wait_closed()

    # --- one connection -------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    request = await read_request(reader, writer)
                except ProtocolError as exc:
                    out = Responder(writer, keep_alive=False)
                    await out.send(exc.status, str(exc).encode(), "text/plain")
                    break
                if request is None:
                    break
                out = Responder(writer, request.keep_alive)
                await self._dispatch(request, out, reader)
                if out.closed or not request.keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Only ``wait_stopped`` cancels connections; ending quietly here keeps
            # asyncio's stream protocol from logging the cancellation as an error.
            pass
        finally:
            self._connections.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _dispatch(
        self, request: HttpRequest, out: Responder, reader: asyncio.StreamReader
    ) -> None:
        parsed: Any = None
        if request.body:
            try:
                parsed = _decode(request.body)
            except msgspec.DecodeError:
                parsed = None
        if self.record:
            recorded = RecordedRequest(
                request.method, request.path, request.query, request.headers, request.body, parsed
            )
            with self._lock:
                self.requests.append(recorded)
        exchange = Exchange(request, out, reader, self, parsed)
        allowed: list[str] = []
        for method, pattern, handler in ROUTES:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            try:
                await handler(exchange, match)
            except (ConnectionError, asyncio.CancelledError):
                raise
            except Exception as exc:  # a bug in the fake: say so instead of a bare reset
                traceback.print_exc()
                if not out.started:
                    await out.send(500, f"fake upstream failed: {exc!r}".encode(), "text/plain")
                out.closed = True
            return
        status = 405 if allowed else 404
        message = f"{request.method} {request.path} is not served by the fake upstream"
        await exchange.send_json(status, msgspec.json.encode({"error": {"message": message}}))
