"""How every fkllm process reports a failure on stderr, and the exit code for a bad config.

Kept free of Typer so that the re-executed daemon (``daemon/reexec.py``) reports exactly
as the command line does.
"""

from __future__ import annotations

import sys

__all__ = ["EXIT_CONFIG", "print_error", "print_problems"]

EXIT_CONFIG = 78  # EX_CONFIG: systemd's RestartPreventExitStatus stops a restart loop


def print_error(message: str) -> None:
    """``message`` as the one line of an error."""
    sys.stderr.write(f"fkllm: {message}\n")


def print_problems(problems: list[str], heading: str) -> None:
    sys.stderr.write(f"fkllm: {heading}\n")
    for problem in problems:
        sys.stderr.write(f"  - {problem}\n")
