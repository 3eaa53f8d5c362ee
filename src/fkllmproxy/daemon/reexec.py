"""``fkllm serve`` hands over to a lean process: the same program, re-executed as the daemon.

The command line is Typer, Click and Rich, and running a Typer command brings pydantic;
none of it serves a request, yet once imported it stays resident for the daemon's life
(about 9 MiB, an eighth of the idle process). So ``serve`` validates the configuration
with the full CLI (every error reported the usual way, exit 78), then replaces itself
with the same program and arguments plus ``FKLLM_SERVE_SPEC``, which the entry point
reads before it imports any of the CLI. ``exec`` keeps the PID, so systemd's
``Type=notify`` and the unit's signals are unaffected; the environment handed over is
the one the command started with.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from fkllmproxy.daemon.options import OptionsError, ServeOptions

__all__ = ["SPEC_ENV", "allow", "reexec_daemon", "serve_from_spec"]

SPEC_ENV = "FKLLM_SERVE_SPEC"
_allowed = False  # only the program's own entry point may replace the process


def allow() -> None:
    """Called by the entry point: this process is the ``fkllm`` program itself."""
    global _allowed
    _allowed = True


def reexec_daemon(options: ServeOptions) -> None:
    """Replace this process with the daemon; returns only when that is not possible."""
    argv = getattr(sys, "orig_argv", None)
    if not _allowed or not argv or not sys.executable:
        return
    environ = {**options.base_environ, SPEC_ENV: options.to_json()}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], environ)
    except OSError:
        return  # the interpreter cannot be run again: serve from this process


def serve_from_spec(spec: str) -> NoReturn:
    """The daemon, as ``fkllm serve`` asked for it; exits with the daemon's status."""
    from fkllmproxy.daemon.messages import EXIT_CONFIG, print_error, print_problems
    from fkllmproxy.daemon.run import StartupError, exit_now, serve
    from fkllmproxy.errors import ConfigError

    try:
        options = ServeOptions.from_json(spec)
    except OptionsError:
        print_error(f"{SPEC_ENV} is not what 'fkllm serve' sets; unset it and run 'fkllm serve'")
        exit_now(2)
    try:
        code = serve(options, options.load())
    except ConfigError as exc:
        print_problems(exc.problems, f"{exc.message}; not starting:")
        exit_now(EXIT_CONFIG)
    except StartupError as exc:
        print_error(str(exc))
        exit_now(1)
    exit_now(code)
