"""``python -m bench.inproc``: fkllm's Python cost per request, without Granian or a client.

The real app (``create_app`` over a real runtime: auth, routing, the OpenAI provider
with its real HTTP client) is called as an ASGI callable, in this process, against
the nginx upstream. What is measured is this process's CPU time per request, so
other load on the machine barely moves it: that makes it the A/B instrument for
hot-path changes, where a full wrk run is too noisy. ``--profile`` prints cProfile's
top functions; the server's own share (Granian, sockets to the client) is what
``bench.run`` measures on top.

``--caller`` chooses who calls: the master key, a client key from ``[[auth.keys]]``, the
same key with a budget (reserved before the call and settled after, on the memory
store), or a JWT from a local OIDC issuer (``bench/issuer.py``), so each identity's cost
per request can be read next to the plain key's.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.callers import BENCH_KEY, CALLERS, caller_config
from bench.issuer import BenchIssuer
from bench.payloads import chat_request, responses_request
from bench.targets import MASTER_KEY, fkllm_config
from bench.upstream import Nginx

__all__ = ["main"]


def _scope(path: str, body: bytes, token: str = MASTER_KEY) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:4000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 4000),
        "state": {},
    }


async def _drive(
    app: Any,
    body: bytes,
    requests: int,
    concurrency: int,
    path: str = "/v1/chat/completions",
    token: str = MASTER_KEY,
) -> list[int]:
    statuses: list[int] = []

    async def one() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(_scope(path, body, token), receive, send)

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    share = requests // concurrency
    await asyncio.gather(*(worker(share) for _ in range(concurrency)))
    return statuses


class _MemoryTransport:
    """Answers every request at once from memory: the transport interface
    (``providers/exchange.py``) with no sockets, so ``--mock`` measures the Python hot path."""

    def __init__(self, answer: bytes) -> None:
        from fkllmproxy.providers.exchange import UpstreamResponse

        self.response = UpstreamResponse
        self.answer = answer
        self.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(answer)).encode()),
        ]

    async def handle_async_request(self, request: Any) -> Any:
        return self.response(200, list(self.headers), content=self.answer)

    async def aclose(self) -> None:
        pass


def _mock_factory() -> Any:
    from bench.payloads import completion_body

    answer = completion_body()
    return lambda provider: _MemoryTransport(answer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inproc", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument(
        "--batches", type=int, default=15, help="report the quickest of this many batches"
    )
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top 35")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key (cumulative, ...)")
    parser.add_argument("--kind", default="json", help="json, sse, paced, slow, slow_sse")
    parser.add_argument(
        "--api", default="chat", choices=["chat", "responses"], help="the client's API"
    )
    parser.add_argument(
        "--caller",
        default="master",
        choices=CALLERS,
        help="who calls: the master key, a client key, a budgeted key, a JWT",
    )
    parser.add_argument(
        "--mock",
        action="store_true",
        help="answer from memory (an in-memory transport): the Python hot path alone, no sockets",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the figures as one JSON object instead"
    )
    args = parser.parse_args(argv)

    from fkllmproxy.config import load_config
    from fkllmproxy.daemon.collector import tune_collector
    from fkllmproxy.observability.logging import configure_logging
    from fkllmproxy.server import RuntimeHolder, build_runtime, create_app

    with tempfile.TemporaryDirectory(prefix="fkllm-inproc-") as tmp:
        workdir = Path(tmp)
        upstream = Nginx.start(workdir / "nginx")
        issuer = BenchIssuer() if args.caller == "jwt" else None
        try:
            config = workdir / "fkllm.toml"
            config.write_text(fkllm_config(upstream) + caller_config(args.caller, upstream, issuer))
            token = {"master": MASTER_KEY, "jwt": issuer.token() if issuer else ""}.get(
                args.caller, BENCH_KEY
            )
            loaded = load_config(config_path=config, environ={"APP_AUTH__MASTER_KEY": MASTER_KEY})
            # Request log lines go where the daemon's go (a pipe or a file), not a terminal.
            real_stdout = sys.stdout
            sys.stdout = (workdir / "log.jsonl").open("w")
            configure_logging(loaded.config.logging.level, loaded.config.logging.format)
            # The SSE kinds answer streams: ask for one, or the provider rightly refuses
            # an event stream where it expects a JSON completion (502).
            streamed = args.kind in ("sse", "paced", "slow_sse")
            payload = responses_request if args.api == "responses" else chat_request
            body = payload(f"bench-{args.kind}", stream=streamed)
            path = "/v1/responses" if args.api == "responses" else "/v1/chat/completions"

            async def run() -> tuple[float, float, list[int]]:
                runtime = build_runtime(loaded, transport=_mock_factory() if args.mock else None)
                app = create_app(RuntimeHolder(runtime))
                runtime.auth.start()  # the issuer's keys, for --caller jwt
                tune_collector()  # as the daemon does before serving (daemon/collector.py)
                for _ in range(100):  # until they are fetched (503 before), at most 10 s
                    if await _drive(app, body, 1, 1, path, token) == [200]:
                        break
                    await asyncio.sleep(0.1)
                await _drive(app, body, 200, args.concurrency, path, token)  # warm-up
                profiler = cProfile.Profile() if args.profile else None
                if profiler:
                    profiler.enable()
                # Other load on the machine only ever adds time: the quickest batch is
                # the closest to the code's own cost.
                batch = max(args.concurrency, args.requests // args.batches)
                cpu, wall, statuses = float("inf"), float("inf"), []
                for _ in range(args.batches):
                    c0, w0 = time.process_time(), time.perf_counter()
                    done = await _drive(app, body, batch, args.concurrency, path, token)
                    c1, w1 = time.process_time(), time.perf_counter()
                    statuses += done
                    cpu = min(cpu, (c1 - c0) / len(done))
                    wall = min(wall, (w1 - w0) / len(done))
                if profiler:
                    profiler.disable()
                if profiler:
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(45)
                    print(out.getvalue(), file=real_stdout)
                await runtime.aclose()
                return cpu, wall, statuses

            if args.uvloop:
                import uvloop

                cpu, wall, statuses = uvloop.run(run())
            else:
                cpu, wall, statuses = asyncio.run(run())
            sys.stdout.close()
            sys.stdout = real_stdout
        finally:
            upstream.stop()
            if issuer is not None:
                issuer.stop()
    bad = [s for s in statuses if s != 200]
    if args.json:
        figures = {"caller": args.caller, "requests": len(statuses), "not_200": len(bad)}
        figures.update(cpu_us=round(1e6 * cpu, 1), wall_us=round(1e6 * wall, 1))
        print(json.dumps(figures))
        return 1 if bad else 0
    print(
        f"{len(statuses)} requests (c={args.concurrency}{', uvloop' if args.uvloop else ''}, "
        f"caller {args.caller}), "
        f"quickest of {args.batches} batches: {1e6 * cpu:.0f} µs CPU and {1e6 * wall:.0f} µs "
        f"wall per request; {len(bad)} not 200"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
