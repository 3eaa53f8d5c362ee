"""The bodies of the console's pages, from plain data (no I/O here, so each is testable).

Every form posts to the daemon and works without JavaScript; ``static/console.js`` only
adds the live numbers and charts, the copy button and confirmation prompts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fkllmproxy.observability.usage import UsageLine
from fkllmproxy.server.ui.html import Html, esc, join, table

__all__ = ["PERIODS", "config_body", "keys_body", "overview_body", "providers_body", "usage_body"]

# Calendar days (UTC), as the ledger's daily rollups count them; today included.
PERIODS = (("1d", "Today (UTC)"), ("7d", "Last 7 days"), ("30d", "Last 30 days"),
           ("90d", "Last 90 days"), ("all", "All time"))  # fmt: skip
GROUPS = (("key", "Key"), ("model", "Model"), ("provider", "Provider"), ("day", "Day (UTC)"))
CHARTS = (
    ("rps", "Requests per second"),
    ("error_rate", "Error rate"),
    ("latency", "Latency percentiles (ms)"),
    ("tokens", "Tokens per second"),
)


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _csrf_field(csrf: str) -> Html:
    return Html(f'<input type="hidden" name="csrf" value="{esc(csrf)}">')


def _stat(ident: str, label: str, value: str) -> str:
    return (
        f'<div class="stat"><dt>{esc(label)}</dt>'
        f'<dd id="{esc(ident)}" data-field="{esc(ident)}">{esc(value)}</dd></div>'
    )


def overview_body(data: Mapping[str, Any]) -> Html:
    """Status, the headline numbers and four live charts (filled in by the script)."""
    latency = data.get("latency_ms") or {}
    stats = [
        _stat("status", "Status", str(data.get("status", "-"))),
        _stat("rps", "Requests per second", _num(data.get("rps"))),
        _stat("success_rate", "Success rate", percent(data.get("success_rate"))),
        _stat("p50", "Latency p50", ms(latency.get("p50"))),
        _stat("p95", "Latency p95", ms(latency.get("p95"))),
        _stat("p99", "Latency p99", ms(latency.get("p99"))),
        _stat("total_requests", "Requests since start", f"{data.get('total_requests', 0):,}"),
        _stat("tokens", "Tokens since start", f"{data.get('tokens', 0):,}"),
        _stat("cost_today", "Cost today (UTC)", _cost_today(data)),
    ]
    charts = "".join(
        f'<figure class="chart"><figcaption id="chart-{key}-title">{esc(title)}</figcaption>'
        f'<svg id="chart-{key}" role="img" aria-labelledby="chart-{key}-title" '
        f'viewBox="0 0 320 120"></svg></figure>'
        for key, title in CHARTS
    )
    return Html(
        f'<section aria-labelledby="now"><h2 id="now">Now</h2>'
        f'<dl class="stats">{"".join(stats)}</dl>'
        f'<p class="hint" id="updated" role="status">{esc(data.get("updated_text", ""))}</p>'
        f'</section><section aria-labelledby="hour"><h2 id="hour">Last hour</h2>'
        f'<p class="hint">Sampled every 5 seconds while the console runs; totals over '
        f"every worker.</p>"
        f'<div class="charts">{charts}</div>'
        f'<noscript><p class="hint">The charts need JavaScript; the numbers above are '
        f"as of this page load.</p></noscript></section>"
    )


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _cost_today(data: Mapping[str, Any]) -> str:
    if not data.get("ledger"):
        return "ledger off"
    return money(data.get("cost_today"))


def providers_body(rows: Sequence[Mapping[str, Any]], csrf: str) -> Html:
    """One row per provider: circuit state, recent error rate, latency, Reset circuit."""
    body = []
    for row in rows:
        name = esc(row["name"])
        latency = row.get("latency_ms") or {}
        body.append(
            f'<tr data-provider="{name}"><th scope="row">{name}</th>'
            f"<td>{esc(row.get('type', ''))}</td>"
            f'<td data-field="circuit"><span class="circuit {esc(row["circuit"])}">'
            f"{esc(row['circuit'].replace('_', '-'))}</span></td>"
            f'<td data-field="failures">{esc(row.get("consecutive_failures", 0))}</td>'
            f'<td data-field="error_rate">{esc(percent(row.get("recent_error_rate")))}</td>'
            f'<td data-field="p50">{esc(ms(latency.get("p50")))}</td>'
            f'<td data-field="p95">{esc(ms(latency.get("p95")))}</td>'
            f'<td><form method="post" action="/ui/providers/reset">{_csrf_field(csrf)}'
            f'<input type="hidden" name="provider" value="{name}">'
            f'<button type="submit">Reset circuit</button></form></td></tr>'
        )
    if not body:
        body.append('<tr><td colspan="8" class="empty">No providers configured.</td></tr>')
    headers = (
        "Provider",
        "Type",
        "Circuit",
        "Consecutive failures",
        "Error rate (5 min)",
        "Latency p50",
        "Latency p95",
        "Action",
    )
    head = "".join(f'<th scope="col">{h}</th>' for h in headers)
    return Html(
        '<table id="providers"><caption>Providers and their circuits (updates every 5 s)'
        f"</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        '<p class="hint">Reset circuit closes a provider\'s circuit now instead of waiting '
        "out its cooldown (the same as <code>POST /admin/circuits/NAME/reset</code>).</p>"
    )


def keys_body(
    keys: Iterable[Mapping[str, Any]],
    csrf: str,
    models: Sequence[str],
    *,
    created: tuple[str, str] | None = None,
    ledger: bool = True,
) -> Html:
    """The create form, the new key (once), and every key with its spend and last use."""
    shown = ""
    if created is not None:
        name, secret = created
        shown = (
            '<section class="notice success" role="status" aria-labelledby="new-key-title">'
            f'<h2 id="new-key-title">New key {esc(name)!s}</h2>'
            "<p>Copy it now: it is shown only this once (only its SHA-256 is kept).</p>"
            f'<p class="secret"><code id="new-key">{esc(secret)}</code> '
            '<button type="button" class="copy" data-copy="new-key">Copy key</button></p>'
            "</section>"
        )
    model_hint = ", ".join(models) if models else "none configured"
    form = (
        '<section aria-labelledby="create-title"><h2 id="create-title">Create a key</h2>'
        f'<form method="post" action="/ui/keys" class="grid">{_csrf_field(csrf)}'
        '<label for="key-name">Name</label>'
        '<input id="key-name" name="name" required maxlength="128" '
        'autocomplete="off" aria-describedby="key-name-hint">'
        '<span class="hint" id="key-name-hint">Shown in logs, metrics and the ledger; '
        "letters, digits and . _ : / @ + -</span>"
        '<label for="key-models">Models</label>'
        '<input id="key-models" name="models" aria-describedby="key-models-hint">'
        f'<span class="hint" id="key-models-hint">Comma-separated; empty allows all. '
        f"Configured: {esc(model_hint)}</span>"
        '<label for="key-capacity">Burst (requests)</label>'
        '<input id="key-capacity" name="capacity" type="number" min="1" step="1" '
        'inputmode="numeric" aria-describedby="key-limit-hint">'
        '<label for="key-refill">Refill per second</label>'
        '<input id="key-refill" name="refill_per_second" type="number" min="0.000001" '
        'step="any" aria-describedby="key-limit-hint">'
        '<span class="hint" id="key-limit-hint">Its own rate limit: give both or neither '
        "(neither: the default limits).</span>"
        '<label for="key-tpm">Tokens per minute</label>'
        '<input id="key-tpm" name="tokens_per_minute" type="number" min="1" step="1" '
        'inputmode="numeric" aria-describedby="key-tpm-hint">'
        '<span class="hint" id="key-tpm-hint">Prompt and completion tokens it may use per '
        "minute (over it: 429 rate_limit_exceeded); empty: no token limit.</span>"
        '<label for="key-budget">Budget (USD)</label>'
        '<input id="key-budget" name="budget_usd" type="number" min="0.000001" step="any" '
        'aria-describedby="key-budget-hint">'
        '<label for="key-period">Budget period</label>'
        '<select id="key-period" name="budget_period" aria-describedby="key-budget-hint">'
        '<option value="month">month</option><option value="week">week</option>'
        '<option value="day">day</option></select>'
        '<span class="hint" id="key-budget-hint">Spend allowed per calendar period (UTC, '
        "weeks from Monday); empty: no budget. Its models need prices.</span>"
        '<button type="submit">Create key</button></form></section>'
    )
    rows = []
    for key in keys:
        if key["source"] == "store":
            action = Html(
                f'<form method="post" action="/ui/keys/revoke" class="revoke">'
                f'{_csrf_field(csrf)}<input type="hidden" name="name" value="{esc(key["name"])}">'
                '<button type="submit" class="danger">Revoke</button></form>'
            )
        else:
            action = Html('<span class="hint">in the config file</span>')
        rows.append(
            (
                key["name"],
                ", ".join(key["models"]) or "all",
                key["limit"],
                key.get("budget", "none"),
                f"{key['requests']:,}",
                money(key["spend"]),
                when(key["last_used"]),
                when(key["created"]) if key["created"] else "-",
                action,
            )
        )
    listing = table(
        "Client keys",
        (
            "Name",
            "Models",
            "Rate limit",
            "Budget",
            "Requests",
            "Spend (USD)",
            "Last used",
            "Created",
            "Action",
        ),
        rows,
        id="keys",
        empty="No client keys yet.",
    )
    note = (
        "Spend and last use come from the usage ledger ([usage] enabled, prices from [[pricing]])."
        if ledger
        else "The usage ledger is off ([usage] enabled = false): no spend or last use."
    )
    return Html(f'{shown}{form}<section aria-labelledby="list-title"><h2 id="list-title">'
                f'Keys</h2>{listing}<p class="hint">{esc(note)}</p></section>')  # fmt: skip


def _select(
    ident: str, label: str, name: str, options: Sequence[tuple[str, str]], chosen: str
) -> str:
    items = "".join(
        f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(t)}</option>'
        for v, t in options
    )
    return f'<label for="{ident}">{esc(label)}</label><select id="{ident}" name="{name}">{items}</select>'


def usage_body(lines: Sequence[UsageLine], by: str, period: str, *, ledger: bool) -> Html:
    """The grouping form, a bar chart of requests and cost, the table and a CSV link."""
    form = (
        '<form method="get" action="/ui/usage" class="inline">'
        + _select("usage-by", "Group by", "by", GROUPS, by)
        + _select("usage-period", "Period", "since", PERIODS, period)
        + '<button type="submit">Show</button>'
        f'<a class="button" href="/ui/usage.csv?by={esc(by)}&amp;since={esc(period)}" '
        "download>Download CSV</a></form>"
    )
    if not ledger:
        return Html(form + '<p class="notice">The usage ledger is off: set [usage] '
                    "enabled = true (APP_USAGE__ENABLED=true) to record requests.</p>")  # fmt: skip
    label = dict(GROUPS)[by]
    rows = [
        (
            line.group,
            f"{line.requests:,}",
            f"{line.failed:,}",
            f"{line.prompt_tokens:,}",
            f"{line.completion_tokens:,}",
            money(line.cost_usd),
            watt_hours(line.energy_wh),
            ms(line.avg_latency_ms),
        )
        for line in lines
    ]
    listing = table(
        f"Usage by {label.lower()}",
        (
            label,
            "Requests",
            "Failed",
            "Prompt tokens",
            "Completion tokens",
            "Cost",
            "Energy (estimate)",
            "Avg latency",
        ),
        rows,
        id="usage",
        empty="No requests in this period.",
    )
    note = (
        '<p class="hint">Energy is an estimate from each answer\'s tokens and a per-model '
        "coefficient (Wh per 1,000 tokens; [usage] and [[pricing]] energy_wh_per_1k_*), "
        "good to a factor of about ten: for comparing, not metering.</p>"
    )
    return Html(form + bar_chart(lines, label) + listing + note)


def watt_hours(value: float | None) -> str:
    """An energy estimate for a table cell: ``~12.3 Wh`` (``-`` when there is none)."""
    if value is None:
        return "-"
    if value >= 1000:
        return f"~{value / 1000:,.2f} kWh"
    return f"~{value:,.3g} Wh"


def bar_chart(lines: Sequence[UsageLine], label: str, limit: int = 30) -> Html:
    """Requests per group as a horizontal SVG bar chart, drawn here (no script needed)."""
    shown = sorted(lines, key=lambda x: x.requests, reverse=True)[:limit]
    if not shown:
        return Html("")
    top = max(line.requests for line in shown) or 1
    bar_h, gap, left, width = 18, 6, 190, 900
    height = len(shown) * (bar_h + gap) + gap
    bars = []
    for i, line in enumerate(shown):
        y = gap + i * (bar_h + gap)
        w = max(1, round((width - left - 90) * line.requests / top))
        name = line.group if len(line.group) <= 24 else line.group[:23] + "…"
        bars.append(
            f"<g><title>{esc(line.group)}: {line.requests:,} requests, {esc(money(line.cost_usd))}"
            f'</title><text x="{left - 6}" y="{y + 13}" text-anchor="end">{esc(name)}</text>'
            f'<rect x="{left}" y="{y}" width="{w}" height="{bar_h}" rx="2"></rect>'
            f'<text x="{left + w + 6}" y="{y + 13}">{line.requests:,}</text></g>'
        )
    return Html(
        f'<figure class="chart wide"><figcaption id="usage-chart-title">Requests by '
        f"{esc(label.lower())}</figcaption>"
        f'<svg role="img" aria-labelledby="usage-chart-title" class="bars" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        f"{''.join(bars)}</svg></figure>"
    )


def config_body(config_text: str, facts: Sequence[tuple[str, str]], csrf: str) -> Html:
    """The effective configuration (redacted) and the Reload form."""
    listing = join(Html(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>") for k, v in facts)
    return Html(
        f'<form method="post" action="/ui/config/reload" class="inline">{_csrf_field(csrf)}'
        '<button type="submit">Reload</button>'
        '<span class="hint">Re-reads the env file, the config file and the key store, as '
        "SIGHUP does; an invalid new configuration is refused and the old one kept.</span>"
        f'</form><dl class="facts">{listing}</dl>'
        '<section aria-labelledby="effective"><h2 id="effective">Effective configuration '
        f'(secrets redacted)</h2><pre class="config" tabindex="0">{esc(config_text)}</pre>'
        "</section>"
    )


def problems_notice(problems: Sequence[str]) -> Html:
    items = "".join(f"<li>{esc(p)}</li>" for p in problems)
    return Html(
        '<div class="notice error" role="alert"><p>Reload refused: the old configuration '
        f"is kept. The new one has these problems:</p><ul>{items}</ul></div>"
    )
