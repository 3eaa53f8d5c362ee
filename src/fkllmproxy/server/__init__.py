"""The web layer: the Litestar app, its routes, and error rendering."""

from fkllmproxy.server.app import create_app
from fkllmproxy.server.runtime import Runtime, RuntimeHolder, build_runtime

__all__ = ["Runtime", "RuntimeHolder", "build_runtime", "create_app"]
