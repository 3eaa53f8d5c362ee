"""The ``fkllm`` Typer application and its error discipline.

Errors go to stderr as one plain sentence (``fkllm: ...``), never a traceback; each
command module registers itself on ``app``.
"""

from __future__ import annotations

from typing import NoReturn

import typer

from fkllmproxy.daemon.messages import EXIT_CONFIG, print_error, print_problems

__all__ = ["EXIT_CONFIG", "app", "fail", "print_problems"]


app = typer.Typer(
    name="fkllm",
    help="fkllmproxy: a self-hosted LLM gateway (OpenAI and Anthropic APIs, any provider).",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` to stderr as the one line of an error and exit with ``code``."""
    print_error(message)
    raise typer.Exit(code)
