"""``fkllm smoke``: check a running deployment end to end, one line per check.

Meant for right after an install, an upgrade or a config change, and for CI: it asks
the daemon what a client would (health, readiness, the key's models, then one call on
each client API the proxy serves: Chat Completions whole and streamed, Messages,
Responses, Gemini ``generateContent``; ``--stream`` streams those three too) and says
for each what it saw and how long it took. Exit 0 when every check passed, 1 when one
did not, 2 when nothing answers at the address (as ``fkllm status``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
import typer

from fkllmproxy.cli.app import app
from fkllmproxy.cli.locate import Unreachable, locate
from fkllmproxy.cli.options import ConfigOption, EnvFileOption
from fkllmproxy.cli.smoke_checks import CheckResult, SmokeRun
from fkllmproxy.daemon.messages import print_error

__all__ = ["EXIT_FAILED", "EXIT_UNREACHABLE", "plan", "smoke"]

EXIT_FAILED = 1
EXIT_UNREACHABLE = 2
_NAME_WIDTH = 17
_DETAIL_WIDTH = 64


def plan(run: SmokeRun, model: str | None, stream: bool) -> list[tuple[str, Callable[[], str]]]:
    """The checks in the order they run; the API calls need the model ``models`` picks."""
    checks: list[tuple[str, Callable[[], str]]] = [
        ("health", run.health),
        ("ready", run.ready),
        ("models", lambda: run.models(model)),
        ("chat", run.chat),
        ("chat-stream", run.chat_stream),
        ("messages", run.messages),
    ]
    if stream:
        checks.append(("messages-stream", run.messages_stream))
    checks.append(("responses", run.responses))
    if stream:
        checks.append(("responses-stream", run.responses_stream))
    checks.append(("gemini", run.gemini))
    if stream:
        checks.append(("gemini-stream", run.gemini_stream))
    return checks


_NEEDS_MODEL = frozenset(
    {"chat", "chat-stream", "messages", "messages-stream", "responses", "responses-stream",
     "gemini", "gemini-stream"}
)  # fmt: skip


def line(result: CheckResult) -> str:
    """One check as a report line: name, outcome, what it saw, latency."""
    latency = "" if result.latency_ms is None else f"{result.latency_ms:.0f} ms"
    return f"{result.name:<{_NAME_WIDTH}} {result.outcome:<4}  {result.detail:<{_DETAIL_WIDTH}} {latency:>8}".rstrip()


def _execute(
    run: SmokeRun, model: str | None, stream: bool, show: Callable[[CheckResult], None]
) -> tuple[list[CheckResult], str | None]:
    """Run every check, showing each as it ends; the second value is why the daemon
    became unreachable, if it did (the checks after that one are skipped)."""
    results: list[CheckResult] = []
    unreachable: str | None = None
    for name, check in plan(run, model, stream):
        if unreachable is not None:
            result = CheckResult(name, "skip", "not tried: the daemon is unreachable")
        elif name in _NEEDS_MODEL and run.model is None:
            result = CheckResult(name, "skip", "not tried: no model (see the models check)")
        else:
            try:
                result = run.run(name, check)
            except Unreachable as exc:
                unreachable = str(exc)
                result = CheckResult(name, "FAIL", "unreachable")
        results.append(result)
        show(result)
    return results, unreachable


@app.command()
def smoke(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            "--base-url",
            help="The daemon's base URL [default: the configured listen address]",
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="A client key or the master key "
            "[default: APP_AUTH__MASTER_KEY from the environment or env file]",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="The model to call [default: the first the key may use]"),
    ] = None,
    stream: Annotated[
        bool,
        typer.Option("--stream", help="Also stream a Messages, a Responses and a Gemini call"),
    ] = False,
    config: ConfigOption = None,
    env_file: EnvFileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds each request may take")
    ] = 30.0,
) -> None:
    """Check a running deployment end to end: health, ready, models, then one call on each
    client API (exit 0 all passed, 1 a check failed, 2 unreachable)."""
    import httpx

    address = locate(url, key, config, env_file)
    problem = _bad_url(address.url)
    if problem:
        print_error(problem)
        raise typer.Exit(EXIT_UNREACHABLE)
    show: Callable[[CheckResult], None] = (
        (lambda _: None) if as_json else (lambda r: _print(line(r)))
    )
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        run = SmokeRun(client, address.url, address.key)
        results, unreachable = _execute(run, model, stream, show)
    passed = sum(r.outcome == "ok" for r in results)
    if as_json:
        report: dict[str, Any] = {
            "url": address.url,
            "model": run.model,
            "status": "unreachable"
            if unreachable
            else ("ok" if passed == len(results) else "failed"),
            "passed": passed,
            "total": len(results),
            "checks": [
                {
                    "name": r.name,
                    "outcome": r.outcome,
                    "detail": r.detail,
                    "latency_ms": r.latency_ms,
                }
                for r in results
            ],
        }
        if unreachable:
            report["error"] = unreachable
        _print(msgspec.json.format(msgspec.json.encode(report)).decode())
    else:
        using = f" with model {run.model!r}" if run.model else ""
        _print(f"\n{passed} of {len(results)} checks passed at {address.url}{using}")
    if unreachable:
        print_error(unreachable)
        raise typer.Exit(EXIT_UNREACHABLE)
    raise typer.Exit(0 if passed == len(results) else EXIT_FAILED)


def _bad_url(url: str) -> str | None:
    """Why ``url`` cannot be the daemon's address, or ``None`` when it can."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        return f"cannot use the address {url!r}: {exc}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"cannot use the address {url!r}: give http://HOST:PORT or https://HOST"
    return None


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
