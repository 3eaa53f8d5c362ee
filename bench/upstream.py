"""The upstream every target calls: nginx, with its own config in a temporary directory.

nginx answers from memory at next to no CPU, so what a load run measures is the
gateway, not the upstream. One nginx (one worker) listens on one port per kind of
answer, because a plain nginx cannot look into the request body to tell a streaming
request from another:

- ``json``: a fixed chat completion, at once (``return 200``).
- ``sse``: a fixed 20-chunk SSE stream, at once, in one write.
- ``paced``: the same 20 chunks, the first at once and the rest 10 ms apart, each
  flushed (the echo module), to see whether a gateway holds chunks back.
- ``slow``: the fixed completion after 500 ms (echo_sleep: a timer, no CPU), to
  hold a thousand requests open at once.
- ``slow_sse``: 500 ms, then the 20 chunks 25 ms apart.
- ``json_tls`` and ``slow_tls``: ``json`` and ``slow`` again, over TLS (``listen ...
  ssl``, kept alive as the others), with a certificate from a CA the harness makes for
  the run (``bench/tls.py``); the gateways are told to trust that CA.

A further port serves nginx's ``stub_status``: its ``accepts`` counter, read before and
after a measured run, tells how many connections the gateway opened to the upstream
(each one a TLS handshake on the TLS ports), so a gateway that does not keep its
upstream connections alive shows it.

The system nginx service is never touched: this one runs in the foreground under
our own PID with ``-p`` pointing at the temporary directory.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.payloads import completion_body, sse_body, sse_frames
from bench.tls import ServerCertificate, make_certificates

__all__ = [
    "ECHO_MODULE",
    "KINDS",
    "SLOW_DELAY_S",
    "TLS_KINDS",
    "Nginx",
    "StubStatus",
    "echo_module_available",
    "free_port",
    "nginx_config",
    "parse_stub_status",
]

KINDS = ("json", "sse", "paced", "slow", "slow_sse")
TLS_KINDS = {"json_tls": "json", "slow_tls": "slow"}  # served over TLS: the plain kind's answer
SLOW_DELAY_S = 0.5
PACED_GAP_S = 0.010
SLOW_SSE_GAP_S = 0.025
ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def echo_module_available() -> bool:
    return ECHO_MODULE.exists()


def _nofile() -> int:
    """The most open files this process tree may have (nginx cannot exceed the hard limit)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)


def _quoted(data: bytes) -> str:
    """An nginx single-quoted string holding ``data`` (newlines kept literally)."""
    text = data.decode()
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _echo(data: bytes) -> str:
    # echo interpolates variables: none of our payloads contains a '$'.
    assert b"$" not in data
    return f"echo -n {_quoted(data)};"


def _location(kind: str) -> str:
    if kind == "json":
        return f"default_type application/json;\n      return 200 {_quoted(completion_body())};"
    if kind == "sse":
        return f"default_type text/event-stream;\n      return 200 {_quoted(sse_body())};"
    steps = ["echo_read_request_body;"]
    if kind == "slow":
        steps += [f"echo_sleep {SLOW_DELAY_S};", _echo(completion_body())]
        return "default_type application/json;\n      " + "\n      ".join(steps)
    gap = PACED_GAP_S if kind == "paced" else SLOW_SSE_GAP_S
    if kind == "slow_sse":
        steps.append(f"echo_sleep {SLOW_DELAY_S};")
    for index, frame in enumerate(sse_frames()):
        if index:
            steps.append(f"echo_sleep {gap};")
        steps += [_echo(frame), "echo_flush;"]
    return "default_type text/event-stream;\n      " + "\n      ".join(steps)


def nginx_config(
    root: Path,
    ports: dict[str, int],
    *,
    with_echo: bool,
    tls: ServerCertificate | None = None,
    status_port: int | None = None,
) -> str:
    """A complete nginx.conf serving each kind in ``ports`` under ``root``.

    The TLS kinds (``TLS_KINDS``) are served only with ``tls``; ``status_port`` adds a
    plain server answering ``stub_status`` (the connection counters).
    """
    servers = []
    for kind, port in ports.items():
        plain = TLS_KINDS.get(kind, kind)
        if plain not in ("json", "sse") and not with_echo:
            continue
        if kind in TLS_KINDS and tls is None:
            continue
        listen = f"listen 127.0.0.1:{port} backlog=8192 reuseport"
        if kind in TLS_KINDS:
            assert tls is not None
            listen += f""" ssl;
    ssl_certificate {tls.cert_file};
    ssl_certificate_key {tls.key_file}"""
        servers.append(
            f"""  server {{
    {listen};
    location / {{
      {_location(plain)}
    }}
  }}"""
        )
    if status_port is not None:
        servers.append(
            f"""  server {{
    listen 127.0.0.1:{status_port};
    keepalive_timeout 0;
    location / {{
      stub_status;
    }}
  }}"""
        )
    load = f"load_module {ECHO_MODULE};\n" if with_echo else ""
    body = "\n".join(servers)
    return f"""{load}daemon off;
worker_processes 1;
worker_rlimit_nofile {_nofile()};
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{
  worker_connections 16384;
  multi_accept on;
}}
http {{
  access_log off;
  server_tokens off;
  keepalive_timeout 300s;
  keepalive_requests 10000000;
  client_body_buffer_size 64k;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  ssl_session_timeout 1h;
  client_body_temp_path {root}/client_body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
{body}
}}
"""


@dataclass(frozen=True)
class StubStatus:
    """nginx's connection counters (``stub_status``), totals since nginx started."""

    active: int
    accepts: int
    handled: int
    requests: int


def parse_stub_status(text: str) -> StubStatus:
    """The counters in a ``stub_status`` page; ``ValueError`` if it is not one."""
    lines = text.splitlines()
    try:
        active = int(lines[0].split(":")[1])
        accepts, handled, requests = (int(n) for n in lines[2].split())
    except (IndexError, ValueError):
        raise ValueError(f"not an nginx stub_status page: {text[:200]!r}") from None
    return StubStatus(active, accepts, handled, requests)


@dataclass
class Nginx:
    """One nginx master (and its worker) on ports of our choosing, stopped by PID."""

    root: Path
    ports: dict[str, int]
    process: subprocess.Popen[bytes] | None = None
    tls: ServerCertificate | None = None
    status_port: int | None = None
    tls_problem: str = ""  # why there are no TLS kinds, when there are none

    @classmethod
    def start(cls, root: Path, *, with_echo: bool | None = None, tls: bool = True) -> Nginx:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise RuntimeError("nginx is not installed (make bench installs nginx-light)")
        echo = echo_module_available() if with_echo is None else with_echo
        root.mkdir(parents=True, exist_ok=True)
        kinds: list[str] = list(KINDS if echo else ("json", "sse"))
        certificate, problem = None, "not asked for"
        if tls:
            try:
                certificate, problem = make_certificates(root / "tls"), ""
            except RuntimeError as exc:
                problem = str(exc)
        if certificate is not None:
            kinds += [k for k, plain in TLS_KINDS.items() if plain in kinds]
        ports = {kind: free_port() for kind in kinds}
        status_port = free_port()
        conf = root / "nginx.conf"
        conf.write_text(
            nginx_config(root, ports, with_echo=echo, tls=certificate, status_port=status_port)
        )
        log = (root / "stderr.log").open("wb")
        process = subprocess.Popen(
            [binary, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        upstream = cls(root=root, ports=ports, process=process, tls=certificate)
        upstream.status_port = status_port
        upstream.tls_problem = problem
        upstream._wait_listening()
        return upstream

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def url(self, kind: str) -> str:
        """The base URL a provider is configured with (OpenAI style, up to ``/v1``)."""
        scheme = "https" if kind in TLS_KINDS else "http"
        return f"{scheme}://127.0.0.1:{self.ports[kind]}/v1"

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate a client must trust to reach the TLS kinds (``None``: none)."""
        return self.tls.ca_file if self.tls else None

    def status(self, timeout: float = 5.0) -> StubStatus:
        """nginx's connection counters now. Reading them opens one connection itself,
        counted in the ``accepts`` it returns."""
        assert self.status_port is not None
        url = f"http://127.0.0.1:{self.status_port}/"
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return parse_stub_status(answer.read().decode())

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        pending = set(self.ports.values())
        if self.status_port is not None:
            pending.add(self.status_port)
        while pending and time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = (self.root / "error.log").read_text(errors="replace")
                raise RuntimeError(f"nginx exited at start:\n{log}")
            for port in list(pending):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        pending.discard(port)
            time.sleep(0.05)
        if pending:
            self.stop()
            raise RuntimeError(f"nginx did not listen on {sorted(pending)} in {timeout}s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
