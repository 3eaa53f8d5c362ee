"""Driving wrk (a C load generator) and reading its result.

wrk sends the same POST over and over on ``connections`` keep-alive connections. A
generated Lua script sets the body and headers and, in ``done()``, prints one line
``WRK_JSON {...}`` with the counts and latency percentiles (microseconds), so nothing
depends on wrk's human-readable summary.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["WrkResult", "lua_script", "parse_output", "run_wrk", "wrk_available"]

_MARKER = "WRK_JSON "

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    "__MARKER__", summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
"""


def _lua_string(value: str | bytes) -> str:
    """A Lua long-bracket literal holding ``value`` exactly (no escapes interpreted)."""
    text = value.decode() if isinstance(value, bytes) else value
    level = 1
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    # A long bracket drops a newline right after the opening bracket: add one to keep it.
    return f"[{eq}[\n{text}]{eq}]"


def lua_script(body: bytes, headers: dict[str, str]) -> str:
    """The wrk script: POST ``body`` with ``headers``, report as one JSON line."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body)}"]
    for name, value in headers.items():
        lines.append(f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}")
    return "\n".join(lines) + "\n" + _DONE.replace("__MARKER__", _MARKER)


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: counts, errors and latency percentiles (milliseconds)."""

    requests: int
    duration_s: float
    errors: dict[str, int]
    latency_ms: dict[str, float]
    raw: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def ok_requests(self) -> int:
        """Requests answered with a 2xx/3xx status (wrk counts others as status errors)."""
        return max(0, self.requests - self.errors.get("status", 0))


def parse_output(stdout: str) -> WrkResult:
    """The result in wrk's output; ``ValueError`` if the Lua report line is missing."""
    for line in stdout.splitlines():
        if line.startswith(_MARKER):
            data = json.loads(line[len(_MARKER) :])
            break
    else:
        raise ValueError(f"wrk printed no {_MARKER.strip()} line:\n{stdout[-2000:]}")
    latency = {k: v / 1000.0 for k, v in data["latency_us"].items()}
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        errors={k: int(v) for k, v in data["errors"].items()},
        latency_ms=latency,
        raw=data,
    )


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    connections: int,
    duration_s: float,
    workdir: Path,
    threads: int = 1,
    timeout_s: float = 10.0,
) -> WrkResult:
    """Run wrk against ``url`` and return its parsed result."""
    script = workdir / f"wrk-{connections}-{abs(hash((url, body))) % 10**8}.lua"
    script.write_text(lua_script(body, headers))
    command = [
        "wrk",
        f"-t{max(1, min(threads, connections))}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + timeout_s + 30
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    return parse_output(completed.stdout)
