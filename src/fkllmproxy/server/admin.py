"""``/admin``: the operator's routes, for the master key only.

``GET /admin/config`` shows the effective configuration with every secret redacted;
``POST /admin/reload`` does what SIGHUP does (re-read env file and config, swap keys,
limits and routes atomically) and says how it went. A missing or wrong key gets 401,
a valid client key that is not the master key 403.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post

from fkllmproxy.config import redacted
from fkllmproxy.errors import ConfigError
from fkllmproxy.server.errors import error_body
from fkllmproxy.server.exchange import ApiRequest
from fkllmproxy.server.gate import admit_master
from fkllmproxy.server.runtime import RuntimeHolder

__all__ = ["admin_config", "admin_reload"]

_encode = msgspec.json.Encoder().encode


def _holder(request: Request[Any, Any, Any]) -> RuntimeHolder:
    holder: RuntimeHolder = request.app.state.holder
    return holder


def _json(body: Any, status: int = 200) -> Response[bytes]:
    return Response(content=_encode(body), status_code=status, media_type="application/json")


@get("/admin/config")
async def admin_config(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The configuration in force in this process, secrets replaced by ``<redacted>``."""
    runtime = _holder(request).runtime
    await admit_master(ApiRequest.of(request), runtime)
    loaded = runtime.loaded
    return _json(
        {
            "config_file": str(loaded.config_path) if loaded.config_path else None,
            "env_file": str(loaded.env_file) if loaded.env_file else None,
            "client_keys": runtime.auth.key_count,
            "config": redacted(runtime.config),
        }
    )


@post("/admin/reload", status_code=200)
async def admin_reload(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Reload now; 200 when swapped in, 422 listing the problems when refused."""
    holder = _holder(request)
    await admit_master(ApiRequest.of(request), holder.runtime)
    if holder.reloader is None:
        error = ConfigError(["reload over HTTP needs the single-process daemon"])
        error.message = (
            "This process cannot reload itself (multi-worker mode): "
            "use 'systemctl reload fkllmproxy' (SIGHUP) instead."
        )
        error.status = 501
        return Response(
            content=error_body(error, anthropic=False),
            status_code=501,
            media_type="application/json",
        )
    problems = await holder.reloader()
    if problems:
        error = ConfigError(problems)
        error.message = f"reload refused, the old configuration is kept: {error.message}"
        error.status = 422
        body = msgspec.json.decode(error_body(error, anthropic=False))
        body["problems"] = problems
        return _json(body, 422)
    config = holder.runtime.config
    return _json(
        {
            "status": "reloaded",
            "providers": [p.name for p in config.providers],
            "models": [m.name for m in config.models],
            "client_keys": holder.runtime.auth.key_count,
        }
    )
