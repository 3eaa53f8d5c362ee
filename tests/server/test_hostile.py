"""Hostile input at every route of a real daemon: always a clear 4xx, never a 5xx.

Property-based (hypothesis) and schema-driven (schemathesis, against the daemon's own
``/openapi.json``): malformed and deeply nested JSON, huge strings, wrong types,
invalid UTF-8, null bytes, absurd numbers, long and odd headers, odd paths and
methods. Every answer must be below 500, and every error a JSON body with a message;
afterwards the daemon must still answer, have logged no internal error, and hold
about the memory it held before. Example counts are fixed and derandomized so the
suite is quick and repeatable; raise ``FKLLM_FUZZ_SCALE`` for a longer hunt.
"""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import string
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from fkllmproxy.server import create_app
from fkllmproxy.server.gemini_api import METHODS
from tests.conftest import MASTER_KEY, MOCK_CONFIG, RunningDaemon

SCALE = float(os.environ.get("FKLLM_FUZZ_SCALE", "1"))
MAX_BODY = 256 * 1024
# The Gemini API's routes are parsed in front of Litestar (server/gemini_api.py).
GEMINI_ROUTES = [
    *(
        (f"/{version}/models/mock:{method}", "POST")
        for version in ("v1beta", "v1")
        for method in METHODS
    ),
    ("/v1beta/models", "GET"),
    ("/v1beta/models/mock", "GET"),
]
ROUTES = sorted(
    [
        *(
            (route.path, method)
            for route in create_app(None).routes  # type: ignore[arg-type]
            for method in getattr(route, "methods", ())
        ),
        *GEMINI_ROUTES,
    ]
)
BODY_ROUTES = [(path, method) for path, method in ROUTES if method == "POST"]
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
OUTCOMES: collections.Counter[str] = collections.Counter()
BASELINE: dict[str, int] = {}


def examples(count: int) -> Any:
    return settings(
        max_examples=max(1, int(count * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    running = RunningDaemon(
        tmp_path_factory.mktemp("hostile"),
        MOCK_CONFIG,
        env={
            "APP_SERVER__MAX_REQUEST_SIZE": str(MAX_BODY),
            "APP_RATE_LIMIT__CAPACITY": "1000000",
        },
    )
    running.wait_ready()
    # Warm up (imports, pools, allocator arenas) before taking the baseline RSS.
    with httpx.Client(base_url=running.url, timeout=20.0, headers=AUTH) as warm:
        for size in (10, 1000, MAX_BODY // 2):
            warm.post(
                "/v1/chat/completions",
                json={"model": "mock", "messages": [{"role": "user", "content": "w" * size}]},
            )
            warm.post("/v1/chat/completions", content=nested(20_000).encode())
    BASELINE["rss_kib"] = rss_kib(running.pid)
    yield running
    try:
        _healthy_and_flat_after_the_storm(running)
    finally:
        running.stop()


def _healthy_and_flat_after_the_storm(daemon: RunningDaemon) -> None:
    """Once every test of the module has used the daemon, whatever order they ran in: the
    same process answers, logged no internal error, and its RSS stayed flat (a failure
    here is reported as an error in the module's last test's teardown)."""
    after = rss_kib(daemon.pid)
    before = BASELINE["rss_kib"]
    assert after - before < 64 * 1024, f"RSS grew from {before} KiB to {after} KiB"
    with httpx.Client(base_url=daemon.url, timeout=20.0) as client:
        assert client.get("/health").json()["status"] == "healthy"
        ok = send(
            client,
            "POST",
            "/v1/chat/completions",
            b'{"model": "mock", "messages": [{"role": "user", "content": "still here"}]}',
        )
    assert ok.status_code == 200 and "still here" in ok.text
    errors = [line for line in daemon.logs() if line["level"] == "ERROR"]
    assert not errors, errors[:3]
    total = sum(OUTCOMES.values())
    print(
        f"\nhostile cases: {total}; outcomes: {dict(sorted(OUTCOMES.items()))}; RSS {before} -> {after} KiB"
    )


@pytest.fixture(scope="module")
def client(daemon: RunningDaemon) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=daemon.url, timeout=20.0) as http:
        yield http


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def check(response: httpx.Response, label: str) -> None:
    """Below 500; an error is JSON naming what was wrong, with no traceback."""
    OUTCOMES[f"{label} {response.status_code}"] += 1
    detail = f"{label}: {response.status_code} {response.text[:300]!r}"
    assert response.status_code < 500, detail
    assert "Traceback" not in response.text, detail
    if "x-request-id" not in response.headers:
        # Refused by Granian's HTTP parser before the app saw it (a header value it
        # will not accept): a bare 4xx is all HTTP allows there.
        OUTCOMES[f"{label} {response.status_code} (HTTP parser)"] += 1
        assert 400 <= response.status_code < 500, detail
        return
    if response.status_code >= 400 and response.request.method != "HEAD":
        try:
            error = response.json()["error"]
        except ValueError:
            raise AssertionError(
                f"{detail} (not JSON) {response.request.method} {response.request.url} {dict(response.headers)}"
            ) from None
        assert isinstance(error["message"], str) and len(error["message"]) > 5, detail


def send(
    client: httpx.Client,
    method: str,
    path: str,
    content: bytes | None = None,
    headers: dict[str, Any] | None = None,
    label: str = "",
) -> httpx.Response:
    all_headers = {**AUTH, "content-type": "application/json", **(headers or {})}
    response = client.request(method, path, content=content, headers=all_headers)
    check(response, label or f"{method} {path}")
    return response


# -- strategies ---------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
roles = st.sampled_from(["user", "system", "assistant", "tool", "developer"]) | json_values
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles},
        optional={"content": json_values, "name": json_values, "tool_calls": json_values},
    ),
    max_size=3,
)
FIELDS = [
    "stream", "stream_options", "temperature", "top_p", "n", "max_tokens", "stop", "seed",
    "tools", "tool_choice", "response_format", "input", "encoding_format", "dimensions", "user",
]  # fmt: skip
chat_like = st.fixed_dictionaries(
    {"model": st.just("mock") | json_values, "messages": messages | json_values},
    optional={name: json_values for name in FIELDS},
)
item_types = st.sampled_from(
    ["message", "function_call", "function_call_output", "reasoning", "web_search_call"]
)
part_types = st.sampled_from(["input_text", "input_image", "input_file", "output_text", "refusal"])
responses_items = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "type": item_types | json_values,
            "role": roles,
            "content": st.lists(
                st.fixed_dictionaries(
                    {"type": part_types | json_values},
                    optional={"text": json_values, "image_url": json_values},
                ),
                max_size=3,
            )
            | json_values,
            "call_id": json_values,
            "name": json_values,
            "arguments": json_values,
            "output": json_values,
        },
    ),
    max_size=4,
)
RESPONSES_FIELDS = [
    "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
    "temperature", "top_p", "text", "reasoning", "metadata", "user", "include", "store",
    "previous_response_id", "stream", "truncation", "background",
]  # fmt: skip
responses_like = st.fixed_dictionaries(
    {"model": st.just("mock") | json_values, "input": responses_items | json_values},
    optional={name: json_values for name in RESPONSES_FIELDS},
)
ABSURD_NUMBERS = [
    "1e999", "-1e999", "NaN", "Infinity", "-0", "1" + "0" * 400, "-" + "9" * 5000,
    "1e-999", "0x10", "01", "1.", ".5", "+1", "1e", "4294967296", "18446744073709551616",
]  # fmt: skip
numbers = st.sampled_from(ABSURD_NUMBERS) | st.from_regex(
    r"-?[0-9]{1,60}(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?", fullmatch=True
)


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


# -- the suite ------------------------------------------------------------------------


class TestHostileBodies:
    @given(route=st.sampled_from(BODY_ROUTES), raw=st.binary(max_size=3000))
    @examples(80)
    def test_arbitrary_bytes(self, client: httpx.Client, route: Any, raw: bytes) -> None:
        send(client, route[1], route[0], raw, label="bytes")

    @given(route=st.sampled_from(BODY_ROUTES), body=chat_like)
    @examples(150)
    def test_wrong_types_and_shapes(self, client: httpx.Client, route: Any, body: Any) -> None:
        send(client, route[1], route[0], msgspec.json.encode(body), label="shapes")

    @given(body=responses_like)
    @examples(150)
    def test_responses_items_of_every_shape(self, client: httpx.Client, body: Any) -> None:
        """POST /v1/responses with items, parts and fields of any type: a 4xx, never a 5xx."""
        send(client, "POST", "/v1/responses", msgspec.json.encode(body), label="responses")

    @given(
        route=st.sampled_from(BODY_ROUTES),
        field=st.sampled_from([*FIELDS, "model"]),
        number=numbers,
    )
    @examples(80)
    def test_absurd_numbers(
        self, client: httpx.Client, route: Any, field: str, number: str
    ) -> None:
        body = (
            '{"model": "mock", "messages": [{"role": "user", "content": "x"}], '
            f'"input": "x", "{field}": {number}}}'
        )
        send(client, route[1], route[0], body.encode(), label="numbers")

    @given(
        route=st.sampled_from(BODY_ROUTES),
        depth=st.integers(1, 150_000),
        where=st.sampled_from(["top", "content", "tools", "input"]),
    )
    @examples(30)
    def test_deep_nesting(self, client: httpx.Client, route: Any, depth: int, where: str) -> None:
        deep = nested(depth, '{"a": 1}')
        chat = '{"model": "mock", "messages": [{"role": "user", "content": [{"x": DEEP}]}]}'
        body = {
            "top": "DEEP",
            "content": chat,
            "tools": '{"model": "mock", "messages": [{"role": "user"}], "tools": [DEEP]}',
            "input": '{"model": "mock", "input": DEEP}',
        }[where].replace("DEEP", deep)
        send(client, route[1], route[0], body.encode(), label="nesting")

    @given(
        route=st.sampled_from(BODY_ROUTES),
        size=st.integers(0, 2 * MAX_BODY),
        char=st.sampled_from(["x", "\x00", "é", "\\u0000", '\\"', "\U0001f600"]),
    )
    @examples(25)
    def test_huge_strings(self, client: httpx.Client, route: Any, size: int, char: str) -> None:
        text = char * (size // max(1, len(char.encode())))
        half = len(text) // 2
        body = (
            f'{{"model": "mock", "input": "{text[:half]}", '
            f'"messages": [{{"role": "user", "content": "{text[half:]}"}}]}}'
        )
        response = send(client, route[1], route[0], body.encode(), label="huge")
        if len(body.encode()) > MAX_BODY and route[0].startswith("/v1/"):
            assert response.status_code == 413  # routes that read bodies refuse it whole

    @given(route=st.sampled_from(BODY_ROUTES), junk=st.binary(min_size=1, max_size=40))
    @examples(40)
    def test_invalid_utf8_and_null_bytes(
        self, client: httpx.Client, route: Any, junk: bytes
    ) -> None:
        body = (
            b'{"model": "mo'
            + junk
            + b'ck", "messages": [{"role": "user", "content": "a\x00'
            + junk
            + b'"}], "input": "\xff\xfe"}'
        )
        send(client, route[1], route[0], body, label="utf8")


parts = st.lists(
    st.dictionaries(
        st.sampled_from(
            ["text", "inlineData", "fileData", "functionCall", "functionResponse", "thought",
             "thoughtSignature", "executableCode", "videoMetadata"]
        ),
        json_values,
        max_size=3,
    ),
    max_size=3,
)  # fmt: skip
gemini_like = st.fixed_dictionaries(
    {
        "contents": st.lists(
            st.fixed_dictionaries(
                {"parts": parts | json_values},
                optional={"role": st.sampled_from(["user", "model", "function"]) | json_values},
            ),
            max_size=3,
        )
        | json_values
    },
    optional={
        name: json_values
        for name in [
            "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings",
            "cachedContent", "content", "requests", "generateContentRequest",
        ]
    },
)  # fmt: skip
GEMINI_POSTS = [route for route in GEMINI_ROUTES if route[1] == "POST"]
GEMINI_PROVIDED = ["mock", "models/mock", "nope", "", "mock:x", "%00", "a/b/c", "m" * 300]


class TestHostileGemini:
    """The Gemini API's routes: Google's error shape, never a 5xx."""

    @given(route=st.sampled_from(GEMINI_POSTS), body=gemini_like)
    @examples(120)
    def test_wrong_types_and_shapes(self, client: httpx.Client, route: Any, body: Any) -> None:
        response = send(client, route[1], route[0], msgspec.json.encode(body), label="gemini")
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["code"] == response.status_code and isinstance(error["status"], str)

    @given(
        version=st.sampled_from(["v1beta", "v1"]),
        model=st.sampled_from(GEMINI_PROVIDED) | st.text(max_size=30),
        method=st.sampled_from(
            [*METHODS, "fooBar", "", "generateContent:extra", "GENERATECONTENT"]
        ),
        http=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
        key_in_query=st.booleans(),
    )
    @examples(120)
    def test_odd_methods_and_model_paths(
        self,
        client: httpx.Client,
        version: str,
        model: str,
        method: str,
        http: str,
        key_in_query: bool,
    ) -> None:
        from urllib.parse import quote

        target = f"/{version}/models/{quote(model, safe='/:')}:{method}"
        headers = {"content-type": "application/json"}
        if key_in_query:
            target += f"?alt=sse&key={MASTER_KEY}"
        else:
            headers["x-goog-api-key"] = MASTER_KEY
        request = client.build_request(
            http, "/", headers=headers, content=b'{"contents": [{"parts": [{"text": "x"}]}]}'
        )
        request.extensions["target"] = target.encode()
        response = client.send(request)
        OUTCOMES[f"gemini-paths {response.status_code}"] += 1
        assert response.status_code < 500, f"{http} {target}: {response.text[:200]}"
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["status"] and error["message"] and error["code"] == response.status_code

    def test_malformed_json_and_unknown_method(self, client: httpx.Client) -> None:
        headers = {"x-goog-api-key": MASTER_KEY, "content-type": "application/json"}
        for target, body in [
            ("/v1beta/models/mock:generateContent", b"{not json"),
            ("/v1beta/models/mock:generateContent", b'{"contents": "x"}'),
            ("/v1beta/models/mock:generateContent", b'{"contents": [{"parts": [{"text": 5}]}]}'),
            ("/v1/models/mock:batchEmbedContents", b'{"requests": {}}'),
            ("/v1beta/models/mock:countTokens", b"[]"),
            ("/v1beta/models/mock:doSomething", b"{}"),
            ("/v1beta/models/nope:generateContent", b'{"contents": []}'),
            ("/v1beta/cachedContents", b"{}"),
        ]:
            response = client.post(target, content=body, headers=headers)
            assert 400 <= response.status_code < 500, (target, response.text)
            error = response.json()["error"]
            assert error["code"] == response.status_code and error["status"], (target, error)


def _header_value(raw: bytes) -> bytes:
    """What httpx will send: visible bytes and obs-text, no edge whitespace (the raw
    socket test below sends the control characters it refuses)."""
    cleaned = bytes(c for c in raw if c == 9 or 32 <= c <= 126 or c >= 128).strip(b" \t")
    return cleaned or b"x"


header_values = (
    st.text(max_size=200).map(lambda t: _header_value(t.encode("utf-8")))
    | st.binary(max_size=200).map(_header_value)
    | st.integers(1, 64_000).map(lambda n: b"k" * n)
    | st.sampled_from(
        [b"Bearer", b"Bearer Bearer x", b"Basic Og==", b"bearer \xff\xfe", b"Digest a=b"]
    )
)


class TestHostileHeadersAndPaths:
    @given(
        route=st.sampled_from(ROUTES),
        name=st.sampled_from(
            [
                "authorization",
                "x-api-key",
                "x-goog-api-key",
                "content-type",
                "x-request-id",
                "content-encoding",
                "accept",
                "x-forwarded-for",
            ]
        ),
        value=header_values,
    )
    @examples(120)
    def test_odd_and_long_headers(
        self, client: httpx.Client, route: Any, name: str, value: Any
    ) -> None:
        path, method = route
        body = b'{"model": "mock", "messages": [{"role": "user", "content": "x"}], "input": "x"}'
        send(
            client, method, path, body if method == "POST" else None, {name: value}, label="headers"
        )

    @given(
        target=st.sampled_from(
            [
                "/v1/../admin/config",
                "/v1/./models",
                "//v1//models",
                "/v1/models/",
                "/%2e%2e/admin/config",
                "/v1/models%00",
                "/%ff%fe",
                "/v1/chat/completions?stream=true&&&=",
                "/admin",
                "/admin/",
                "/health?x=" + "a" * 5000,
                "/" + "a/" * 2000,
                "/v1/models#frag",
                "/%",
                "/v1/%zz",
                "/metrics/../admin/reload",
                "/%C3%A9",
                "/v1/models;param",
                "*",
            ]
        )
        | st.text(
            alphabet=string.ascii_letters + string.digits + "/%.-_~!$&'()*+,;=:@", max_size=300
        ).map(lambda t: "/" + t),
        method=st.sampled_from(
            ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"]
        ),
    )
    @examples(120)
    def test_odd_paths_and_methods(self, client: httpx.Client, target: str, method: str) -> None:
        request = client.build_request(
            method, "/", headers=AUTH, content=b"{}" if method in ("POST", "PUT", "PATCH") else None
        )
        request.extensions["target"] = target.encode("utf-8")
        response = client.send(request)
        OUTCOMES[f"paths {response.status_code}"] += 1
        assert response.status_code < 500, (
            f"{method} {target}: {response.status_code} {response.text[:200]}"
        )
        if response.status_code >= 400 and method != "HEAD" and response.content:
            assert response.json()["error"]["message"]


RAW_REQUESTS = [
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nNo-Colon-Here\r\n\r\n",
    b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
    b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/mod\xc3\xa9ls\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x00\x7f\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcde",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"model":',
    b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 200_000 + b"\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-%d: y\r\n" % i for i in range(2000))
    + b"\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
    b"\r\n\r\n\r\n",
]


@pytest.mark.parametrize("raw", RAW_REQUESTS, ids=range(len(RAW_REQUESTS)))
def test_malformed_http_on_a_raw_socket(daemon: RunningDaemon, raw: bytes) -> None:
    """What no well-behaved client sends: a 4xx or a closed connection, never a 5xx."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as conn:
        with contextlib.suppress(OSError):
            conn.sendall(raw)
            conn.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                answer += chunk
    status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b"closed"
    OUTCOMES[f"raw {status.decode(errors='replace')}"] += 1
    assert status == b"closed" or status.startswith(b"4") or status == b"200", answer[:200]


class TestSchemathesis:
    """Cases generated from the daemon's own OpenAPI document, valid and invalid."""

    def test_every_operation(self, daemon: RunningDaemon, client: httpx.Client) -> None:
        schemathesis = pytest.importorskip("schemathesis")
        from schemathesis import GenerationMode

        schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
        ran = collections.Counter[str]()

        def fuzz(operation: Any, mode: Any) -> None:
            label = f"schema-{mode.value} {operation.label}"

            @given(case=operation.as_strategy(generation_mode=mode))
            @examples(12)
            def run(case: Any) -> None:
                kwargs = case.as_transport_kwargs(base_url=daemon.url, headers=AUTH)
                data = kwargs.get("data")
                response = client.request(
                    kwargs["method"],
                    kwargs["url"],
                    headers=kwargs.get("headers"),
                    params=kwargs.get("params"),
                    content=data if isinstance(data, bytes) else None,
                    json=kwargs.get("json"),
                )
                ran[label] += 1
                check(response, label)

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (a GET with no parameters)
                assert mode == GenerationMode.NEGATIVE

        for result in schema.get_all_operations():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                fuzz(result.ok(), mode)
        assert sum(ran.values()) > 60
