"""The ``ts`` field of log lines (observability/logging.py): RFC 3339 UTC, milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from fkllmproxy.observability.logging import _timestamp


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_matches_datetime_to_the_millisecond(created: float) -> None:
    """The cached-prefix formatting agrees with datetime's, truncating to milliseconds."""
    expected = datetime.fromtimestamp(created, UTC)
    expected = expected.replace(microsecond=expected.microsecond // 1000 * 1000)
    text = _timestamp(created)
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    # A float a hair below a millisecond boundary may land on either side of it.
    assert abs((parsed - expected).total_seconds()) <= 0.001
    assert len(text) == len("2026-01-01T00:00:00.000Z")


def test_second_boundaries_do_not_reuse_the_previous_prefix() -> None:
    """Consecutive seconds each get their own prefix (the cache is per second)."""
    assert _timestamp(1_700_000_000.999) == "2023-11-14T22:13:20.999Z"
    assert _timestamp(1_700_000_001.0) == "2023-11-14T22:13:21.000Z"
    assert _timestamp(1_700_000_000.5) == "2023-11-14T22:13:20.500Z"
