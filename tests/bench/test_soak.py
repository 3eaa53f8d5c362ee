"""The soak's verdict: the RSS slope through its samples."""

from __future__ import annotations

import pytest
from bench.soak import slope_mb_per_hour


def test_flat_memory_has_no_slope() -> None:
    """Noise around a level reads as (about) zero."""
    samples = [(float(t), 60.0 + (0.1 if t % 2 else -0.1)) for t in range(0, 600, 5)]
    assert slope_mb_per_hour(samples) == pytest.approx(0.0, abs=0.5)


def test_steady_growth_is_measured_per_hour() -> None:
    """1 MiB per 360 s is 10 MiB an hour, 10.49 MB."""
    samples = [(float(t), 60.0 + t / 360) for t in range(0, 600, 5)]
    assert slope_mb_per_hour(samples) == pytest.approx(10 * 1.048576)


def test_too_few_samples_say_nothing() -> None:
    """One sample has no slope."""
    assert slope_mb_per_hour([(0.0, 60.0)]) == 0.0
