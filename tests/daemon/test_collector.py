"""``daemon/collector.py``: the serving process's garbage-collector settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from fkllmproxy.daemon.collector import THRESHOLDS, tune_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_leave_the_passes_and_passes_are_rarer() -> None:
    """After tuning, what existed is frozen and the young threshold is 10,000."""
    tune_collector()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == THRESHOLDS
    assert THRESHOLDS[0] > 700  # CPython's default, which the daemon must not keep
