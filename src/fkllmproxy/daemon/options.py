"""What ``fkllm serve`` was asked for, and the one form it travels in between processes.

The options leave the command line twice: to the re-executed daemon (``reexec.py``) and
to each worker of the multi-process server (``workers.py``), both through an environment
variable. Both read and write that JSON here, so the two hand-overs cannot drift apart.
This module stays light (no server, no CLI): the entry point imports it first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

import fkllmproxy.providers  # noqa: F401 - registers the provider types load() checks against
from fkllmproxy.config import LoadedConfig, load_config

__all__ = ["OptionsError", "ServeOptions"]


class OptionsError(ValueError):
    """Raised when a hand-over variable does not hold what ``fkllm serve`` writes there."""


class _Wire(msgspec.Struct, forbid_unknown_fields=True):
    config_path: str | None = None
    env_file: str | None = None
    overrides: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class ServeOptions:
    """What ``serve`` was asked for on the command line, kept to reload the same way.

    ``base_environ`` is the environment the command started with: a reload reads the
    ``APP_*`` variables from it again, not from whatever the process changed since.
    """

    config_path: str | None = None
    env_file: str | None = None
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    base_environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def load(self) -> LoadedConfig:
        return load_config(
            config_path=self.config_path,
            env_file=self.env_file,
            overrides=self.overrides,
            environ=self.base_environ,
        )

    def to_json(self) -> str:
        """The options as the receiving process's ``from_json`` reads them (paths and
        flags; the environment travels as the environment)."""
        wire = _Wire(
            config_path=self.config_path,
            env_file=self.env_file,
            overrides={k: dict(v) for k, v in self.overrides.items()},
        )
        return msgspec.json.encode(wire).decode()

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        """Options written by ``to_json``, with this process's environment as the base."""
        try:
            wire = msgspec.json.decode(text, type=_Wire)
        except msgspec.DecodeError as exc:
            raise OptionsError(str(exc)) from None
        return cls(config_path=wire.config_path, env_file=wire.env_file, overrides=wire.overrides)
