"""Reading ``KEY=value`` env files, the format of systemd's ``EnvironmentFile``.

Accepted: blank lines, ``#`` comments, an optional ``export`` prefix, values in single
or double quotes (double quotes understand ``\\n``, ``\\"`` and ``\\\\``), and a trailing
`` # comment`` after an unquoted value. Anything else is reported with its line number,
never its content (a broken line may hold a secret).
"""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

from fkllmproxy.errors import ConfigError

__all__ = ["parse_env_text", "read_env_file"]

_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "$": "$"}


def _unquote(raw: str) -> str | None:
    """The value of ``raw`` with quotes removed; ``None`` if a quote is left open."""
    if not raw:
        return ""
    quote = raw[0]
    if quote not in "'\"":
        value = raw.split(" #", 1)[0]
        return value.strip()
    end = raw.find(quote, 1)
    while quote == '"' and end > 0 and raw[end - 1] == "\\":
        end = raw.find(quote, end + 1)
    if end < 0:
        return None
    rest = raw[end + 1 :].strip()
    if rest and not rest.startswith("#"):
        return None
    body = raw[1:end]
    if quote == "'":
        return body
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)


def parse_env_text(text: str, *, origin: str = "env file") -> dict[str, str]:
    """Parse env-file text into a dict, raising ``ConfigError`` listing every bad line."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(stripped)
        value = _unquote(match.group(2).strip()) if match else None
        if match is None or value is None:
            problems.append(
                f"{origin} line {number}: expected KEY=value (letters, digits and _ in the "
                "name; close any quote you open)"
            )
            continue
        values[match.group(1)] = value
    if problems:
        raise ConfigError(problems)
    return values


def _whoami() -> str:
    uid = os.geteuid()
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def read_env_file(path: str | Path) -> dict[str, str]:
    """Read and parse the env file at ``path``; unreadable files raise ``ConfigError``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"env file {path}: no such file"]) from None
    except PermissionError:
        sudo = "" if os.geteuid() == 0 else ", or run this command with sudo"
        raise ConfigError(
            [
                f"env file {path}: permission denied for {_whoami()}; it must be readable by "
                "the user the proxy runs as (the systemd unit's user is fkllmproxy: "
                f"sudo chown fkllmproxy: {path} && sudo chmod 600 {path}){sudo}"
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"env file {path}: cannot be read ({reason})"]) from None
    return parse_env_text(text, origin=f"env file {path}")
