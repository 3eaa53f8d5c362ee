"""The one error tree of fkllmproxy.

Every failure a caller can act on has a class here, carrying the HTTP status and the
client-facing message, so the web layer renders each of them in exactly one place per
API shape (OpenAI or Anthropic)::

    FkllmError
    ├── ConfigError                 the configuration is invalid (exit 78 / check-config 1)
    ├── ClientError                 the request is at fault; never retried
    │   ├── BadRequest              400 malformed JSON or an invalid field
    │   ├── Unauthorized            401 missing or wrong key
    │   ├── Forbidden               403 key not allowed that model
    │   ├── NotFound                404 unknown model or route
    │   ├── Conflict                409 the change cannot apply to the current state
    │   ├── PreconditionFailed      412 If-Match names a version that is no longer current
    │   ├── PayloadTooLarge         413 body over max_request_size
    │   ├── RateLimited             429 caller's bucket is empty
    │   └── ClientDisconnected      499 the client went away before the answer
    └── UpstreamError               the provider side failed
        ├── UpstreamRejected        the provider refused the request itself (its 4xx)
        ├── UpstreamUnavailable     502 every attempt failed
        ├── NoProviderAvailable     503 every circuit is open
        ├── ShuttingDown            503 the drain deadline ended the request
        └── UpstreamTimeout         504 the provider did not answer in time
    StateStoreUnavailable           503 shared state (Redis) down and [state] on_failure = "closed"
    StorageError                    500 the daemon's own disk work failed (a ledger backup)
    IdentityProviderUnavailable     503 a JWT arrived and the OIDC issuer's keys were never fetched

Nothing here imports the rest of the package, so every layer may raise these.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "BudgetExceeded",
    "ClientDisconnected",
    "ClientError",
    "ConfigError",
    "Conflict",
    "FkllmError",
    "Forbidden",
    "IdentityProviderUnavailable",
    "NoProviderAvailable",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "RateLimited",
    "RequestTimeout",
    "ShuttingDown",
    "StateStoreUnavailable",
    "StorageError",
    "Unauthorized",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class FkllmError(Exception):
    """Base of every error this package raises on purpose.

    ``status`` is the HTTP status the client sees, ``error_type`` the OpenAI-style type
    string and ``code`` a short machine-readable reason (also used as a metric label).
    """

    status: int = 500
    error_type: str = "api_error"
    code: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers the error asks for (``Retry-After`` and the like)."""
        return {}


class ConfigError(FkllmError):
    """Raised when the configuration cannot be used; ``problems`` lists every finding."""

    code = "invalid_config"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"invalid configuration ({count} {noun})")


class ClientError(FkllmError):
    """The request itself is at fault: answered at once, never retried or failed over."""

    status = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class BadRequest(ClientError):
    """Raised for malformed JSON or a field of the wrong type or value."""


class Unauthorized(ClientError):
    """Raised when no key was sent or the key is not known."""

    status = 401
    error_type = "authentication_error"
    code = "invalid_api_key"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="fkllmproxy"'}


class Forbidden(ClientError):
    """Raised when a known key asks for a model it is not allowed."""

    status = 403
    error_type = "permission_error"
    code = "model_not_allowed"


class NotFound(ClientError):
    """Raised for an unknown model (the message lists the valid ones) or route."""

    status = 404
    error_type = "not_found_error"
    code = "model_not_found"


class Conflict(ClientError):
    """Raised when a change cannot apply to things as they are (no config file to edit)."""

    status = 409
    error_type = "conflict_error"
    code = "conflict"


class PreconditionFailed(ClientError):
    """Raised when ``If-Match`` names a version of a file that has since been replaced."""

    status = 412
    error_type = "precondition_failed"
    code = "precondition_failed"


class PayloadTooLarge(ClientError):
    """Raised when the body is larger than ``server.max_request_size``."""

    status = 413
    error_type = "request_too_large"
    code = "request_too_large"


class RequestTimeout(ClientError):
    """Raised when a request body is not received within ``server.body_timeout_secs``."""

    status = 408
    error_type = "invalid_request_error"
    code = "request_timeout"


class RateLimited(ClientError):
    """Raised when the caller's token bucket is empty; carries when to come back."""

    status = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, int(self.retry_after + 0.999)))}


class BudgetExceeded(RateLimited):
    """Raised when a key (or OIDC group) has spent its budget for the period; retry
    when the period ends."""

    code = "budget_exceeded"


class ClientDisconnected(ClientError):
    """Raised when the client hung up while the proxy was still waiting for upstream.

    Nobody receives the answer; the status (nginx's 499) is for the request log line.
    """

    status = 499
    code = "client_closed_request"


class UpstreamError(FkllmError):
    """The provider side failed. ``retryable`` says whether another target may help."""

    status = 502
    error_type = "api_error"
    code = "upstream_error"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        upstream_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.upstream_status = upstream_status
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After`` when the provider (or every open circuit) said when to return."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, int(self.retry_after + 0.999)))}


class UpstreamRejected(UpstreamError):
    """The provider refused the request itself (a 4xx it caused): passed on, not retried.

    ``body`` keeps the provider's own error payload so the client sees its message.
    """

    retryable = False
    error_type = "invalid_request_error"
    code = "upstream_rejected"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        provider: str | None = None,
        body: bytes = b"",
        content_type: str = "application/json",
    ) -> None:
        super().__init__(message, provider=provider, upstream_status=status)
        self.status = status
        self.body = body
        # Set when the client spoke the provider's own API: ``body`` is then already in
        # the shape the client reads and may go back as it is.
        self.same_api = False
        self.content_type = content_type
        if status == 401 or status == 403:
            self.error_type = "authentication_error"
        elif status == 404:
            self.error_type = "not_found_error"
        elif status == 429:
            self.error_type = "rate_limit_error"


class UpstreamUnavailable(UpstreamError):
    """Raised when every attempt at every target failed (connect, 5xx, bad answer)."""

    status = 502
    code = "upstream_unavailable"


class NoProviderAvailable(UpstreamError):
    """Raised when every target of the model has its circuit open."""

    status = 503
    code = "no_provider_available"


class ShuttingDown(UpstreamError):
    """Raised when the daemon stops and its drain deadline ends a request still running.

    Not retried: the whole proxy is going away, not one provider.
    """

    status = 503
    code = "shutting_down"
    retryable = False


class StateStoreUnavailable(FkllmError):
    """Raised in fail-closed mode when the shared state store (Redis) cannot be reached."""

    status = 503
    error_type = "api_error"
    code = "state_unavailable"


class StorageError(FkllmError):
    """Raised when the daemon's own disk work fails: a usage-ledger backup that cannot
    be written (disk full, a directory it may not create). Not the client's fault, and
    not a bug: the message says which file and why, so there is nothing to look up."""

    status = 500
    error_type = "api_error"
    code = "storage_error"


class IdentityProviderUnavailable(FkllmError):
    """Raised for a JWT while the OIDC issuer's signing keys have never been fetched.

    Not the client's fault (the issuer was unreachable since start): a 503 with
    ``Retry-After``, so clients retry rather than drop their token.
    """

    status = 503
    error_type = "api_error"
    code = "identity_provider_unavailable"

    def __init__(self, message: str, *, retry_after: float = 30.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, int(self.retry_after + 0.999)))}


class UpstreamTimeout(UpstreamError):
    """Raised when the provider did not answer within the configured time."""

    status = 504
    error_type = "timeout_error"
    code = "upstream_timeout"
