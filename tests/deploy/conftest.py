"""What the Kubernetes tests share: the schema version, the check-config run of what the
pods get, and imports that CI must have."""

from __future__ import annotations

import importlib
import os
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import fkllm

KUBERNETES_VERSION = "1.33"  # preStop sleep is GA there; kustomize is not a schema


def required_module(name: str, why: str) -> ModuleType:
    """``name`` imported; skipped without it where it is optional, failed under CI, where
    ``make venv`` installed it and its absence would hide the tests."""
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"{name} is not installed ({why}); run: make venv"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def check_config(
    tmp_path: Path, config_toml: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``fkllm check-config`` on a pod's config.toml (the ConfigMap) and env (the Secret)."""
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    env_file.chmod(0o600)
    config_file = tmp_path / "config.toml"
    config_file.write_text(config_toml)
    return fkllm("check-config", "--config", str(config_file), "--env-file", str(env_file))
