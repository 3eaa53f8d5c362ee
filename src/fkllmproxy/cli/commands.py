"""The ``fkllm`` Typer application with every command registered, and its runner."""

from __future__ import annotations

import sys

import typer

try:  # Typer >= 0.20 vendors its own copy of click
    import typer._click.exceptions as click_exceptions
except ImportError:  # pragma: no cover - older Typer
    import click.exceptions as click_exceptions  # type: ignore[no-redef]

import fkllmproxy.cli.mock_upstream  # registers the command
import fkllmproxy.providers  # noqa: F401 - registers the provider types configs are checked against
from fkllmproxy import __version__
from fkllmproxy.cli import (  # noqa: F401 - registers commands
    check_config,
    config,
    keys,
    metrics,
    rotate_key,
    serve,
    smoke,
    status,
    usage,
)
from fkllmproxy.cli.app import EXIT_CONFIG, app

__all__ = ["app", "run"]


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit"),
) -> None:
    """fkllmproxy: a self-hosted LLM gateway (OpenAI and Anthropic APIs, any provider)."""
    if version:
        sys.stdout.write(f"fkllmproxy {__version__}\n")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        _bare_run(ctx)


def _bare_run(ctx: typer.Context) -> None:
    """No command: validate the config first (the runbook's first check), then usage."""
    from fkllmproxy.config import load_config
    from fkllmproxy.errors import ConfigError

    try:
        loaded = load_config()
    except ConfigError as exc:
        sys.stderr.write(f"fkllm: {exc.message}:\n")
        for problem in exc.problems:
            sys.stderr.write(f"  - {problem}\n")
        sys.stderr.write("\n" + ctx.get_help() + "\n")
        raise typer.Exit(EXIT_CONFIG) from None
    from fkllmproxy.cli.check_config import describe

    sys.stdout.write(f"fkllm: configuration is valid ({describe(loaded)})\n")
    sys.stdout.write("Run 'fkllm serve' to start the proxy.\n\n" + ctx.get_help() + "\n")


def run() -> None:
    """Typer in non-standalone mode, so every error is one plain line."""
    try:
        code = app(standalone_mode=False)
    except click_exceptions.UsageError as exc:
        sys.stderr.write(f"fkllm: {exc.format_message()} (see --help)\n")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("fkllm: aborted\n")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
