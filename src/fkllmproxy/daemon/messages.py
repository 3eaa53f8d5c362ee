"""How every fkllm process reports a failure on stderr, and the exit code for a bad config.

It lives with the daemon, free of Typer, because the re-executed daemon
(``daemon/reexec.py``) must report exactly as the command line does and may not import
the CLI (the layering check forbids it).
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
