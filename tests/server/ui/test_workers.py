"""The console on a multi-worker daemon: one sign-in for every worker, totals across them,
and changes (Reload, a key created or revoked) that reach every worker."""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import MASTER_KEY, MOCK_CONFIG, wait_until, worker_pids

FORM = {"content-type": "application/x-www-form-urlencoded"}


@contextlib.contextmanager
def signed_in_browser(daemon: Any) -> Iterator[httpx.Client]:
    """A client that keeps the console's session cookie, signed in."""
    with httpx.Client(base_url=daemon.url, timeout=10, follow_redirects=True) as browser:
        assert wait_until(lambda: browser.get("/ui/login").status_code == 200, timeout=20)
        signed = browser.post("/ui/login", content=f"key={MASTER_KEY}", headers=FORM)
        assert signed.status_code == 200 and "<h1>Overview</h1>" in signed.text
        yield browser


def csrf(browser: httpx.Client, path: str) -> str:
    token = re.search(r'name="csrf" value="([^"]+)"', browser.get(path).text)
    assert token
    return token.group(1)


def chat(daemon: Any, key: str = MASTER_KEY) -> int:
    """One chat completion on a fresh connection (so any worker may answer); its status."""
    with httpx.Client(timeout=10) as client:
        return client.post(
            daemon.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "mock", "messages": [{"role": "user", "content": "hi"}]},
        ).status_code


def test_sessions_totals_and_reload_across_workers(start_daemon: Any) -> None:
    """A session signed by one worker works on all; the Overview counts every worker's
    requests; Reload refuses a broken file with its reasons and otherwise has every
    worker replaced (until this change it answered 501 'use systemctl reload')."""
    daemon = start_daemon(MOCK_CONFIG, args=["--workers", "2"])
    with signed_in_browser(daemon) as browser:
        for _ in range(6):
            assert chat(daemon) == 200

        # Fresh connections, so both workers answer polls: each one counts all six (once
        # its snapshot, shared for 2 s between a worker's pages, is renewed).
        def polled() -> int:
            with httpx.Client(base_url=daemon.url, cookies=browser.cookies, timeout=10) as tab:
                total: int = tab.get("/ui/api/overview").json()["total_requests"]
                return total

        assert wait_until(lambda: [polled() for _ in range(6)] == [6] * 6, timeout=20)

        # A config file broken on disk: refused with the reason, no worker replaced.
        assert wait_until(lambda: len(worker_pids(daemon.pid)) == 2, timeout=20)
        before = worker_pids(daemon.pid)
        good = daemon.config_path.read_text()
        daemon.config_path.write_text(good + '\n[logging]\nlevel = "LOUD"\n')
        token = csrf(browser, "/ui/config")
        refused = browser.post("/ui/config/reload", content=f"csrf={token}", headers=FORM)
        assert refused.status_code == 422
        assert "Reload refused" in refused.text and "logging.level" in refused.text
        assert worker_pids(daemon.pid) == before

        # The file mended and one more model in it: every worker reloads it in place.
        extra = '\n[[models]]\nname = "second"\ntargets = [{ provider = "mock", model = "m-2" }]\n'
        daemon.config_path.write_text(good + extra)
        earlier = reloads(daemon)
        reloaded = browser.post("/ui/config/reload", content=f"csrf={token}", headers=FORM)
        assert reloaded.status_code == 200, reloaded.text
        assert "every worker is reloading" in reloaded.text
        assert wait_until(lambda: every_worker_reloaded(daemon, before, earlier), timeout=30)
        assert worker_pids(daemon.pid) == before  # in place: no worker was restarted

        def second() -> int:
            with httpx.Client(timeout=10) as client:
                return client.post(
                    daemon.url + "/v1/chat/completions",
                    headers=daemon.headers(),
                    json={"model": "second", "messages": [{"role": "user", "content": "hi"}]},
                ).status_code

        assert wait_until(lambda: [second() for _ in range(8)] == [200] * 8, timeout=30)
        # The session outlives the reload: it is signed with the master key, not kept.
        assert "<h1>Config</h1>" in browser.get("/ui/config").text


def answered_by(daemon: Any, client: str, status: int) -> set[int]:
    """The workers (pids) whose request lines show ``client`` answered with ``status``."""
    return {
        line["pid"]
        for line in daemon.logs()
        if line.get("msg") == "request" and line.get("client") == client
        and line.get("status") == status
    }  # fmt: skip


def reloads(daemon: Any) -> Counter[int]:
    """How many times each worker (pid) has logged "configuration reloaded"."""
    return Counter(
        line["pid"] for line in daemon.logs() if line.get("msg") == "configuration reloaded"
    )


def every_worker_reloaded(daemon: Any, workers: set[int], earlier: Counter[int]) -> bool:
    now = reloads(daemon)
    return all(now[pid] > earlier[pid] for pid in workers)


def test_a_key_made_in_the_console_works_on_every_worker(start_daemon: Any, tmp_path: Path) -> None:
    """Create: every worker reloads the key store in place and takes the key in; each one
    answers it. Revoke: the same, and no worker takes it any more."""
    config = MOCK_CONFIG + f'\n[state]\ndirectory = "{tmp_path}"\n'
    daemon = start_daemon(config, args=["--workers", "2"])
    with signed_in_browser(daemon) as browser:
        assert wait_until(lambda: len(worker_pids(daemon.pid)) == 2, timeout=20)
        workers = worker_pids(daemon.pid)
        earlier = reloads(daemon)
        form = f"csrf={csrf(browser, '/ui/keys')}&name=fleet&models=mock"
        created = browser.post("/ui/keys", content=form, headers=FORM)
        assert created.status_code == 200, created.text
        assert "every worker is reloading" in created.text
        found = re.search(r'<code id="new-key">([^<]+)</code>', created.text)
        assert found
        key = found.group(1)
        assert wait_until(lambda: every_worker_reloaded(daemon, workers, earlier), timeout=30)
        assert worker_pids(daemon.pid) == workers  # in place: no worker was restarted

        # Fresh connections until each worker has answered the key (bounded); every
        # answer on the way is a 200.
        statuses: list[int] = []
        assert wait_until(
            lambda: (
                statuses.append(chat(daemon, key)) is None
                and answered_by(daemon, "fleet", 200) >= workers
            ),
            timeout=30,
            interval=0.1,
        ), (statuses, answered_by(daemon, "fleet", 200), workers)
        assert set(statuses) == {200}, statuses

        earlier = reloads(daemon)
        form = f"csrf={csrf(browser, '/ui/keys')}&name=fleet"
        revoked = browser.post("/ui/keys/revoke", content=form, headers=FORM)
        assert revoked.status_code == 200, revoked.text
        assert "revoked: every worker is reloading" in revoked.text
        assert wait_until(lambda: every_worker_reloaded(daemon, workers, earlier), timeout=30)
        assert wait_until(lambda: [chat(daemon, key) for _ in range(8)] == [401] * 8, timeout=30)
