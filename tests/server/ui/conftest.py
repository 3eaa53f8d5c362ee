"""The console's browser tier: Playwright for Python driving Debian's ``chromium``.

Playwright cannot download its own browsers here, so the tests launch the distribution's
build (``/usr/bin/chromium``, or ``$FKLLM_CHROMIUM``), which ``.ci/run`` installs. Where it
is missing a browser test is skipped with the command that installs it; under CI, where
that has run, a missing browser fails the test instead of hiding it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("FKLLM_CHROMIUM", "/usr/bin/chromium"))


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module's tests."""
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing; run: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed; run: .venv/bin/pip install -e '.[test]'")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the page screenshots go: ``$FKLLM_SCREENSHOTS``, else a temp directory."""
    chosen = os.environ.get("FKLLM_SCREENSHOTS")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("console-screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory
