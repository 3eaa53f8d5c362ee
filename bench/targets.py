"""The things a load run measures, all pointed at the same nginx upstream.

- ``direct``: the upstream itself, the floor.
- ``fkllm``: ``fkllm serve`` from the project's virtualenv, one process, rate limit off.
- ``fkllm-redis``: the same with rate limiting on and its buckets in a ``redis-server``
  started for the run (one Lua round trip per request): what the Redis backend costs.
- ``litellm``: LiteLLM's proxy from a throwaway virtualenv (``bench/.cache``).
- ``portkey``: Portkey's gateway from a throwaway npm install (``bench/.cache``).

The upstream's TLS kinds (``upstream.TLS_KINDS``) are reached over https with a
certificate from the run's own CA, and each gateway is told to trust that CA the way
its documentation says: fkllm with the provider's ``ca_file``, LiteLLM with
``SSL_CERT_FILE`` (and ``REQUESTS_CA_BUNDLE`` for what it calls through ``requests``),
Portkey (Node) with ``NODE_EXTRA_CA_CERTS``. None of them is told to skip verification:
a gateway that does not trust the CA fails its TLS scenarios' check.

Each target knows how to start, where to send a request for each kind of upstream
answer (see ``upstream.KINDS``), and which PID roots the process tree to measure. A
peer that is not installed raises ``Unavailable`` with the reason; it is then skipped
and the report says so. Nothing is ever substituted for it.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.callers import BENCH_KEY, caller_config
from bench.issuer import BenchIssuer
from bench.payloads import chat_request, responses_request
from bench.upstream import TLS_KINDS, Nginx, free_port

__all__ = [
    "DirectTarget",
    "Endpoint",
    "FkllmCallerTarget",
    "FkllmRedisTarget",
    "FkllmTarget",
    "LiteLLMTarget",
    "PortkeyTarget",
    "Target",
    "Unavailable",
    "check_endpoint",
    "fkllm_config",
]

MASTER_KEY = "sk-bench-master-0123456789abcdef"
UPSTREAM_KEY = "sk-bench-upstream"
REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "bench" / ".cache"


class Unavailable(Exception):
    """Raised when a target cannot be installed or started; the message says why."""


@dataclass(frozen=True)
class Endpoint:
    """Where one kind of request goes: URL, headers, and the model name to send."""

    url: str
    headers: dict[str, str]
    model: str
    api: str = "chat"
    gateway: bool = True  # False for the upstream itself (direct)
    ca_file: str | None = None  # for an https URL: the CA to verify the server with

    def body(self, *, stream: bool) -> bytes:
        if self.api == "responses":
            return responses_request(self.model, stream=stream)
        return chat_request(self.model, stream=stream)

    def for_api(self, api: str) -> Endpoint:
        """The same endpoint for a client speaking ``api``; the upstream itself (direct)
        speaks only Chat Completions, so it stays the baseline: the upstream's own cost."""
        if api == "chat" or not self.gateway:
            return self
        return replace(self, url=self.url.replace("/chat/completions", "/responses"), api=api)


def check_endpoint(endpoint: Endpoint, *, stream: bool, timeout: float = 30.0) -> str | None:
    """One real request; ``None`` if the answer is right, else what was wrong."""
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint.url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=endpoint.ca_file)
        conn = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request(
            "POST",
            parts.path,
            body=endpoint.body(stream=stream),
            headers={"content-type": "application/json", **endpoint.headers},
        )
        response = conn.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    if endpoint.api == "responses":
        expect = b"response.completed" if stream else b'"object":"response"'
    else:
        expect = b"[DONE]" if stream else b"chat.completion"
    if response.status != 200 or expect not in data:
        return f"status {response.status}: {data[:300]!r}"
    return None


@dataclass
class Target:
    """Base: a named thing with a process tree, started against an upstream."""

    name: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    version: str = ""
    tls_scenarios: bool = True  # put through the TLS scenarios too (group "tls")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, upstream: Nginx, workdir: Path) -> None:
        raise NotImplementedError

    def endpoint(self, kind: str) -> Endpoint:
        raise NotImplementedError

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def _spawn(self, command: list[str], workdir: Path, env: dict[str, str]) -> None:
        log = (workdir / f"{self.name}.log").open("wb")
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=env,
            start_new_session=True,
        )

    def wait_ready(self, workdir: Path, timeout: float = 90.0) -> None:
        """Poll with real requests until a correct completion comes back."""
        deadline = time.monotonic() + timeout
        problem: str | None = "not started"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            problem = check_endpoint(self.endpoint("json"), stream=False, timeout=5.0)
            if problem is None:
                problem = check_endpoint(self.endpoint("sse"), stream=True, timeout=5.0)
                if problem is None:
                    return
            time.sleep(0.25)
        log = workdir / f"{self.name}.log"
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        self.stop()
        raise Unavailable(f"{self.name} did not answer correctly: {problem}\n{tail}")


def fkllm_config(upstream: Nginx, *, rate_limit: bool = False) -> str:
    """fkllm's TOML: one openai provider and one model per kind; rate limit off unless asked.

    The upstream model name equals the client's, so the request bytes are forwarded
    untouched (the path a real OpenAI-compatible deployment takes). With ``rate_limit``
    every request takes a token from a bucket far too large to run dry.
    """
    if rate_limit:
        limits = ["enabled = true", "capacity = 1000000000", "refill_per_second = 1000000"]
    else:
        limits = ["enabled = false"]
    lines = ["[rate_limit]", *limits, ""]
    for kind in upstream.ports:
        lines += [
            "[[providers]]",
            f'name = "up-{kind}"',
            'type = "openai"',
            f'base_url = "{upstream.url(kind)}"',
            f'api_key = "{UPSTREAM_KEY}"',
        ]
        if kind in TLS_KINDS:
            lines.append(f'ca_file = "{upstream.ca_file}"')
        lines += [
            "",
            "[[models]]",
            f'name = "bench-{kind}"',
            f'targets = [{{ provider = "up-{kind}", model = "bench-{kind}" }}]',
            "",
        ]
    return "\n".join(lines)


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
    return {k: os.environ[k] for k in keep if k in os.environ}


@dataclass
class DirectTarget(Target):
    """The upstream itself; its "process tree" is nginx."""

    upstream: Nginx | None = None

    def start(self, upstream: Nginx, workdir: Path) -> None:
        self.upstream = upstream
        self.version = "nginx"

    @property
    def pid(self) -> int:
        assert self.upstream is not None
        return self.upstream.pid

    def endpoint(self, kind: str) -> Endpoint:
        assert self.upstream is not None
        return Endpoint(
            f"{self.upstream.url(kind)}/chat/completions",
            {"authorization": f"Bearer {UPSTREAM_KEY}"},
            f"bench-{kind}",
            gateway=False,
            ca_file=str(self.upstream.ca_file) if kind in TLS_KINDS else None,
        )

    def stop(self) -> None:
        self.upstream = None


@dataclass
class FkllmTarget(Target):
    """``fkllm serve`` with a generated config; ``env`` adds ``APP_*`` overrides."""

    binary: Path = REPO / ".venv" / "bin" / "fkllm"
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    rate_limit: bool = False

    def extra_config(self, upstream: Nginx) -> str:
        """More TOML after the generated config (a subclass's callers)."""
        return ""

    def start(self, upstream: Nginx, workdir: Path) -> None:
        if not self.binary.exists():
            raise Unavailable(f"{self.binary} is missing (run 'make venv')")
        self.port = free_port()
        config = workdir / f"{self.name}.toml"
        config.write_text(
            fkllm_config(upstream, rate_limit=self.rate_limit) + self.extra_config(upstream)
        )
        env = {**_base_env(), "APP_AUTH__MASTER_KEY": MASTER_KEY, **self.env}
        self._spawn(
            [
                str(self.binary),
                "serve",
                "--config",
                str(config),
                "--env-file",
                os.devnull,
                "--port",
                str(self.port),
            ],
            workdir,
            env,
        )
        version = subprocess.run(
            [str(self.binary), "--version"], capture_output=True, text=True, check=False
        )
        self.version = version.stdout.strip().splitlines()[-1] if version.stdout.strip() else ""
        self.wait_ready(workdir)

    def token(self) -> str:
        """What the load generator sends as its Bearer key."""
        return MASTER_KEY

    def endpoint(self, kind: str) -> Endpoint:
        return Endpoint(
            f"http://127.0.0.1:{self.port}/v1/chat/completions",
            {"authorization": f"Bearer {self.token()}"},
            f"bench-{kind}",
        )


@dataclass
class FkllmCallerTarget(FkllmTarget):
    """fkllm called as a client key, a budgeted key or a JWT (``bench/callers.py``): what
    each identity adds per request, next to the plain key's row. Not put through the TLS
    scenarios: the caller's cost does not depend on how the upstream is reached."""

    caller: str = "key"
    tls_scenarios: bool = False
    issuer: BenchIssuer | None = field(default=None, repr=False)

    def extra_config(self, upstream: Nginx) -> str:
        if self.caller == "jwt" and self.issuer is None:
            try:
                self.issuer = BenchIssuer()
            except ImportError as exc:
                raise Unavailable(f"{exc.name} is missing (run 'make bench-setup')") from None
        return caller_config(self.caller, upstream, self.issuer)

    def token(self) -> str:
        if self.caller == "jwt":
            assert self.issuer is not None
            return self.issuer.token()
        return BENCH_KEY

    def stop(self) -> None:
        super().stop()
        issuer, self.issuer = self.issuer, None
        if issuer is not None:
            issuer.stop()


@dataclass
class FkllmRedisTarget(FkllmTarget):
    """fkllm with rate limiting on and ``[state] backend = "redis"``, and its own Redis.

    The Redis server (no persistence, loopback only) is part of what is measured: its
    CPU is not in fkllm's process tree, so the report's CPU per request is fkllm's
    alone and Redis's work shows as lower throughput where the machine is saturated.
    """

    rate_limit: bool = True
    tls_scenarios: bool = False  # what Redis costs does not depend on the upstream's TLS
    redis: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, upstream: Nginx, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable("redis-server is not installed (apt-get install redis-server)")
        port = free_port()
        self.redis = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=(workdir / f"{self.name}-redis.log").open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise Unavailable(f"redis-server did not answer on port {port}")
        self.env = {
            **self.env,
            "APP_STATE__BACKEND": "redis",
            "APP_STATE__URL": f"redis://127.0.0.1:{port}/0",
        }
        super().start(upstream, workdir)

    def stop(self) -> None:
        super().stop()
        redis, self.redis = self.redis, None
        if redis is not None and redis.poll() is None:
            redis.terminate()
            try:
                redis.wait(timeout=10)
            except subprocess.TimeoutExpired:
                redis.kill()
                redis.wait(timeout=5)


@dataclass
class LiteLLMTarget(Target):
    """LiteLLM's proxy (``litellm[proxy]``), one worker, no database."""

    venv: Path = CACHE / "litellm-venv"
    port: int = 0

    def start(self, upstream: Nginx, workdir: Path) -> None:
        binary = self.venv / "bin" / "litellm"
        if not binary.exists():
            raise Unavailable(
                f"LiteLLM is not installed in {self.venv} (make bench-setup installs it; "
                f"see {CACHE}/litellm-install.log for why it failed)"
            )
        self.port = free_port()
        lines = ["model_list:"]
        for kind in upstream.ports:
            lines += [
                f"  - model_name: bench-{kind}",
                "    litellm_params:",
                f"      model: openai/bench-{kind}",
                f"      api_base: {upstream.url(kind)}",
                f"      api_key: {UPSTREAM_KEY}",
            ]
        lines += [
            "general_settings:",
            f"  master_key: {MASTER_KEY}",
            "litellm_settings:",
            "  set_verbose: false",
            "  request_timeout: 600",
            "  telemetry: false",
        ]
        config = workdir / "litellm.yaml"
        config.write_text("\n".join(lines) + "\n")
        env = {
            **_base_env(),
            **_ca_env(upstream, "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_TELEMETRY": "False",
            "NO_DOCS": "True",
        }
        self._spawn(
            [
                str(binary),
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--num_workers",
                "1",
            ],
            workdir,
            env,
        )
        self.version = _pip_version(self.venv, "litellm")
        self.wait_ready(workdir, timeout=180.0)

    def endpoint(self, kind: str) -> Endpoint:
        return Endpoint(
            f"http://127.0.0.1:{self.port}/v1/chat/completions",
            {"authorization": f"Bearer {MASTER_KEY}"},
            f"bench-{kind}",
        )


@dataclass
class PortkeyTarget(Target):
    """Portkey's open-source gateway (``@portkey-ai/gateway``) on node, headless."""

    root: Path = CACHE / "portkey"
    port: int = 0
    upstream: Nginx | None = None

    def start(self, upstream: Nginx, workdir: Path) -> None:
        package = self.root / "node_modules" / "@portkey-ai" / "gateway"
        script = package / "build" / "start-server.js"
        if not script.exists():
            raise Unavailable(
                f"Portkey's gateway is not installed in {self.root} (make bench-setup installs "
                "it with npm)"
            )
        self.upstream = upstream
        self.port = free_port()
        env = {**_base_env(), **_ca_env(upstream, "NODE_EXTRA_CA_CERTS"), "NODE_ENV": "production"}
        self._spawn(["node", str(script), f"--port={self.port}", "--headless"], workdir, env)
        self.version = _npm_version(package)
        hono = self.root / "node_modules" / "@hono" / "node-server" / "dist" / "index.mjs"
        if hono.exists() and "init instanceof GlobalResponse ?" in hono.read_text():
            self.version += " (with the @hono/node-server streaming fix, see bench/README.md)"
        self.wait_ready(workdir)

    def endpoint(self, kind: str) -> Endpoint:
        assert self.upstream is not None
        return Endpoint(
            f"http://127.0.0.1:{self.port}/v1/chat/completions",
            {
                "authorization": f"Bearer {UPSTREAM_KEY}",
                "x-portkey-provider": "openai",
                "x-portkey-custom-host": self.upstream.url(kind),
            },
            f"bench-{kind}",
        )


def _ca_env(upstream: Nginx, *names: str) -> dict[str, str]:
    """The variables that make a peer trust the upstream's CA (none without TLS)."""
    if upstream.ca_file is None:
        return {}
    return dict.fromkeys(names, str(upstream.ca_file))


def _pip_version(venv: Path, name: str) -> str:
    import json

    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    try:
        for item in json.loads(out):
            if item["name"].lower() == name:
                return f"{name} {item['version']}"
    except ValueError:
        pass
    return name


def _npm_version(package: Path) -> str:
    import json

    try:
        data = json.loads((package / "package.json").read_text())
    except (OSError, ValueError):
        return "unknown"
    return f"{data.get('name')} {data.get('version')}"
