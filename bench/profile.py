"""``python -m bench.profile``: where fkllm's time goes per request, under load.

Starts nginx and one ``fkllm serve``, drives it with wrk, and samples it with py-spy
meanwhile. The raw stacks are attributed to the stage of the request they belong to
(walking each stack from the innermost frame outwards, the first frame that names a
stage wins) and scaled by the measured CPU per request, so the table reads "this
many microseconds of each request go to logging". Time outside Python (Granian's
Rust, the kernel's sockets) is what the process tree used beyond py-spy's samples.

py-spy comes from the bench virtualenv (``make bench-setup``); it needs ptrace rights
(root, or CAP_SYS_PTRACE).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.procstat import sample_tree
from bench.targets import FkllmTarget
from bench.upstream import Nginx
from bench.wrk import run_wrk

__all__ = ["STAGES", "attribute", "main", "stage_of"]

# (stage, file prefixes as py-spy prints them, e.g. "httpx/_client.py"); for each stack
# the innermost frame whose file matches a prefix decides, earlier stages first.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging", ("fkllmproxy/observability/", "logging/")),
    ("auth + rate limit", ("fkllmproxy/auth/", "fkllmproxy/server/gate.py", "hashlib", "hmac")),
    ("body read + parse", ("fkllmproxy/server/body.py", "fkllmproxy/wire/", "msgspec/")),
    ("routing", ("fkllmproxy/routing/",)),
    ("request middleware", ("fkllmproxy/server/middleware.py", "uuid.py")),
    (
        "upstream transport",
        ("fkllmproxy/providers/h1_transport.py", "httptools/"),
    ),
    (
        "request/response objects",
        ("fkllmproxy/providers/exchange.py", "httpx/", "httpcore/"),
    ),
    ("provider adapter", ("fkllmproxy/providers/",)),
    ("handler", ("fkllmproxy/server/",)),
    ("Litestar", ("litestar/",)),
    ("Granian callbacks into Python", ("granian/",)),
    ("asyncio event loop", ("asyncio/", "selectors.py", "uvloop/")),
)


def _file_of(frame: str) -> str:
    """``"name (path/file.py:12)"`` -> ``"path/file.py"``."""
    inside = frame[frame.rfind("(") + 1 :]
    return inside.rsplit(":", 1)[0]


def stage_of(frames: list[str]) -> str:
    """The stage a stack belongs to; ``frames`` go from the outermost to the innermost."""
    for frame in reversed(frames):
        path = _file_of(frame)
        for stage, prefixes in STAGES:
            if path.startswith(prefixes):
                return stage
    return "other Python"


def attribute(raw: str) -> Counter[str]:
    """Samples per stage from py-spy's raw (collapsed) output: ``a;b;c count`` lines."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        counts[stage_of(stack.split(";"))] += int(number)
    return counts


def innermost(raw: str) -> Counter[str]:
    """Samples per innermost frame (where the time is actually spent)."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if stack and number.isdigit():
            counts[stack.rsplit(";", 1)[-1]] += int(number)
    return counts


def _py_spy() -> str:
    local = Path(__file__).parent / ".cache" / "venv" / "bin" / "py-spy"
    found = str(local) if local.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy is not installed (make bench-setup puts it in bench/.cache/venv)")
    return found


def _record(pid: int, seconds: int, out: Path, fmt: str, rate: int) -> subprocess.Popen[bytes]:
    command = [_py_spy(), "record", "--pid", str(pid), "--duration", str(seconds)]
    command += ["--rate", str(rate), "--format", fmt, "--output", str(out), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--kind", default="json", help="json, sse, slow, ...")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--svg", help="also write a flame graph here (a second, equal run)")
    parser.add_argument("--env", action="append", default=[], metavar="APP_X=Y")
    parser.add_argument("--raw", help="keep py-spy's collapsed stacks here")
    parser.add_argument("--leaves", type=int, default=0, help="also list the N hottest frames")
    args = parser.parse_args(argv)

    env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="fkllm-profile-") as tmp:
        workdir = Path(tmp)
        upstream = Nginx.start(workdir / "nginx")
        target = FkllmTarget(name="fkllm", env=env)
        try:
            target.start(upstream, workdir)
            endpoint = target.endpoint(args.kind)
            body = endpoint.body(stream=args.kind in ("sse", "paced", "slow_sse"))
            headers = {"content-type": "application/json", **endpoint.headers}

            def load(seconds: float) -> int:
                result = run_wrk(
                    endpoint.url,
                    body,
                    headers,
                    connections=args.connections,
                    duration_s=seconds,
                    workdir=workdir,
                )
                return result.requests

            load(2)  # warm-up
            raw_path = Path(args.raw) if args.raw else workdir / "stacks.txt"
            before = sample_tree(target.pid)
            spy = _record(target.pid, args.duration, raw_path, "raw", args.rate)
            time.sleep(0.5)
            requests = load(args.duration - 1)
            spy_err = spy.communicate(timeout=args.duration + 30)[1].decode(errors="replace")
            after = sample_tree(target.pid)
            if args.svg:
                svg = _record(target.pid, args.duration, Path(args.svg), "flamegraph", args.rate)
                time.sleep(0.5)
                load(args.duration - 1)
                svg.communicate(timeout=args.duration + 30)
        finally:
            target.stop()
            upstream.stop()
        if not raw_path.exists():
            print(f"py-spy wrote nothing: {spy_err.strip()}", file=sys.stderr)
            return 1
        raw_text = raw_path.read_text()
        counts = attribute(raw_text)
        leaves = innermost(raw_text)

    cpu_ms = 1000 * (after.cpu_s - before.cpu_s) / max(1, requests)
    total = sum(counts.values())
    # Samples are wall-clock of the Python thread while it runs Python code: their share of
    # the duration is the Python share of one core; the rest of the CPU is outside Python.
    python_share = min(1.0, total / (args.rate * args.duration))
    cpu_s = after.cpu_s - before.cpu_s
    python_cpu_ms = min(cpu_ms, 1000 * python_share * args.duration / max(1, requests))
    print(
        f"{requests} requests, {cpu_ms:.3f} ms CPU per request (process tree), "
        f"{cpu_s:.1f} s CPU in {args.duration} s; Python samples {total}"
    )
    print()
    print("| stage | share of Python samples | µs per request |")
    print("|---|---|---|")
    for stage, count in counts.most_common():
        share = count / total if total else 0.0
        print(f"| {stage} | {100 * share:.1f} % | {1000 * share * python_cpu_ms:.0f} |")
    outside = max(0.0, cpu_ms - python_cpu_ms)
    print(f"| outside Python (Granian's Rust, kernel) | - | {1000 * outside:.0f} |")
    if args.leaves:
        print()
        for frame, count in leaves.most_common(args.leaves):
            print(f"{100 * count / total:5.1f} %  {frame}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
