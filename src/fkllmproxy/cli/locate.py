"""Finding the running daemon (and its ledger) from the same layers ``serve`` reads.

``status``, ``metrics`` and ``usage`` run as an operator on the same host: they read
the config file, the env file and ``APP_*`` variables like ``serve`` does, to learn the
listen address, the master key and the ledger's path. The full config often does not
validate for them (the env file holding a provider's key is readable by root only), so
when it does not, these few settings are read from the layers directly instead.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fkllmproxy.config import DEFAULT_CONFIG_PATH, load_config, resolve_environ
from fkllmproxy.errors import ConfigError

if TYPE_CHECKING:
    import httpx

__all__ = ["DaemonAddress", "Unreachable", "fetch", "locate", "reason", "send"]

_DEFAULT_HOST = "127.0.0.1"
_DEFAULT_PORT = 4000


class Unreachable(Exception):
    """Raised when nothing answers at the daemon's address (or not as fkllmproxy would)."""


@dataclass(frozen=True)
class DaemonAddress:
    """Where the daemon listens, the key to show it, and where its ledger is."""

    url: str
    key: str | None
    usage_path: Path


def _client_host(host: str) -> str:
    """The address to connect to for a listen address (``0.0.0.0`` means loopback)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def _raw_settings(
    config: str | None, env_file: str | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The TOML file's data and the environment, unvalidated (best effort)."""
    try:
        environ, _ = resolve_environ(env_file)
    except (ConfigError, OSError):
        environ = dict(os.environ)
    path = Path(config or environ.get("FKLLM_CONFIG") or DEFAULT_CONFIG_PATH)
    data: dict[str, Any] = {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        data = {}
    return data, environ


def _setting(
    data: dict[str, Any], environ: dict[str, str], section: str, key: str, default: Any
) -> Any:
    name = f"APP_{section.upper()}__{key.upper()}"
    if environ.get(name):
        return environ[name]
    value = data.get(section, {}).get(key) if isinstance(data.get(section), dict) else None
    return default if value is None else value


def locate(
    url: str | None = None,
    key: str | None = None,
    config: str | None = None,
    env_file: str | None = None,
) -> DaemonAddress:
    """The daemon's address: ``url`` if given, else the configured listen address."""
    try:
        loaded = load_config(config_path=config, env_file=env_file)
    except ConfigError:
        data, environ = _raw_settings(config, env_file)
        host = str(_setting(data, environ, "server", "host", _DEFAULT_HOST))
        try:
            port = int(_setting(data, environ, "server", "port", _DEFAULT_PORT))
        except (TypeError, ValueError):
            port = _DEFAULT_PORT
        master = _setting(data, environ, "auth", "master_key", None)
        usage = _setting(data, environ, "usage", "path", None)
        directory = _setting(data, environ, "state", "directory", "/var/lib/fkllmproxy")
        usage_path = Path(usage) if usage else Path(directory) / "usage.sqlite3"
    else:
        from fkllmproxy.observability.usage import ledger_path

        settings = loaded.config
        host, port = settings.server.host, settings.server.port
        master = settings.auth.master_key
        usage_path = ledger_path(settings)
    base = url.rstrip("/") if url else f"http://{_client_host(host)}:{port}"
    if "://" not in base:
        base = "http://" + base
    return DaemonAddress(
        url=base, key=key or (str(master) if master else None), usage_path=usage_path
    )


def reason(error: httpx.HTTPError) -> str:
    """Why an exchange failed, in a few words (\"connection refused\")."""
    import httpx

    if isinstance(error, httpx.ConnectError):
        text = str(error).lower()
        if "refused" in text:
            return "connection refused"
        return "cannot connect: " + (str(error) or type(error).__name__)
    if isinstance(error, httpx.TimeoutException):
        return "no answer in time"
    return str(error) or type(error).__name__


def fetch(address: DaemonAddress, path: str, timeout: float = 5.0) -> httpx.Response:
    """GET ``path`` from the daemon, with the master key when there is one."""
    return send(address, "GET", path, timeout=timeout)


def send(
    address: DaemonAddress,
    method: str,
    path: str,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> httpx.Response:
    """``method path`` to the daemon with the master key when there is one;
    ``Unreachable`` when nothing answers."""
    import httpx  # here, not at import: every ``fkllm`` command would pay for it

    sent = {"Authorization": f"Bearer {address.key}"} if address.key else {}
    sent.update(headers or {})
    try:
        return httpx.request(
            method,
            address.url + path,
            content=content,
            headers=sent,
            timeout=timeout,
            trust_env=False,
        )
    except httpx.HTTPError as exc:
        raise Unreachable(f"cannot reach fkllmproxy at {address.url} ({reason(exc)})") from None
    except (httpx.InvalidURL, ValueError) as exc:  # a malformed --url
        raise Unreachable(f"cannot use the address {address.url!r}: {exc}") from None
