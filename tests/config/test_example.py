"""config.example.toml parses, validates, and documents every key of the schema."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from fkllmproxy.config import load_config
from fkllmproxy.config.schema import Config

EXAMPLE = Path(__file__).parents[2] / "config.example.toml"


def schema_keys(struct: Any, prefix: str = "") -> set[str]:
    keys = set()
    for info in msgspec.structs.fields(struct):
        path = f"{prefix}{info.encode_name}"
        keys.add(path)
        inner = info.type
        for _ in range(3):  # unwrap Annotated / Optional / list
            args = getattr(inner, "__args__", None) or getattr(inner, "__origin__", None)
            if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
                break
            if isinstance(args, tuple):
                inner = next((a for a in args if a is not type(None)), inner)
            elif args is not None:
                inner = args
        if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            keys |= schema_keys(inner, path + ".")
    return keys


def test_example_validates() -> None:
    loaded = load_config(config_path=EXAMPLE, environ={"OPENAI_API_KEY": "x"})
    assert [p.name for p in loaded.config.providers] == ["primary", "demo"]


def test_every_schema_key_is_documented() -> None:
    text = EXAMPLE.read_text()
    tomllib.loads(text)
    documented = set()
    section = ""
    last_key = ""
    for line in text.splitlines():
        stripped = line.lstrip("# ").strip()
        header = re.match(r"^\[\[?([a-z_.]+)\]\]?", stripped)
        if header:
            section = header.group(1) + "."
            documented.add(header.group(1))  # a table header documents its key
            continue
        if stripped.startswith("{"):  # an inline table continuing the last key's array
            for inner in re.findall(r"([a-z_]+)\s*=", stripped.split("#")[0]):
                documented.add(section + last_key + "." + inner)
            continue
        key = re.match(r"^([a-z_0-9]+)\s*=", stripped)
        if key:
            last_key = key.group(1)
            documented.add(section + key.group(1))
            for inner in re.findall(r"([a-z_]+)\s*=", stripped.split("=", 1)[1].split("#")[0]):
                documented.add(section + key.group(1) + "." + inner)
    missing = {k for k in schema_keys(Config) if k not in documented and k.count(".") >= 1}
    missing -= {"auth.keys", "providers", "models"}
    assert not missing, f"undocumented keys: {sorted(missing)}"
