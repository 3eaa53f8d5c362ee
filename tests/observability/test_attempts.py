"""Classifying upstream attempts into the bounded ``outcome`` label."""

from __future__ import annotations

import pytest

from fkllmproxy.errors import (
    BadRequest,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from fkllmproxy.observability.attempts import outcome_of
from fkllmproxy.observability.metrics import OUTCOMES


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "success"),
        (UpstreamTimeout("slow"), "timeout"),
        (UpstreamRejected("bad", status=400), "rejected"),
        (BadRequest("no embeddings here"), "rejected"),
        (UpstreamUnavailable("429", upstream_status=429), "rate_limited"),
        (UpstreamUnavailable("boom", upstream_status=503), "error"),
        (RuntimeError("bug"), "error"),
    ],
)
def test_outcome_of(error: BaseException | None, outcome: str) -> None:
    assert outcome_of(error) == outcome
    assert outcome in OUTCOMES
