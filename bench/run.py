"""``python -m bench.run``: start the upstream, measure every target, write the report.

Each target is started alone (nothing else of ours running beside it), checked with
real requests, then put through every scenario: a short warm-up, then the measured
run with the CPU time of the target's process tree read before and after, and nginx's
count of accepted connections too (the connections the target opened to the upstream
during the measured run, each a TLS handshake in the TLS scenarios). Results go
to ``results.json``; ``bench.report`` and ``bench.chart`` turn that into the markdown
table and the PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.procstat import sample_tree
from bench.scenarios import Scenario, select
from bench.stream_timing import measure_streams
from bench.targets import (
    DirectTarget,
    FkllmCallerTarget,
    FkllmRedisTarget,
    FkllmTarget,
    LiteLLMTarget,
    PortkeyTarget,
    Target,
    Unavailable,
    check_endpoint,
)
from bench.upstream import SLOW_DELAY_S, Nginx, StubStatus
from bench.wrk import run_wrk, wrk_available

__all__ = ["main"]

DEFAULT_TARGETS = (
    "direct",
    "fkllm",
    "fkllm-redis",
    "fkllm-key",
    "fkllm-budget",
    "fkllm-jwt",
    "litellm",
    "portkey",
)


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _parse_variant(text: str) -> FkllmTarget:
    """``NAME:KEY=VALUE,...`` -> an fkllm target ``fkllm-NAME`` with that environment.

    The key ``binary`` names another ``fkllm`` to run (another checkout's virtualenv),
    to compare two versions of the code in one run.
    """
    name, _, pairs = text.partition(":")
    env = dict(pair.split("=", 1) for pair in pairs.split(",") if pair)
    binary = env.pop("binary", None)
    target = FkllmTarget(name=f"fkllm-{name}", env=env)
    if binary:
        target.binary = Path(binary)
    return target


def build_targets(names: list[str], variants: list[str]) -> list[Target]:
    factories = {
        "direct": lambda: DirectTarget(name="direct"),
        "fkllm": lambda: FkllmTarget(name="fkllm"),
        "fkllm-redis": lambda: FkllmRedisTarget(name="fkllm-redis"),
        "fkllm-key": lambda: FkllmCallerTarget(name="fkllm-key", caller="key"),
        "fkllm-budget": lambda: FkllmCallerTarget(name="fkllm-budget", caller="budget"),
        "fkllm-jwt": lambda: FkllmCallerTarget(name="fkllm-jwt", caller="jwt"),
        "litellm": lambda: LiteLLMTarget(name="litellm"),
        "portkey": lambda: PortkeyTarget(name="portkey"),
    }
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise SystemExit(f"unknown target(s) {unknown}; known: {sorted(factories)}")
    targets: list[Target] = [factories[n]() for n in names]
    targets += [_parse_variant(v) for v in variants]
    return targets


# The steady-state window of a measured run, as shares of its duration: late enough that
# the connections the warm-up's cut requests cost are open again (a gateway hangs up an
# upstream connection whose client went away mid-request), early enough to end before
# wrk cuts the run's own last requests.
STEADY_WINDOW = (0.4, 0.95)


class _CounterReadings(threading.Thread):
    """nginx's counters and the target's CPU time, read at ``delays`` seconds from now,
    in the background."""

    def __init__(self, upstream: Nginx, pid: int, delays: tuple[float, ...]) -> None:
        super().__init__(daemon=True)
        self.upstream, self.pid, self.delays = upstream, pid, delays
        self.readings: list[StubStatus] = []
        self.cpu_s: list[float] = []
        self.started_at = time.monotonic()

    def run(self) -> None:
        for delay in self.delays:
            time.sleep(max(0.0, self.started_at + delay - time.monotonic()))
            try:
                self.readings.append(self.upstream.status())
            except (OSError, ValueError):
                return
            self.cpu_s.append(sample_tree(self.pid).cpu_s)

    def steady(self) -> dict[str, Any]:
        """Connections accepted and requests served between the two readings (each
        reading counts its own connection and request), per 1,000 requests."""
        if len(self.readings) < 2:
            return {}
        first, last = self.readings[0], self.readings[-1]
        opened, served = last.accepts - first.accepts - 1, last.requests - first.requests - 1
        cpu = self.cpu_s[-1] - self.cpu_s[0]
        return {
            "upstream_connections_steady": opened,
            "upstream_requests_steady": served,
            "upstream_connections_per_1k_steady": 1000 * opened / served if served > 0 else None,
            # Each upstream request is one client request: the same CPU per request, but
            # without the reconnections at the start (see STEADY_WINDOW).
            "cpu_ms_per_req_steady": 1000 * cpu / served if served > 0 else None,
        }


def _run_load(
    target: Target,
    upstream: Nginx,
    scenario: Scenario,
    duration: float,
    warmup: float,
    workdir: Path,
) -> dict[str, Any]:
    endpoint = target.endpoint(scenario.kind).for_api(scenario.api)
    body = endpoint.body(stream=scenario.stream)
    headers = {"content-type": "application/json", **endpoint.headers}
    slow = scenario.ideal_s > 0  # the upstream holds every answer back
    timeout = 30.0 if slow else 10.0
    if warmup > 0:
        run_wrk(
            endpoint.url,
            body,
            headers,
            connections=scenario.connections,
            duration_s=warmup,
            workdir=workdir,
            timeout_s=timeout,
        )
        if slow:
            time.sleep(SLOW_DELAY_S * 2)  # let the warm-up's last requests finish
    accepted_before = upstream.status().accepts
    before = sample_tree(target.pid)
    delays = tuple(share * duration for share in STEADY_WINDOW)
    window = _CounterReadings(upstream, target.pid, delays)
    window.start()
    result = run_wrk(
        endpoint.url,
        body,
        headers,
        connections=scenario.connections,
        duration_s=duration,
        workdir=workdir,
        timeout_s=timeout,
    )
    after = sample_tree(target.pid)
    window.join(timeout=10)
    # Each reading of the counter is a connection of its own, counted in what it reads:
    # this one and the steady window's are not the target's.
    opened = upstream.status().accepts - accepted_before - 1 - len(window.readings)
    cpu = after.cpu_s - before.cpu_s
    if result.requests == 0:
        return {
            "failed": f"no request completed in {duration:.0f} s "
            f"(errors {result.errors}, CPU used {cpu:.1f} s)",
            "rss_mib": after.rss_mib,
        }
    if result.ok_requests == 0:
        # e.g. a circuit the warm-up opened: a rate of error answers is no throughput.
        return {
            "failed": f"every one of {result.requests} answers was an error status "
            f"(upstream connections opened {opened}; see the target's log)",
            "rss_mib": after.rss_mib,
        }
    return {
        "rps": result.rps,
        "requests": result.requests,
        "duration_s": result.duration_s,
        "errors": result.errors,
        "error_count": result.error_count,
        "latency_ms": result.latency_ms,
        "cpu_s": cpu,
        "cpu_ms_per_req": 1000 * cpu / result.requests if result.requests else None,
        "rss_mib": after.rss_mib,
        "upstream_connections": opened,
        "upstream_connections_per_1k": 1000 * opened / result.requests,
        **window.steady(),
    }


def _run_sequential(target: Target, scenario: Scenario, duration: float) -> dict[str, Any]:
    endpoint = target.endpoint(scenario.kind).for_api(scenario.api)
    body = endpoint.body(stream=scenario.stream)
    measure_streams(endpoint.url, body, endpoint.headers, count=5, max_seconds=5)
    before = sample_tree(target.pid)
    timing = measure_streams(
        endpoint.url, body, endpoint.headers, count=scenario.count, max_seconds=duration
    )
    after = sample_tree(target.pid)
    summary = timing.summary()
    count = len(timing.ttfb_ms) + timing.errors
    cpu = after.cpu_s - before.cpu_s
    return {
        **summary,
        "error_count": timing.errors,
        "sample_error": timing.sample_error,
        "cpu_s": cpu,
        "cpu_ms_per_req": 1000 * cpu / count if count else None,
        "rss_mib": after.rss_mib,
    }


def measure_target(
    target: Target,
    upstream: Nginx,
    scenarios: list[Scenario],
    *,
    duration: float,
    warmup: float,
    workdir: Path,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"skipped": None, "scenarios": {}}
    _say(f"{target.name}: starting")
    try:
        target.start(upstream, workdir)
    except Unavailable as exc:
        _say(f"{target.name}: SKIPPED - {exc}")
        entry["skipped"] = str(exc).splitlines()[0]
        return entry
    try:
        entry["version"] = target.version
        time.sleep(1.0)
        idle = sample_tree(target.pid)
        entry["rss_idle_mib"] = idle.rss_mib
        entry["processes"] = idle.processes
        entry["load_before"] = os.getloadavg()
        peak = idle.rss_mib
        for scenario in scenarios:
            if scenario.plain and not target.tls_scenarios:
                continue
            endpoint = target.endpoint(scenario.kind).for_api(scenario.api)
            problem = check_endpoint(endpoint, stream=scenario.stream)
            if problem is not None:
                _say(f"{target.name} {scenario.id}: wrong answer, not measured: {problem}")
                entry["scenarios"][scenario.id] = {"failed": problem}
                continue
            if scenario.mode == "load":
                result = _run_load(target, upstream, scenario, duration, warmup, workdir)
                if "failed" in result:
                    _say(f"{target.name} {scenario.id}: FAILED - {result['failed']}")
                    entry["scenarios"][scenario.id] = result
                    continue
                _say(
                    f"{target.name} {scenario.id}: {result['rps']:.0f} req/s, "
                    f"p50 {result['latency_ms']['p50']:.2f} ms, "
                    f"p99 {result['latency_ms']['p99']:.2f} ms, "
                    f"errors {result['error_count']}, "
                    f"cpu {result['cpu_ms_per_req'] or 0:.3f} ms/req, "
                    f"upstream connections {result['upstream_connections']} "
                    f"({result.get('upstream_connections_steady', '-')} in the steady window)"
                )
            else:
                result = _run_sequential(target, scenario, duration)
                _say(
                    f"{target.name} {scenario.id}: ttfb p50 {result['ttfb_p50']:.2f} ms, "
                    f"total p50 {result['total_p50']:.2f} ms, errors {result['error_count']}"
                )
            peak = max(peak, result["rss_mib"])
            entry["scenarios"][scenario.id] = result
        entry["rss_after_mib"] = sample_tree(target.pid).rss_mib
        entry["rss_peak_mib"] = peak
        entry["load_after"] = os.getloadavg()
    finally:
        target.stop()
    return entry


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help="comma-separated: direct, fkllm, litellm, portkey (default: all)",
    )
    parser.add_argument(
        "--fkllm-variant",
        action="append",
        default=[],
        metavar="NAME:APP_X=Y,...",
        help="also measure fkllm with these environment overrides, as target fkllm-NAME",
    )
    parser.add_argument("--scenarios", default="", help="comma-separated scenario ids")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per scenario")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    parser.add_argument(
        "--workdir",
        default="",
        help="keep the run's files here (configs, certificates, each target's log) "
        "instead of a temporary directory removed at the end",
    )
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help="also put this run's summary table into docs/performance.md",
    )
    args = parser.parse_args(argv)

    if not wrk_available():
        print("wrk is not installed (make bench installs it with apt-get)", file=sys.stderr)
        return 2
    scenarios = select([s for s in args.scenarios.split(",") if s])
    names = [t for t in args.targets.split(",") if t]
    targets = build_targets(names, args.fkllm_variant)
    nofile = _raise_nofile()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    results: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "uptime_before": _uptime(),
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "nofile": nofile,
            "slow_delay_s": SLOW_DELAY_S,
            "wrk": shutil.which("wrk"),
        },
        "scenarios": [s.__dict__ for s in scenarios],
        "targets": {},
    }
    with tempfile.TemporaryDirectory(prefix="fkllm-bench-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        upstream = Nginx.start(workdir / "nginx")
        results["meta"]["tls"] = (
            f"ECDSA P-256, made with {upstream.tls.made_with}"
            if upstream.tls
            else f"no TLS upstream: {upstream.tls_problem}"
        )
        missing = [s.id for s in scenarios if s.kind not in upstream.ports]
        if missing:
            why = upstream.tls_problem if upstream.tls is None else ""
            _say(f"nginx echo module or TLS missing {why}: scenarios {missing} are skipped")
            scenarios = [s for s in scenarios if s.kind in upstream.ports]
        try:
            for target in targets:
                results["targets"][target.name] = measure_target(
                    target,
                    upstream,
                    scenarios,
                    duration=args.duration,
                    warmup=args.warmup,
                    workdir=workdir,
                )
        finally:
            for target in targets:
                target.stop()
            upstream.stop()
    if {"fkllm-key", "fkllm-budget", "fkllm-jwt"} <= set(results["targets"]):
        from bench import identity_cost

        _say("in process: what a budget and a JWT add to a request (bench.identity_cost)")
        results["identity_cost"] = identity_cost.measure()
    results["meta"]["uptime_after"] = _uptime()
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(report.render(results))
    if args.update_docs:
        docs = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
        docs.write_text(report.update_docs(docs.read_text(), results))
        _say(f"updated the results table in {docs}")
    _say(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    if not args.no_chart:
        try:
            from bench import chart

            chart.render(results, out / "results.png")
            _say(f"wrote {out / 'results.png'}")
        except ImportError as exc:
            _say(f"no chart: {exc} (the bench virtualenv has matplotlib)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
