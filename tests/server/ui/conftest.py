"""The console's browser tier: Playwright for Python driving Debian's ``chromium``.

Playwright cannot download its own browsers here, so the tests launch the distribution's
build (``/usr/bin/chromium``, or ``$FKLLM_CHROMIUM``), which ``.ci/run`` installs. Where it
is missing a browser test is skipped with the command that installs it; under CI, where
that has run, a missing browser fails the test instead of hiding it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from fkllmproxy.config import load_config
from fkllmproxy.server import RuntimeHolder, build_runtime, create_app
from tests.conftest import MASTER_KEY, MOCK_CONFIG

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


# -- helpers for the in-process console tests (a TestClient over the real app) ------------


FORM = {"content-type": "application/x-www-form-urlencoded"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def make_client(tmp_path: Path, extra: str = "", **environ: str) -> TestClient[Any]:
    config = tmp_path / "c.toml"
    config.write_text(MOCK_CONFIG + extra)
    env = {"APP_AUTH__MASTER_KEY": MASTER_KEY, "APP_STATE__DIRECTORY": str(tmp_path), **environ}
    loaded = load_config(config_path=config, environ=env)
    holder = RuntimeHolder(build_runtime(loaded))

    async def reloader() -> list[str]:
        return list(reloads.pop(0)) if reloads else []

    reloads: list[list[str]] = []
    holder.reloader = reloader
    app = create_app(holder)
    app.state.reloads = reloads
    app.state.console.clock = Clock()
    return TestClient(app)


def sign_in(client: TestClient[Any], key: str = MASTER_KEY) -> Any:
    return client.post("/ui/login", content=f"key={key}", headers=FORM, follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def clock(client: TestClient[Any]) -> Clock:
    value: Clock = client.app.state.console.clock
    return value
