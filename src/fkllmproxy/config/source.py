"""The config file as text for the operator's editor: secrets out, and back in on write.

``GET /admin/config/source`` shows the file as it is on disk, comments and layout kept,
with every secret written inline in it replaced by ``<redacted>``: provider and master
keys, secret-looking provider headers, the password of a ``url`` (Redis), and a
``key_sha256`` that is not a SHA-256 (most often the raw key pasted by mistake). A real
``key_sha256`` is shown: it is a one-way hash of a random key, it names which keys exist
and cannot be turned back into one.

The editor posts the whole text back with those ``<redacted>`` markers still in it; each
one means "keep the value the file has now". Which value that is follows from where the
marker sits (``providers[name=openai].api_key``), list items matched by their name, not
their position, so providers can be reordered or added around it.

Work is done on TOML string tokens, never by rewriting the document, so everything
else of the operator's text (comments, order, spacing) is kept byte for byte.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import msgspec

from fkllmproxy.config.redact import REDACTED, redact_url
from fkllmproxy.config.schema import SECRET_FIELDS, Config, to_builtins
from fkllmproxy.errors import ConfigError

__all__ = ["config_diff", "etag_of", "redact_source", "restore_secrets"]

# A TOML basic ("...") or literal ('...') one-line string.
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'')
_HEADER_SECRET = re.compile(r"(auth|key|token|secret|password|cookie)", re.IGNORECASE)
_SECRET_LINE = re.compile(
    r"((?:master_key|previous_master_key|api_key)\s*=\s*)(?:\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*')"
)
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_PLACEHOLDER = "__fkllm_redacted_{}__"
_PLACEHOLDER_RE = re.compile(r"__fkllm_redacted_(\d+)__")
_encode = msgspec.json.Encoder().encode


def etag_of(content: bytes) -> str:
    """A strong ETag for the file's bytes (a content hash: equal files, equal tags)."""
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _is_secret(path: tuple[str | int, ...], value: Any) -> bool:
    if not isinstance(value, str) or not value or not path:
        return False
    last = path[-1]
    if last in SECRET_FIELDS:
        return True
    if last == "key_sha256":
        return not _SHA256.fullmatch(value)
    return len(path) >= 2 and path[-2] == "headers" and bool(_HEADER_SECRET.search(str(last)))


def _walk(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, (*path, i))
    else:
        yield path, value


def _secrets(data: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The file's secret strings, and its URLs that carry a password."""
    plain: set[str] = set()
    urls: set[str] = set()
    for path, value in _walk(data):
        if _is_secret(path, value):
            plain.add(value)
        elif isinstance(value, str) and "://" in value and _password(value) is not None:
            urls.add(value)
    return plain, urls


def _password(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if "@" not in parts.netloc or ":" not in parts.netloc.rpartition("@")[0]:
        return None
    return parts.netloc.rpartition("@")[0].partition(":")[2]


def _token_value(token: str) -> str | None:
    if token.startswith("'"):
        return token[1:-1]
    try:
        value = tomllib.loads(f"x = {token}")["x"]
    except tomllib.TOMLDecodeError:
        return None
    return value if isinstance(value, str) else None


def redact_source(text: str) -> str:
    """``text`` with each secret string token replaced; everything else untouched.

    A file that is not valid TOML (edited by hand since the daemon read it) has no
    parsed secrets: every string after a secret key's name, and every URL with a
    password, is redacted instead.
    """
    try:
        plain, urls = _secrets(tomllib.loads(text))
    except tomllib.TOMLDecodeError:
        text = _SECRET_LINE.sub(lambda m: f'{m.group(1)}"{REDACTED}"', text)
        plain, urls = set(), set()
        for match in _STRING.finditer(text):
            value = _token_value(match.group(0))
            if value and _password(value) is not None:
                urls.add(value)

    def replace(match: re.Match[str]) -> str:
        value = _token_value(match.group(0))
        if value is None:
            return match.group(0)
        if value in plain:
            return f'"{REDACTED}"'
        if value in urls:
            return _encode(redact_url(value)).decode()
        return match.group(0)

    return _STRING.sub(replace, text)


def _current(current: Any, new: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path`` of the new data, found in the current data.

    List items are matched by ``name`` when they have one (providers, models, keys),
    else (no name, or a new name: a rename) by position.
    """
    here, there = current, new
    for part in path:
        if isinstance(part, int):
            if not isinstance(here, list) or not isinstance(there, list):
                return None
            item = there[part]
            name = item.get("name") if isinstance(item, dict) else None
            found = [c for c in here if isinstance(c, dict) and c.get("name") == name]
            if name is not None and found:
                here = found[0]
            else:  # no name, or a renamed item: the one in the same place
                here = here[part] if part < len(here) else None
            there = item
        else:
            if not isinstance(here, dict) or not isinstance(there, dict):
                return None
            here, there = here.get(part), there.get(part)
        if here is None:
            return None
    return here


def _dotted(path: tuple[str | int, ...], data: Any) -> str:
    text, here = "", data
    for part in path:
        if isinstance(part, int):
            item = here[part] if isinstance(here, list) else None
            name = item.get("name") if isinstance(item, dict) else None
            text += f"[name={name}]" if name is not None else f"[{part}]"
            here = item
        else:
            text += f".{part}" if text else str(part)
            here = here.get(part) if isinstance(here, dict) else None
    return text


def restore_secrets(new_text: str, current_text: str | None) -> str:
    """``new_text`` with each ``<redacted>`` marker replaced by the value it stands for.

    Raises ``ConfigError`` naming every marker that stands for nothing (a new provider
    with ``api_key = "<redacted>"``), or a syntax error, which check-config would report.
    """
    tokens = [
        (m.start(), m.end(), value)
        for m in _STRING.finditer(new_text)
        if (value := _token_value(m.group(0))) is not None and REDACTED in value
    ]
    if not tokens:
        return new_text
    marked, last = [], 0
    for k, (start, end, value) in enumerate(tokens):
        marked.append(new_text[last:start])
        marked.append(_encode(value.replace(REDACTED, _PLACEHOLDER.format(k))).decode())
        last = end
    marked.append(new_text[last:])
    try:
        new_data = tomllib.loads("".join(marked))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config text: TOML syntax error: {exc}"]) from None
    try:
        current_data = tomllib.loads(current_text) if current_text is not None else {}
    except tomllib.TOMLDecodeError:
        current_data = {}
    resolved: dict[int, str] = {}
    problems = []
    for path, value in _walk(new_data):
        if not isinstance(value, str) or not (found := _PLACEHOLDER_RE.search(value)):
            continue
        k = int(found.group(1))
        kept = _current(current_data, new_data, path)
        where = _dotted(path, new_data)
        if value == _PLACEHOLDER.format(k) and isinstance(kept, str) and kept:
            resolved[k] = kept
        elif isinstance(kept, str) and (password := _password(kept)) is not None:
            resolved[k] = value.replace(_PLACEHOLDER.format(k), password)
        else:
            problems.append(
                f"{where}: {REDACTED} keeps the current value, but the config file has "
                "none there: write the value itself"
            )
    if problems:
        raise ConfigError(problems)
    out, last = [], 0
    for k, (start, end, _value) in enumerate(tokens):
        out.append(new_text[last:start])
        out.append(_encode(resolved[k]).decode())
        last = end
    out.append(new_text[last:])
    return "".join(out)


def _named(items: list[Any], key: str = "name") -> dict[str, Any]:
    named: dict[str, Any] = {}
    for i, item in enumerate(items):
        if isinstance(item, dict):
            label = item.get(key)
            if key == "model" and item.get("provider"):
                label = f"{item['provider']}/{label}"
            named[str(label if label is not None else i)] = item
    return named


def _list_diff(old: list[Any], new: list[Any], key: str = "name") -> dict[str, list[str]]:
    before, after = _named(old, key), _named(new, key)
    return {
        "added": [n for n in after if n not in before],
        "removed": [n for n in before if n not in after],
        "changed": [n for n in after if n in before and after[n] != before[n]],
    }


def _settings(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        changed = []
        for key in list(old) + [k for k in new if k not in old]:
            changed += _settings(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return changed
    return [path] if old != new else []


def config_diff(old: Config, new: Config) -> dict[str, Any]:
    """What changes from ``old`` to ``new``: names and setting paths, never values.

    Providers, models and client keys by name, prices by provider/model, every other
    setting (limits, timeouts, ...) by its dotted path. A changed secret shows as its
    owner changed (``providers: changed [openai]``, ``auth.master_key``).
    """
    a, b = to_builtins(old), to_builtins(new)
    a_auth: dict[str, Any] = dict(a.pop("auth"))  # type: ignore[call-overload]
    b_auth: dict[str, Any] = dict(b.pop("auth"))  # type: ignore[call-overload]
    diff: dict[str, Any] = {
        "providers": _list_diff(a.pop("providers"), b.pop("providers")),  # type: ignore[arg-type]
        "models": _list_diff(a.pop("models"), b.pop("models")),  # type: ignore[arg-type]
        "keys": _list_diff(a_auth.pop("keys"), b_auth.pop("keys")),
        "pricing": _list_diff(a.pop("pricing"), b.pop("pricing"), "model"),  # type: ignore[arg-type]
    }
    a["auth"], b["auth"] = a_auth, b_auth
    diff["settings"] = _settings(a, b)
    diff["changed"] = bool(diff["settings"]) or any(
        any(part.values()) for name, part in diff.items() if name != "settings"
    )
    return diff
