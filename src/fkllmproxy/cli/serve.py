"""``fkllm serve``: run the daemon in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer

from fkllmproxy.cli.app import EXIT_CONFIG, app, fail, print_problems
from fkllmproxy.cli.options import ConfigOption, EnvFileOption
from fkllmproxy.errors import ConfigError


@app.command()
def serve(
    config: ConfigOption = None,
    env_file: EnvFileOption = None,
    host: Annotated[str | None, typer.Option(help="Listen address [env: APP_SERVER__HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [env: APP_SERVER__PORT]")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes [env: APP_SERVER__WORKERS]")
    ] = None,
) -> None:
    """Run the proxy in the foreground, JSON logs on stdout (exit 78 on invalid config)."""
    from fkllmproxy.daemon.bootstrap import StartupError
    from fkllmproxy.daemon.options import ServeOptions
    from fkllmproxy.daemon.reexec import reexec_daemon
    from fkllmproxy.daemon.run import exit_now
    from fkllmproxy.daemon.run import serve as run_daemon

    overrides = {"server": {"host": host, "port": port, "workers": workers}}
    options = ServeOptions(config_path=config, env_file=env_file, overrides=overrides)
    try:
        loaded = options.load()
    except ConfigError as exc:
        print_problems(exc.problems, f"{exc.message}; not starting:")
        raise typer.Exit(EXIT_CONFIG) from None
    reexec_daemon(options)  # the daemon without the CLI in memory; returns if it cannot
    try:
        code = run_daemon(options, loaded)
    except ConfigError as exc:  # a provider that cannot be built (e.g. its credentials file)
        print_problems(exc.problems, f"{exc.message}; not starting:")
        raise typer.Exit(EXIT_CONFIG) from None
    except StartupError as exc:
        fail(str(exc), 1)
    exit_now(code)
