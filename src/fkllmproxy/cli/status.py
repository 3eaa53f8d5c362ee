"""``fkllm status``: one screen on a running daemon (exit 0 healthy, 1 degraded, 2 unreachable)."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import typer

from fkllmproxy.cli.app import app
from fkllmproxy.cli.locate import DaemonAddress, Unreachable, fetch, locate
from fkllmproxy.cli.options import ConfigOption, EnvFileOption

if TYPE_CHECKING:
    from rich.console import Console, Group

__all__ = ["EXIT_CODES", "gather", "status"]

EXIT_CODES = {"healthy": 0, "degraded": 1, "unhealthy": 1, "unreachable": 2}

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="The daemon's base URL [default: the configured listen address]"),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key", help="Master key [default: APP_AUTH__MASTER_KEY from the environment or env file]"
    ),
]


def _json(response: Any) -> dict[str, Any] | None:
    try:
        data = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None
    return data if isinstance(data, dict) else None


def gather(address: DaemonAddress) -> dict[str, Any]:
    """Health and metrics of the daemon at ``address`` as one report (never raises)."""
    report: dict[str, Any] = {"url": address.url, "notes": []}
    try:
        health_response = fetch(address, "/health")
    except Unreachable as exc:
        return {**report, "status": "unreachable", "error": str(exc)}
    health = _json(health_response)
    if health is None or "status" not in health or "version" not in health:
        return {
            **report,
            "status": "unreachable",
            "error": f"the server at {address.url} is not fkllmproxy "
            f"(GET /health answered {health_response.status_code})",
        }
    report.update(
        status=health["status"],
        version=health.get("version"),
        uptime=health.get("uptime"),
        providers=health.get("providers"),
        models=health.get("models"),
    )
    if health.get("providers") is None:
        report["notes"].append("providers' details need the master key (--key)")
    try:
        metrics_response = fetch(address, "/metrics")
    except Unreachable as exc:
        report["notes"].append(f"metrics unavailable: {exc}")
        return report
    if metrics_response.status_code == 200:
        report["metrics"] = _json(metrics_response)
    elif metrics_response.status_code == 401:
        report["notes"].append("metrics need the master key (--key)")
    elif metrics_response.status_code == 404:
        report["notes"].append("metrics are turned off on this daemon")
    else:
        report["notes"].append(f"metrics unavailable (HTTP {metrics_response.status_code})")
    return report


def render(report: dict[str, Any], *, live: bool = False) -> Group:
    """The status screen; ``live`` (``--watch``) also shows why the daemon is unreachable."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    from fkllmproxy.cli.render import STATUS_STYLES, duration, provider_table, summary_grid

    state = report["status"]
    headline = Text.assemble(
        ("● ", STATUS_STYLES.get(state, "bold")),
        (state, STATUS_STYLES.get(state, "bold")),
    )
    if state == "unreachable":
        headline.append(f"   {report['url']}")
        panel = Panel(headline, title="fkllmproxy", title_align="left", expand=False)
        if not live:  # the reason goes to stderr, once
            return Group(panel)
        return Group(panel, Text(report.get("error", ""), style="red"))
    headline.append(f"   v{report.get('version')}   up {duration(report.get('uptime'))}")
    headline.append(f"   {report['url']}")
    parts: list[Any] = [Panel(headline, title="fkllmproxy", title_align="left", expand=False)]
    metrics = report.get("metrics")
    if metrics:
        parts.append(summary_grid(metrics))
    if metrics or report.get("providers"):
        parts.append(Text(""))
        parts.append(provider_table(metrics, report.get("providers")))
    for note in report["notes"]:
        parts.append(Text(f"note: {note}", style="dim"))
    return Group(*parts)


@app.command()
def status(
    url: UrlOption = None,
    key: KeyOption = None,
    config: ConfigOption = None,
    env_file: EnvFileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.2, help="Seconds between refreshes with --watch")
    ] = 2.0,
) -> None:
    """Health, version, uptime, providers and circuits, totals and latency of a running
    daemon (exit 0 healthy, 1 degraded, 2 unreachable)."""
    from rich.console import Console

    address = locate(url, key, config, env_file)
    console = Console()
    if watch and not as_json:
        report = _watch(address, console, interval)
    else:
        report = gather(address)
        if as_json:
            sys.stdout.write(msgspec.json.format(msgspec.json.encode(report)).decode() + "\n")
        else:
            console.print(render(report))
    if report["status"] == "unreachable":
        sys.stderr.write(f"fkllm: {report.get('error')}\n")
    raise typer.Exit(EXIT_CODES.get(report["status"], 1))


class _Interrupt:
    """Ctrl-C noted as a flag that the refresh loop reads between rounds.

    Letting SIGINT raise ``KeyboardInterrupt`` wherever it lands is not enough for a
    loop: raised inside a finalizer (a response or socket collected during a refresh)
    Python prints "Exception ignored" and carries on, and the screen kept refreshing
    until it was killed. A flag set by the handler cannot be swallowed.
    """

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: object) -> None:
        self.requested = True

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, waking early (within 0.05 s) once Ctrl-C was pressed."""
        deadline = time.monotonic() + seconds
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))


def _watch(
    address: DaemonAddress,
    console: Console,
    interval: float,
    gather_report: Callable[[DaemonAddress], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Redraw in place on a terminal; elsewhere (a pipe, a log) print one screen per round.

    Runs until Ctrl-C (SIGINT) and returns the last report.
    """
    from rich.live import Live

    refresh = gather_report or gather
    interrupt = _Interrupt()
    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        report = refresh(address)
        if not console.is_terminal:
            while not interrupt.requested:
                console.print(render(report, live=True))
                console.print()
                console.file.flush()
                interrupt.sleep(interval)
                if not interrupt.requested:
                    report = refresh(address)
            return report
        with Live(render(report, live=True), console=console, auto_refresh=False) as screen:
            while not interrupt.requested:
                interrupt.sleep(interval)
                if not interrupt.requested:
                    report = refresh(address)
                    screen.update(render(report, live=True), refresh=True)
        return report
    finally:
        signal.signal(signal.SIGINT, previous)
