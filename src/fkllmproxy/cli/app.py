"""The ``fkllm`` Typer application and its error discipline.

Errors go to stderr as one plain sentence (``fkllm: ...``), never a traceback; each
command module registers itself on ``app``.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

__all__ = ["EXIT_CONFIG", "app", "fail"]

EXIT_CONFIG = 78  # EX_CONFIG: systemd's RestartPreventExitStatus stops a restart loop

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
    sys.stderr.write(f"fkllm: {message}\n")
    raise typer.Exit(code)


def print_problems(problems: list[str], heading: str) -> None:
    sys.stderr.write(f"fkllm: {heading}\n")
    for problem in problems:
        sys.stderr.write(f"  - {problem}\n")
