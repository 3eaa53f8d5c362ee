"""Configuration: the schema, its four layers, and validation that reports everything.

This package imports nothing else of fkllmproxy's but ``errors``: configuration is the
first thing to load and the one thing every other layer reads.
"""

from fkllmproxy.config.loader import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_ENV_FILE,
    LoadedConfig,
    env_name,
    load_config,
    resolve_environ,
)
from fkllmproxy.config.redact import REDACTED, redacted
from fkllmproxy.config.schema import Config, ModelConfig, ProviderConfig, Target

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_ENV_FILE",
    "REDACTED",
    "Config",
    "LoadedConfig",
    "ModelConfig",
    "ProviderConfig",
    "Target",
    "env_name",
    "load_config",
    "redacted",
    "resolve_environ",
]
