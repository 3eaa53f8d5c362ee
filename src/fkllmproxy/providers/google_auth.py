"""OAuth2 access tokens for Vertex AI, from a Google credentials file, cached.

The credential flow (a JWT signed with the service account's key, exchanged at its
``token_uri``) is google-auth's, not ours. google-auth is synchronous, so a refresh
runs in a worker thread, and requests rarely wait for one:

- a token with more than ``refresh_ahead`` seconds left is used as it is;
- inside that window the current token is still used, and one refresh starts in the
  background, so the next requests get a fresh token without waiting;
- only when no token is left with at least ``min_valid`` seconds of life does a
  request wait, and then all waiting requests share the one refresh (single flight).

Usage::

    source = GoogleTokenSource.from_file(path, provider="vertex")
    headers = {"authorization": f"Bearer {await source.token()}"}
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import msgspec

from fkllmproxy.errors import ConfigError, UpstreamUnavailable
from fkllmproxy.observability.logging import get_logger

__all__ = ["Credentials", "GoogleTokenSource", "load_google_credentials"]

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_log = get_logger("providers.google_auth")


class Credentials(Protocol):
    """The part of ``google.auth.credentials.Credentials`` we use."""

    token: str | None
    expiry: datetime | None

    def refresh(self, request: Any) -> None: ...


def load_google_credentials(path: str, *, provider: str) -> tuple[Credentials, str | None]:
    """The credentials in ``path`` and their project (``ConfigError`` if unusable).

    A service-account key is the expected kind; an authorized-user file (what
    ``gcloud auth application-default login`` writes) works too. Each kind is loaded
    with its own loader, so a file of any other kind is refused, not trusted.
    """
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    def problem(reason: str) -> ConfigError:
        return ConfigError([f"provider {provider!r}: credentials_file {path}: {reason}"])

    try:
        with open(path, "rb") as file:
            info = msgspec.json.decode(file.read())
    except OSError as exc:
        raise problem(f"cannot be read ({exc.strerror})") from None
    except msgspec.DecodeError:
        raise problem("not a JSON credentials file") from None
    kind = info.get("type") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            found = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
            return found, info.get("project_id")
        if kind == "authorized_user":
            user = user_credentials.Credentials.from_authorized_user_info(info, scopes=[SCOPE])
            return user, info.get("quota_project_id")
    except (ValueError, KeyError) as exc:
        raise problem(f"incomplete {kind} credentials ({exc})") from None
    raise problem(f"type {kind!r} is not supported (use a service_account key)")


class _Response:
    """google-auth's transport response, from an httpx response."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self.data = response.content


class _Request:
    """google-auth's transport interface over a small synchronous httpx client.

    google-auth ships adapters for ``requests`` and ``urllib3`` only; this one keeps
    our dependencies to httpx. It only ever runs in a worker thread.
    """

    def __init__(self, timeout: float) -> None:
        self._client = httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **_: Any,
    ) -> _Response:
        from google.auth import exceptions

        try:
            response = self._client.request(
                method, url, content=body, headers=dict(headers or {}), timeout=timeout
            )
        except httpx.HTTPError as exc:
            raise exceptions.TransportError(f"{type(exc).__name__}: {exc}") from exc
        return _Response(response)

    def close(self) -> None:
        self._client.close()


class GoogleTokenSource:
    """A cached, proactively refreshed bearer token for one set of credentials."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        provider: str,
        timeout: float = 30.0,
        refresh_ahead: float = 300.0,
        min_valid: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.refreshes = 0
        self._credentials = credentials
        self._provider = provider
        self._request = _Request(timeout)
        self._refresh_ahead = refresh_ahead
        self._min_valid = min_valid
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def token(self) -> str:
        """A token valid for at least ``min_valid`` seconds; waits only when it must."""
        remaining = self._expires_at - self._clock()
        if self._token is not None and remaining > self._refresh_ahead:
            return self._token
        if self._token is not None and remaining > self._min_valid:
            self._refresh_in_background()
            return self._token
        await asyncio.shield(self._refresh())
        assert self._token is not None
        return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the upstream refused it), so the next call fetches a new one."""
        if token and token == self._token:
            self._token = None
            self._expires_at = 0.0

    def _refresh(self) -> asyncio.Task[None]:
        """The refresh in flight, or a new one: every caller shares the same task."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run_refresh())
        return self._task

    def _refresh_in_background(self) -> None:
        task = self._refresh()
        task.add_done_callback(self._log_background_failure)

    def _log_background_failure(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            _log.warning(
                "background token refresh failed; will retry",
                extra={"provider": self._provider, "error": str(task.exception())},
            )

    async def _run_refresh(self) -> None:
        token, expires_at = await asyncio.to_thread(self._refresh_blocking)
        self._token, self._expires_at = token, expires_at
        self.refreshes += 1

    def _refresh_blocking(self) -> tuple[str, float]:
        try:
            self._credentials.refresh(self._request)
        except Exception as exc:  # google-auth raises RefreshError, TransportError, ValueError
            raise UpstreamUnavailable(
                f"provider {self._provider!r} could not get an access token: {_first_line(exc)}",
                provider=self._provider,
            ) from exc
        token = self._credentials.token
        if not token:
            raise UpstreamUnavailable(
                f"provider {self._provider!r} got no access token from the token endpoint",
                provider=self._provider,
            )
        expiry = self._credentials.expiry
        # google-auth keeps expiry as a naive UTC datetime; no expiry means "one hour".
        if expiry is None:
            return token, self._clock() + 3600.0
        return token, expiry.replace(tzinfo=UTC).timestamp() - time.time() + self._clock()

    def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._request.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0] if exc.args else exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__
