"""``fkllm usage``: totals from the usage ledger by key, model, provider or day, or
(``--budgets``) each budget's spend this period and what is left."""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from fkllmproxy.cli.app import app, fail
from fkllmproxy.cli.locate import locate
from fkllmproxy.cli.options import ConfigOption, EnvFileOption
from fkllmproxy.observability.usage import GROUPINGS, LedgerError, summarize

__all__ = ["backup", "parse_since", "show_budgets", "usage"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")


def parse_since(text: str, now: float | None = None) -> float:
    """``24h``, ``7d``, ``30m``... ago, or an ISO date/time (UTC unless it says otherwise)."""
    match = _AGO.match(text.strip().lower())
    if match:
        return (time.time() if now is None else now) - float(match.group(1)) * _UNITS[
            match.group(2)
        ]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r} is neither a duration (30m, 24h, 7d, 2w) nor a date (2025-01-31)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


usage_app = typer.Typer(
    help="Summarise the usage ledger (requests, tokens, cost, latency), or back it up.",
    no_args_is_help=False,
)
app.add_typer(usage_app, name="usage")


@usage_app.callback(invoke_without_command=True)
def usage(
    ctx: typer.Context,
    config: ConfigOption = None,
    env_file: EnvFileOption = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only requests since: 30m, 24h, 7d, 2w, or a date (UTC)"),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Group by: key (default), model, provider or day (UTC)"),
    ] = None,
    budgets: Annotated[
        bool,
        typer.Option(
            "--budgets", help="Each budget (keys, OIDC groups): spent this period, what is left"
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Ledger file [default: usage.path, else <state.directory>/usage.sqlite3]"
        ),
    ] = None,
) -> None:
    """Summarise the usage ledger: requests, tokens, estimated cost and energy, latency per group."""
    if ctx.invoked_subcommand is not None:
        return
    if budgets:
        if since is not None or by is not None:
            fail("--budgets shows the current periods; it takes no --since or --by", 2)
        show_budgets(config, env_file, db, as_json)
        return
    by = by or "key"
    if by not in GROUPINGS:
        fail(f"--by {by!r} is not one of: {', '.join(GROUPINGS)}", 2)
    try:
        start = parse_since(since) if since else None
    except ValueError as exc:
        fail(str(exc), 2)
    path = Path(db) if db else locate(config=config, env_file=env_file).usage_path
    try:
        lines = summarize(path, by=by, since=start)
    except LedgerError as exc:
        fail(f"{exc} (is [usage] enabled? see --db)")
    if as_json:
        payload = {
            "ledger": str(path),
            "by": by,
            "since": start,
            "groups": [dataclasses.asdict(line) for line in lines],
            # Neither is a measurement: prices from [[pricing]], energy from tokens.
            "estimates": ["cost_usd", "energy_wh"],
        }
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(payload)).decode() + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    from fkllmproxy.cli.render import count, milliseconds

    table = Table(header_style="bold", box=None, pad_edge=False)
    for title in (
        by.capitalize(),
        "Requests",
        "Failed",
        "Prompt",
        "Completion",
        "Cost USD",
        "Est. Wh",
        "Avg latency",
    ):
        table.add_column(title, justify="left" if title == by.capitalize() else "right")
    for line in lines:
        table.add_row(
            line.group,
            count(line.requests),
            count(line.failed),
            count(line.prompt_tokens),
            count(line.completion_tokens),
            "-" if line.cost_usd is None else f"{line.cost_usd:.4f}",
            "-" if line.energy_wh is None else f"{line.energy_wh:,.3f}",
            milliseconds(line.avg_latency_ms),
        )
    console = Console()
    if not lines:
        console.print(f"No requests in the ledger {path}" + (" since then." if since else "."))
        return
    console.print(table)
    console.print(
        "Energy is an estimate from tokens and per-model coefficients (good to a factor of"
        " about ten), not a measurement.",
        style="dim",
    )


def show_budgets(config: str | None, env_file: str | None, db: str | None, as_json: bool) -> None:
    """Each configured budget with its spend this period by the ledger, and what is left."""
    from fkllmproxy.auth.store import store_keys
    from fkllmproxy.config import load_config
    from fkllmproxy.errors import ConfigError
    from fkllmproxy.observability.usage import ledger_path
    from fkllmproxy.state.budget_spend import configured_budgets, period_spend
    from fkllmproxy.state.budgets import period_bounds

    try:
        loaded = load_config(config_path=config, env_file=env_file).config
    except ConfigError as exc:
        fail(f"cannot read the budgets: {'; '.join(exc.problems)}")
    found = configured_budgets(loaded, [*loaded.auth.keys, *store_keys(loaded)])
    path = Path(db) if db else ledger_path(loaded)
    now = time.time()
    try:
        spent = period_spend(path, {name: b.period for name, b in found.items()}, now)
    except LedgerError as exc:
        fail(f"{exc} (is [usage] enabled? see --db)")
    rows = [
        {
            "name": name,
            "period": budget.period,
            "budget_usd": budget.usd,
            "spent_usd": round(spent[name], 6),
            "left_usd": round(max(0.0, budget.usd - spent[name]), 6),
            "renews": datetime.fromtimestamp(period_bounds(budget.period, now)[1], UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
        }
        for name, budget in sorted(found.items())
    ]
    if as_json:
        payload = {"ledger": str(path), "budgets": rows, "estimates": ["spent_usd", "left_usd"]}
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(payload)).decode() + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not rows:
        console.print(
            "No budgets: set budget_usd on [[auth.keys]] or [[auth.oidc.groups]], "
            "or fkllm keys create --budget-usd."
        )
        return
    table = Table(header_style="bold", box=None, pad_edge=False)
    for title in ("Budget", "Period", "Budget USD", "Spent USD", "Left USD", "Renews (UTC)"):
        table.add_column(title, justify="left" if title in ("Budget", "Period") else "right")
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["period"]),
            f"{row['budget_usd']:.4f}",
            f"{row['spent_usd']:.4f}",
            f"{row['left_usd']:.4f}",
            str(row["renews"]),
        )
    console.print(table)
    console.print(
        "Spend is the ledger's estimate from [[pricing]] over calendar periods (UTC); "
        "calls in flight are not in it.",
        style="dim",
    )


@usage_app.command("backup")
def backup(
    destination: Annotated[Path, typer.Argument(help="File (or directory) to write the copy to")],
    config: ConfigOption = None,
    env_file: EnvFileOption = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Ledger file [default: usage.path, else <state.directory>/usage.sqlite3]"
        ),
    ] = None,
) -> None:
    """Copy the live ledger consistently (SQLite's online backup) while the daemon writes."""
    from fkllmproxy.observability.ledger_backup import backup_ledger

    path = Path(db) if db else locate(config=config, env_file=env_file).usage_path
    try:
        copy = backup_ledger(path, destination)
    except LedgerError as exc:
        fail(f"{exc} (is [usage] enabled? see --db)")
    sys.stdout.write(f"copied {path} to {copy.path}: {copy.rows} requests, {copy.size} bytes\n")
