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
from dataclasses import dataclass
from pathlib import Path

from bench.payloads import completion_body, sse_body, sse_frames

__all__ = [
    "ECHO_MODULE",
    "KINDS",
    "SLOW_DELAY_S",
    "Nginx",
    "echo_module_available",
    "free_port",
    "nginx_config",
]

KINDS = ("json", "sse", "paced", "slow", "slow_sse")
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


def nginx_config(root: Path, ports: dict[str, int], *, with_echo: bool) -> str:
    """A complete nginx.conf serving each kind in ``ports`` under ``root``."""
    servers = []
    for kind, port in ports.items():
        if kind not in ("json", "sse") and not with_echo:
            continue
        servers.append(
            f"""  server {{
    listen 127.0.0.1:{port} backlog=8192 reuseport;
    location / {{
      {_location(kind)}
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
  client_body_temp_path {root}/client_body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
{body}
}}
"""


@dataclass
class Nginx:
    """One nginx master (and its worker) on ports of our choosing, stopped by PID."""

    root: Path
    ports: dict[str, int]
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, root: Path, *, with_echo: bool | None = None) -> Nginx:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise RuntimeError("nginx is not installed (make bench installs nginx-light)")
        echo = echo_module_available() if with_echo is None else with_echo
        root.mkdir(parents=True, exist_ok=True)
        kinds = KINDS if echo else ("json", "sse")
        ports = {kind: free_port() for kind in kinds}
        conf = root / "nginx.conf"
        conf.write_text(nginx_config(root, ports, with_echo=echo))
        log = (root / "stderr.log").open("wb")
        process = subprocess.Popen(
            [binary, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        upstream = cls(root=root, ports=ports, process=process)
        upstream._wait_listening()
        return upstream

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def url(self, kind: str) -> str:
        """The base URL a provider is configured with (OpenAI style, up to ``/v1``)."""
        return f"http://127.0.0.1:{self.ports[kind]}/v1"

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        pending = set(self.ports.values())
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
