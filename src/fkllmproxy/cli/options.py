"""Options shared by several commands, so they read the same everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config file [env: FKLLM_CONFIG; default /etc/fkllmproxy/config.toml]",
    ),
]
EnvFileOption = Annotated[
    str | None,
    typer.Option(
        "--env-file", help="KEY=value env file [default /etc/fkllmproxy/env when readable]"
    ),
]
