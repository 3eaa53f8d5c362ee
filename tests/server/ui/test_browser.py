"""The console in a real browser against a real ``fkllm serve``: every page, by role and name.

Elements are found the way a screen reader finds them (``get_by_role`` / ``get_by_label``
with the accessible names of CONTRACT section 10), so a renamed button or a lost label
fails here. Each page is also screenshotted (see ``screenshots`` in conftest.py).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, RunningDaemon, free_port, wait_until

CONFIG = """
[usage]
enabled = true
path = "{ledger}"
flush_interval_secs = 0.2

[state]
directory = "{state}"

[circuit_breaker]
failure_threshold = 2
timeout_secs = 600

[retry]
max_attempts = 1

[[providers]]
name = "mock"
type = "mock"

[[providers]]
name = "broken"
type = "openai"
base_url = "http://127.0.0.1:{dead}/v1"
api_key = "sk-upstream-unused-000000"
connect_timeout_secs = 1

[[models]]
name = "mock"
targets = [{{ provider = "mock", model = "mock-1" }}]

[[models]]
name = "flaky"
targets = [{{ provider = "broken", model = "gpt-x" }}]

[[pricing]]
model = "mock-1"
input_per_mtok = 1.0
output_per_mtok = 2.0
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    tmp = tmp_path_factory.mktemp("console")
    config = CONFIG.format(ledger=tmp / "usage.sqlite3", state=tmp, dead=free_port())
    with RunningDaemon(tmp, config) as running:
        yield running


def chat(daemon: RunningDaemon, model: str = "mock", key: str = MASTER_KEY) -> httpx.Response:
    return httpx.post(
        daemon.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hello"}]},
        timeout=10,
    )


@pytest.fixture
def page(browser: Any, daemon: RunningDaemon) -> Iterator[Any]:
    """A fresh browser context; it records console errors and every URL it fetched."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.errors = []
    tab.urls = []
    tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    tab.on("request", lambda r: tab.urls.append(r.url))
    yield tab
    context.close()


def sign_in(page: Any, daemon: RunningDaemon) -> None:
    from playwright.sync_api import expect

    page.goto(daemon.url + "/ui/")
    expect(page).to_have_url(daemon.url + "/ui/login")
    page.get_by_label("Master key").fill(MASTER_KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()


def go(page: Any, name: str) -> None:
    from playwright.sync_api import expect

    page.get_by_role("navigation").get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()


def shot(page: Any, path: Path) -> None:
    """A screenshot of the whole page down to the end of its content (no empty viewport
    below it), for the test output and the README."""
    bottom = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('main > *, body > *')]"
        ".map(e => e.getBoundingClientRect().bottom + window.scrollY))"
    )
    width = page.viewport_size["width"]
    page.screenshot(
        path=path, full_page=True, clip={"x": 0, "y": 0, "width": width, "height": bottom + 24}
    )


def test_the_whole_console(
    page: Any, daemon: RunningDaemon, screenshots: Path, tmp_path: Path
) -> None:
    """Sign in, live Overview, reset a circuit, create/use/revoke a key, CSV, reload, sign out."""
    from playwright.sync_api import expect

    page.goto(daemon.url + "/ui/login")
    shot(page, screenshots / "login.png")
    sign_in(page, daemon)

    # Overview: the numbers move by themselves as traffic arrives.
    before = page.locator("#updated").inner_text()
    for _ in range(3):
        assert chat(daemon).status_code == 200
    expect(page.locator("#total_requests")).to_have_text("3", timeout=20_000)
    assert page.locator("#updated").inner_text() != before
    expect(page.locator("#chart-rps").locator("polyline, circle")).to_have_count(1, timeout=20_000)
    shot(page, screenshots / "overview.png")

    # Providers: a failing provider's circuit opens; Reset circuit closes it.
    for _ in range(2):
        assert chat(daemon, "flaky").status_code >= 500
    go(page, "Providers")
    row = page.get_by_role("row", name=re.compile(r"^broken\b"))
    expect(row.get_by_role("cell").nth(1)).to_have_text("open")
    # Its recent error rate arrives with the page's next poll (numbers are shared for 2 s).
    expect(row.locator('[data-field="error_rate"]')).to_have_text("100.0 %", timeout=20_000)
    shot(page, screenshots / "providers.png")
    row.get_by_role("button", name="Reset circuit").click()
    expect(page.get_by_role("status").filter(has_text="now closed")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"^broken\b"))).to_contain_text("closed")

    # Keys: create one (shown once), use it, revoke it.
    go(page, "Keys")
    page.get_by_label("Name", exact=True).fill("browser-team")
    page.get_by_label("Models", exact=True).fill("mock")
    page.get_by_label("Tokens per minute", exact=True).fill("100000")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text()
    assert key.startswith("sk-fkllm-")
    expect(page.get_by_role("button", name="Copy key")).to_be_visible()
    shot(page, screenshots / "keys-created.png")
    used = chat(daemon, key=key)
    assert used.status_code == 200, used.text
    assert chat(daemon, "flaky", key=key).status_code == 403  # only the models it was given
    go(page, "Keys")
    assert key not in page.content()  # shown once
    row = page.get_by_role("row", name=re.compile(r"^browser-team\b"))
    expect(row).to_contain_text("mock")
    expect(row).to_contain_text("100,000 tokens/min")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status").filter(has_text="revoked")).to_be_visible()
    assert chat(daemon, key=key).status_code == 401
    shot(page, screenshots / "keys.png")

    # Usage: the ledger by key, as a table and a CSV download.
    assert wait_until(lambda: _ledger_has(daemon, "browser-team"), timeout=10)
    go(page, "Usage")
    page.get_by_label("Group by").select_option("key")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("table", name="Usage by key")).to_contain_text("browser-team")
    shot(page, screenshots / "usage.png")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    saved = tmp_path / "usage.csv"
    download.value.save_as(saved)
    lines = saved.read_text().splitlines()
    assert lines[0].startswith("key,requests,failed")
    assert any(line.startswith("browser-team,2,1,") for line in lines), lines  # 200 and 403

    # Config: reload works, and a broken config file is refused with the reason shown.
    go(page, "Config")
    expect(page.get_by_text("<redacted>").first).to_be_visible()
    page.get_by_role("button", name="Reload").click()
    expect(page.get_by_role("status").filter(has_text="Reloaded")).to_be_visible()
    good = daemon.config_path.read_text()
    daemon.config_path.write_text(good + '\n[logging]\nlevel = "LOUD"\n')
    try:
        page.get_by_role("button", name="Reload").click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("Reload refused")
        expect(alert).to_contain_text("logging.level")
        shot(page, screenshots / "config.png")
    finally:
        daemon.config_path.write_text(good)

    # Sign out: the session is over.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Master key")).to_be_visible()
    page.goto(daemon.url + "/ui/keys")
    expect(page).to_have_url(daemon.url + "/ui/login")

    # The refused reload is a 422 on purpose; the browser reports that status as an error.
    unexpected = [e for e in page.errors if "status of 422" not in e]
    assert unexpected == [], unexpected
    foreign = [u for u in page.urls if not u.startswith(daemon.url + "/")]
    assert foreign == [], foreign
    assert MASTER_KEY not in "\n".join(page.urls)
    logs = "\n".join(daemon.stdout_lines())
    assert MASTER_KEY not in logs and key not in logs


def _ledger_has(daemon: RunningDaemon, name: str) -> bool:
    """Whether the ledger has written a row for the key ``name`` yet."""
    path = daemon.config_path.parent / "usage.sqlite3"
    if not path.exists():
        return False
    with sqlite3.connect(path) as db:
        return bool(db.execute("SELECT 1 FROM usage WHERE key_name = ?", (name,)).fetchone())


def test_keyboard_only_sign_in(page: Any, daemon: RunningDaemon) -> None:
    """The key field has focus on arrival; typing and Enter signs in; Tab reaches the nav."""
    from playwright.sync_api import expect

    page.goto(daemon.url + "/ui/login")
    expect(page.get_by_label("Master key")).to_be_focused()
    page.keyboard.type(MASTER_KEY)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Overview", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Providers", level=1)).to_be_visible()
    assert page.errors == [], page.errors


def test_a_form_from_another_page_is_refused(page: Any, daemon: RunningDaemon) -> None:
    """A signed-in browser posting without the page's CSRF token gets 403, nothing changes."""
    sign_in(page, daemon)
    answer = page.request.post(
        daemon.url + "/ui/keys",
        form={"name": "forged", "models": ""},
        max_redirects=0,
    )
    assert answer.status == 403
    go(page, "Keys")
    assert "forged" not in page.content()


def test_the_config_editor_saves_and_refuses_a_stale_save(
    page: Any, daemon: RunningDaemon, screenshots: Path
) -> None:
    """Validate shows the diff and writes nothing; Save writes, backs up and reloads; a save
    over a file changed meanwhile is refused; Restore puts the backup back."""
    from playwright.sync_api import expect

    original = daemon.config_path.read_text()
    new_model = '\n[[models]]\nname = "edited"\ntargets = [{ provider = "mock", model = "m-2" }]\n'
    sign_in(page, daemon)
    go(page, "Config")
    editor = page.get_by_label("(secrets shown as <redacted>", exact=False)
    expect(editor).to_contain_text('api_key = "<redacted>"')
    editor.fill(editor.input_value() + new_model)
    page.get_by_role("button", name="Validate").click()
    expect(page.get_by_role("status").filter(has_text="Valid")).to_be_visible()
    expect(page.get_by_label("What this changes")).to_contain_text("models added: edited")
    assert daemon.config_path.read_text() == original
    assert chat(daemon, "edited").status_code == 404

    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="written")).to_be_visible()
    assert daemon.config_path.read_text() == original + new_model  # the secret kept
    assert chat(daemon, "edited").status_code == 200
    backups = page.get_by_role("button", name="Restore", exact=False)
    expect(backups).to_have_count(1)
    shot(page, screenshots / "config-editor.png")

    # Another operator changes the file after this page was shown: this save is refused.
    saved = daemon.config_path.read_text()
    daemon.config_path.write_text(saved + "\n# edited by hand meanwhile\n")
    editor = page.get_by_label("(secrets shown as <redacted>", exact=False)
    editor.fill(editor.input_value() + "\n# my edit\n")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("has changed since it was read")
    assert daemon.config_path.read_text() == saved + "\n# edited by hand meanwhile\n"

    # Restore the backup the first save kept: the original file is back, and applied.
    page.reload()  # drop the refused form's resubmission
    go(page, "Config")
    page.get_by_role("button", name="Restore", exact=False).last.click()
    expect(page.get_by_role("status").filter(has_text="Restore")).to_be_visible()
    assert daemon.config_path.read_text() == original
    assert chat(daemon, "edited").status_code == 404


def tab_to(page: Any, target: Any, *, backwards: bool = False, limit: int = 80) -> None:
    """Press Tab (Shift+Tab with ``backwards``) until ``target`` has the focus, at most
    ``limit`` times; then check that the focus is visible (an outline is drawn)."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(limit):
        page.keyboard.press(key)
        if target.evaluate("element => element === document.activeElement"):
            break
    else:
        raise AssertionError(f"{limit} presses of {key} never reached {target}")
    outline = target.evaluate(
        "e => { const s = getComputedStyle(e); return [s.outlineStyle, s.outlineWidth]; }"
    )
    assert outline[0] != "none" and outline[1] != "0px", f"no visible focus on {target}: {outline}"


def key_to_page(page: Any, name: str) -> None:
    """Reach the navigation link ``name`` with the keyboard and follow it with Enter."""
    from playwright.sync_api import expect

    tab_to(page, page.get_by_role("navigation").get_by_role("link", name=name, exact=True))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()


def test_every_page_with_the_keyboard_alone(
    page: Any, daemon: RunningDaemon, tmp_path: Path
) -> None:
    """Tab, Shift+Tab, Enter, Space and the arrow keys only: reset a circuit, create a key
    and revoke it, group usage and download its CSV, reload the config, sign out."""
    from playwright.sync_api import expect

    page.goto(daemon.url + "/ui/login")
    # Typing before the field takes its focus would send half the key (seen under load).
    expect(page.get_by_label("Master key")).to_be_focused()
    page.keyboard.type(MASTER_KEY)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()

    # Providers: open the failing provider's circuit, then reset it from the keyboard.
    for _ in range(2):
        chat(daemon, "flaky")
    key_to_page(page, "Providers")
    row = page.get_by_role("row", name=re.compile(r"^broken\b"))
    expect(row.get_by_role("cell").nth(1)).to_have_text("open")
    tab_to(page, row.get_by_role("button", name="Reset circuit"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="now closed")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"^broken\b"))).to_contain_text("closed")

    # Keys: fill the form field by field and create the key with Space on the button.
    key_to_page(page, "Keys")
    tab_to(page, page.get_by_label("Name", exact=True))
    page.keyboard.type("keyboard-team")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Models", exact=True)).to_be_focused()
    page.keyboard.type("mock")
    tab_to(page, page.get_by_role("button", name="Create key"))
    page.keyboard.press("Space")
    key = page.locator("#new-key").inner_text()
    assert key.startswith("sk-fkllm-")
    assert chat(daemon, key=key).status_code == 200

    # Revoke it: Enter on its row's button, then the confirmation (accepted, as Enter
    # does in the browser's own dialog, which Playwright answers in its stead).
    key_to_page(page, "Keys")
    row = page.get_by_role("row", name=re.compile(r"^keyboard-team\b"))
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    tab_to(page, row.get_by_role("button", name="Revoke"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="revoked")).to_be_visible()
    assert asked and "keyboard-team" in asked[0]
    assert chat(daemon, key=key).status_code == 401

    # Usage: choose a grouping with the arrow keys, Show, then download the CSV.
    key_to_page(page, "Usage")
    grouping = page.get_by_label("Group by")
    tab_to(page, grouping)
    page.keyboard.press("ArrowDown")  # key -> model
    expect(grouping).to_have_value("model")
    tab_to(page, page.get_by_role("button", name="Show"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("table", name="Usage by model")).to_contain_text("mock")
    tab_to(page, page.get_by_role("link", name="Download CSV"))
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    saved = tmp_path / "usage.csv"
    download.value.save_as(saved)
    assert saved.read_text().startswith("model,requests,failed")

    # Config: Reload, then back up the page to the effective configuration (scrollable
    # with the keyboard: it takes the focus) and on to the editor's Validate.
    key_to_page(page, "Config")
    tab_to(page, page.get_by_role("button", name="Reload"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Reloaded")).to_be_visible()
    tab_to(page, page.locator("pre.config"))
    tab_to(page, page.get_by_role("button", name="Validate"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Valid")).to_be_visible()

    # Sign out, going backwards through the page to the header's button.
    tab_to(page, page.get_by_role("button", name="Sign out"), backwards=True)
    page.keyboard.press("Enter")
    expect(page.get_by_label("Master key")).to_be_focused()
    assert page.errors == [], page.errors


def test_the_overview_charts_draw_the_traffic_as_it_comes(
    page: Any, daemon: RunningDaemon, screenshots: Path
) -> None:
    """Under steady traffic (some of it failing) each chart grows into a line of samples,
    without a reload; the page is screenshotted then (the README's picture)."""
    from playwright.sync_api import expect

    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=10) as client:
            beat = 0
            while not stop.is_set():
                beat += 1
                model = "flaky" if beat % 7 == 0 else "mock"
                client.post(
                    daemon.url + "/v1/chat/completions",
                    headers={"authorization": f"Bearer {MASTER_KEY}"},
                    json={"model": model, "messages": [{"role": "user", "content": "hi " * beat}]},
                )
                stop.wait(0.05 + 0.1 * (beat % 5))  # an uneven rate, for an uneven line

    sender = threading.Thread(target=traffic, daemon=True)
    sign_in(page, daemon)
    sender.start()
    try:
        lines = page.locator("#chart-rps polyline")
        # Samples come every 5 s: five of them take about 25 s (bounded at 60 s).
        assert wait_until(
            lambda: lines.count() == 1 and len(lines.get_attribute("points").split()) >= 5,
            timeout=60,
            interval=0.5,
        )
        for chart in ("error_rate", "latency", "tokens"):
            expect(page.locator(f"#chart-{chart} polyline").first).to_be_visible()
    finally:
        stop.set()
        sender.join(timeout=15)
    shot(page, screenshots / "overview-live.png")
    assert page.errors == [], page.errors
