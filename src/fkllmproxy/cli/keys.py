"""``fkllm keys create|list|revoke``: client keys in the local key store.

The key is printed once, at creation, on stdout; only its SHA-256 is stored. The
daemon picks changes up at its next start or reload (``systemctl reload fkllmproxy``).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from fkllmproxy.auth.store import KeyStore, StoredKey, store_path
from fkllmproxy.cli.app import app, fail
from fkllmproxy.cli.options import ConfigOption, EnvFileOption
from fkllmproxy.config import load_config
from fkllmproxy.config.loader import unpriced_models
from fkllmproxy.config.schema import KeyRateLimit, StateConfig
from fkllmproxy.errors import ConfigError
from fkllmproxy.observability.usage import LedgerError, ledger_path
from fkllmproxy.state.budget_spend import period_spend

__all__ = ["keys_app"]

keys_app = typer.Typer(
    name="keys",
    help="Manage client keys in the local key store (merged with [[auth.keys]]).",
    no_args_is_help=True,
)
app.add_typer(keys_app)

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where keys.sqlite3 lives [default: [state] directory of the config, "
        "env APP_STATE__DIRECTORY, else /var/lib/fkllmproxy]",
    ),
]


def _store(state_dir: Path | None, config: str | None, env_file: str | None) -> KeyStore:
    """The store under ``--state-dir``, else the configured state directory."""
    if state_dir is not None:
        return KeyStore(store_path(state_dir))
    try:
        directory = load_config(config_path=config, env_file=env_file).config.state.directory
    except ConfigError:
        # A config that does not validate (no providers yet, say) still names a place.
        directory = os.environ.get("APP_STATE__DIRECTORY") or StateConfig().directory
    return KeyStore(store_path(directory))


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Shown in logs and metrics, never the key")],
    models: Annotated[
        str, typer.Option("--models", help="Comma-separated models the key may use [all]")
    ] = "",
    capacity: Annotated[
        int | None, typer.Option("--capacity", min=1, help="This key's own bucket size")
    ] = None,
    refill: Annotated[
        float | None,
        typer.Option("--refill-per-second", min=0.000001, help="This key's own refill rate"),
    ] = None,
    budget_usd: Annotated[
        float | None,
        typer.Option("--budget-usd", min=0.000001, help="Spend allowed per period, USD [none]"),
    ] = None,
    budget_period: Annotated[
        str, typer.Option("--budget-period", help="day, week (from Monday) or month, in UTC")
    ] = "month",
    tokens_per_minute: Annotated[
        int | None,
        typer.Option("--tokens-per-minute", min=1, help="Prompt + completion tokens a minute"),
    ] = None,
    state_dir: StateDirOption = None,
    config: ConfigOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Create a key and print it once (only its SHA-256 is kept)."""
    if (capacity is None) != (refill is None):
        fail("give both --capacity and --refill-per-second, or neither", 1)
    limit = (
        KeyRateLimit(capacity=capacity, refill_per_second=refill)
        if capacity is not None and refill is not None
        else None
    )
    allowed = [m.strip() for m in models.split(",") if m.strip()]
    store = _store(state_dir, config, env_file)
    if budget_usd is not None:
        _check_prices(allowed, config, env_file)
    try:
        key = store.create(
            name,
            allowed,
            limit,
            budget_usd=budget_usd,
            budget_period=budget_period,
            tokens_per_minute=tokens_per_minute,
        )
    except ConfigError as exc:
        fail(f"cannot create the key: {'; '.join(exc.problems)}", 1)
    sys.stdout.write(key + "\n")
    sys.stdout.flush()
    sys.stderr.write(
        f"fkllm: key {name!r} stored in {store.path}; it is shown only now. "
        "Apply with 'systemctl reload fkllmproxy'.\n"
    )


@keys_app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    state_dir: StateDirOption = None,
    config: ConfigOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """List stored keys: name, allowed models, own limit, creation time (never the key)."""
    store = _store(state_dir, config, env_file)
    try:
        rows = store.list()
    except ConfigError as exc:
        fail(f"cannot read the key store: {'; '.join(exc.problems)}", 1)
    spend = _period_spend(rows, state_dir, config, env_file)
    if as_json:
        data = [
            {
                "name": k.name,
                "key_sha256": k.key_sha256,
                "models": k.models,
                "rate_limit": (
                    {"capacity": k.capacity, "refill_per_second": k.refill_per_second}
                    if k.capacity
                    else None
                ),
                "created_at": _when(k.created_at),
                "budget_usd": k.budget_usd,
                "budget_period": k.budget_period,
                "tokens_per_minute": k.tokens_per_minute,
                "spent_usd": round(spend.get(k.name, 0.0), 6) if k.budget_usd else None,
                "left_usd": (
                    round(max(0.0, k.budget_usd - spend.get(k.name, 0.0)), 6)
                    if k.budget_usd
                    else None
                ),
            }
            for k in rows
        ]
        sys.stdout.write(msgspec.json.encode(data).decode() + "\n")
        return
    if not rows:
        sys.stdout.write(f"no keys in {store.path}\n")
        return
    for k in rows:
        limit = f"{k.capacity} burst, {k.refill_per_second}/s" if k.capacity else "default"
        budget = "budget: none"
        if k.budget_usd is not None:
            spent = spend.get(k.name, 0.0)
            budget = (
                f"budget: ${k.budget_usd:.2f}/{k.budget_period}, spent ${spent:.6f}, "
                f"left ${max(0.0, k.budget_usd - spent):.6f}"
            )
        tpm = f"\ttokens/min: {k.tokens_per_minute}" if k.tokens_per_minute else ""
        sys.stdout.write(
            f"{k.name}\tmodels: {', '.join(k.models) or 'all'}\tlimit: {limit}\t{budget}{tpm}\t"
            f"created {_when(k.created_at)}\tsha256 {k.key_sha256[:12]}...\n"
        )


@keys_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The key's name")],
    state_dir: StateDirOption = None,
    config: ConfigOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Delete a stored key; it stops working at the daemon's next reload."""
    store = _store(state_dir, config, env_file)
    try:
        removed = store.revoke(name)
    except ConfigError as exc:
        fail(f"cannot revoke the key: {'; '.join(exc.problems)}", 1)
    if not removed:
        fail(f"no key named {name!r} in {store.path}", 1)
    sys.stderr.write(f"fkllm: key {name!r} revoked; apply with 'systemctl reload fkllmproxy'.\n")


def _check_prices(models: list[str], config: str | None, env_file: str | None) -> None:
    """Refuse a budget over models without a price, when the config can be read."""
    try:
        loaded = load_config(config_path=config, env_file=env_file).config
    except ConfigError:
        return
    missing = unpriced_models(loaded, models)
    if missing:
        fail(
            "cannot create the key: a budgeted key may use models without a price: "
            f"add [[pricing]] for {', '.join(repr(m) for m in missing)}",
            1,
        )


def _period_spend(
    rows: list[StoredKey], state_dir: Path | None, config: str | None, env_file: str | None
) -> dict[str, float]:
    """Each budgeted key's spend this period, from the usage ledger's daily rollups."""
    periods = {k.name: k.budget_period for k in rows if k.budget_usd is not None}
    if not periods:
        return {}
    try:
        loaded = load_config(config_path=config, env_file=env_file).config
        path = ledger_path(loaded)
    except ConfigError:
        directory = state_dir or os.environ.get("APP_STATE__DIRECTORY") or StateConfig().directory
        path = Path(directory) / "usage.sqlite3"
    try:
        return period_spend(path, periods, time.time())
    except LedgerError:
        return {}


def _when(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )
