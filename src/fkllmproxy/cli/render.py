"""Rich building blocks shared by ``fkllm status`` and ``fkllm metrics``.

Everything here takes the daemon's own JSON (``/health``, ``/metrics``) and turns it
into renderables; nothing talks to the network.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

__all__ = [
    "STATUS_STYLES",
    "count",
    "duration",
    "milliseconds",
    "percent",
    "provider_table",
    "summary_grid",
]

STATUS_STYLES = {
    "healthy": "bold green",
    "degraded": "bold yellow",
    "unhealthy": "bold red",
    "unreachable": "bold red",
}
CIRCUIT_STYLES = {"closed": "green", "half_open": "yellow", "open": "red"}


def count(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) else "-"


def percent(value: Any, digits: int = 2) -> str:
    return f"{value * 100:.{digits}f}%" if isinstance(value, int | float) else "-"


def milliseconds(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    total = int(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"


def summary_grid(metrics: dict[str, Any]) -> Table:
    """Requests, latency and tokens from ``/metrics``, as labelled lines."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rate = metrics.get("success_rate")
    rate_style = "green" if isinstance(rate, int | float) and rate >= 0.99 else "yellow"
    requests = Text.assemble(
        (count(metrics.get("total_requests")), "bold"),
        " total · ",
        (count(metrics.get("successful_requests")), "green"),
        " ok · ",
        (count(metrics.get("failed_requests")), "red" if metrics.get("failed_requests") else ""),
        " failed · ",
        (percent(rate), rate_style),
        " success",
    )
    grid.add_row("Requests", requests)
    grid.add_row(
        "",
        f"{count(metrics.get('rate_limited_requests'))} rate-limited · "
        f"{count(metrics.get('auth_failures'))} auth failures · "
        f"{count(metrics.get('in_flight_requests'))} in flight",
    )
    latency = metrics.get("latency_ms") or {}
    grid.add_row(
        "Latency",
        f"p50 {milliseconds(latency.get('p50'))} · p95 {milliseconds(latency.get('p95'))} · "
        f"p99 {milliseconds(latency.get('p99'))}   (last {count(latency.get('samples'))} requests)",
    )
    tokens = metrics.get("tokens") or {}
    grid.add_row(
        "Tokens",
        f"{count(tokens.get('prompt'))} prompt · {count(tokens.get('completion'))} completion",
    )
    return grid


def provider_table(
    metrics: dict[str, Any] | None, health_providers: list[dict[str, Any]] | None
) -> Table:
    """One row per provider: circuit, attempts, recent error rate, upstream latency."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("Provider")
    table.add_column("Type")
    table.add_column("Circuit")
    table.add_column("Attempts", justify="right")
    table.add_column("Errors (5m)", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p95", justify="right")
    from_metrics: dict[str, Any] = (metrics or {}).get("providers") or {}
    types = {p.get("name"): p for p in health_providers or []}
    for name in sorted(set(from_metrics) | {n for n in types if isinstance(n, str)}):
        row = from_metrics.get(name, {})
        circuit = str(row.get("circuit") or types.get(name, {}).get("circuit") or "-")
        latency = row.get("latency_ms") or {}
        recent = row.get("recent_error_rate")
        table.add_row(
            name,
            str(types.get(name, {}).get("type") or "-"),
            Text(circuit, style=CIRCUIT_STYLES.get(circuit, "")),
            count(row.get("attempts")),
            Text(
                percent(recent, 1),
                style="red" if isinstance(recent, int | float) and recent > 0.1 else "",
            ),
            milliseconds(latency.get("p50")),
            milliseconds(latency.get("p95")),
        )
    return table
