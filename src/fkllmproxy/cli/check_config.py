"""``fkllm check-config``: validate and print the effective configuration, secrets redacted."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import msgspec
import tomli_w
import typer

from fkllmproxy.cli.app import app, print_problems
from fkllmproxy.cli.options import ConfigOption, EnvFileOption
from fkllmproxy.config import LoadedConfig, load_config, redacted
from fkllmproxy.errors import ConfigError


def _without_none(value: Any) -> Any:
    """TOML has no null: drop unset keys rather than invent values."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def describe(loaded: LoadedConfig) -> str:
    sources = [f"config file: {loaded.config_path or '(none; built-in defaults)'}"]
    sources.append(f"env file: {loaded.env_file or '(none)'}")
    if loaded.auto_providers:
        sources.append("providers: enabled from credential variables")
    return "; ".join(sources)


@app.command("check-config")
def check_config(
    config: ConfigOption = None,
    env_file: EnvFileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of TOML")] = False,
) -> None:
    """Validate the configuration and print it with secrets redacted (exit 0 valid, 1 invalid)."""
    try:
        loaded = load_config(config_path=config, env_file=env_file)
    except ConfigError as exc:
        if as_json:
            sys.stdout.write(
                msgspec.json.encode({"valid": False, "problems": exc.problems}).decode() + "\n"
            )
        print_problems(exc.problems, f"{exc.message}:")
        raise typer.Exit(1) from None
    data = redacted(loaded.config)
    if as_json:
        sys.stdout.write(
            msgspec.json.format(msgspec.json.encode({"valid": True, "config": data})).decode()
            + "\n"
        )
        return
    sys.stdout.write(f"# configuration is valid ({describe(loaded)})\n")
    sys.stdout.write(tomli_w.dumps(_without_none(data)))
