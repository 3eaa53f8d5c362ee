"""Names that go into upstream URL paths: checked, so nobody can steer a request.

Gemini (``/v1beta/models/{model}:generateContent``), Vertex and Azure
(``/openai/deployments/{model}/...``) put the model name in the URL path. The name
comes from the operator's config, never straight from a client, but a name holding
``/``, ``..``, ``?``, ``#``, ``%`` or whitespace would still change which path, query
or host the request reaches. Adapters call ``path_segment`` on every name they put in
a path; the config loader applies the same rule at load time.

    url = f"/v1beta/models/{path_segment(target.model)}:generateContent"
"""

from __future__ import annotations

import re

from fkllmproxy.errors import BadRequest

__all__ = ["SAFE_SEGMENT", "is_safe_segment", "path_segment"]

# Letters, digits and . _ - @ + (Vertex's "claude-3-5-sonnet@20240620"), at most 256,
# starting with a letter or digit; ".." anywhere is refused separately.
SAFE_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,255}")


def is_safe_segment(value: str) -> bool:
    """Whether ``value`` can stand as one URL path segment without changing the URL."""
    return bool(SAFE_SEGMENT.fullmatch(value)) and ".." not in value


def path_segment(value: str, what: str = "model") -> str:
    """``value`` unchanged if it is a safe path segment; ``BadRequest`` otherwise."""
    if not is_safe_segment(value):
        raise BadRequest(
            f"The {what} name {value!r} cannot be used in an upstream URL "
            "(letters, digits and . _ - @ + only).",
            param=what,
        )
    return value
