"""``fkllm metrics``: a running daemon's metrics as a table, JSON or Prometheus text."""

from __future__ import annotations

import sys
from typing import Annotated

import msgspec
import typer

from fkllmproxy.cli.app import app, fail
from fkllmproxy.cli.locate import Unreachable, fetch, locate
from fkllmproxy.cli.options import ConfigOption, EnvFileOption
from fkllmproxy.cli.status import KeyOption, UrlOption

EXIT_UNREACHABLE = 2


@app.command()
def metrics(
    url: UrlOption = None,
    key: KeyOption = None,
    config: ConfigOption = None,
    env_file: EnvFileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print /metrics as JSON")] = False,
    prometheus: Annotated[
        bool, typer.Option("--prometheus", help="Print the Prometheus exposition text")
    ] = False,
) -> None:
    """Print a running daemon's metrics: a table, --json, or --prometheus
    (exit 0, 2 unreachable, 1 when the daemon refuses)."""
    if as_json and prometheus:
        fail("choose one of --json and --prometheus", 2)
    address = locate(url, key, config, env_file)
    path = "/metrics/prometheus" if prometheus else "/metrics"
    try:
        response = fetch(address, path)
    except Unreachable as exc:
        fail(str(exc), EXIT_UNREACHABLE)
    if response.status_code == 401:
        fail("the daemon wants the master key for its metrics (--key or APP_AUTH__MASTER_KEY)")
    if response.status_code == 404:
        fail(f"no metrics at {address.url}{path} (turned off, or not fkllmproxy)")
    if response.status_code != 200:
        fail(f"{address.url}{path} answered HTTP {response.status_code}")
    if prometheus:
        sys.stdout.write(response.text)
        return
    try:
        data = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        fail(f"{address.url}{path} did not answer JSON (not fkllmproxy?)")
    if as_json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(data)).decode() + "\n")
        return
    from rich.console import Console, Group
    from rich.text import Text

    from fkllmproxy.cli.render import duration, provider_table, summary_grid

    heading = Text.assemble(
        ("fkllmproxy metrics", "bold"),
        f"   {address.url}   up {duration(data.get('uptime'))}",
    )
    Console().print(
        Group(heading, Text(""), summary_grid(data), Text(""), provider_table(data, None))
    )
