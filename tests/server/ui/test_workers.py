"""The console on a multi-worker daemon: one sign-in for every worker, totals across them."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import MASTER_KEY, MOCK_CONFIG, wait_until

FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_sessions_and_totals_across_workers(start_daemon: Any) -> None:
    """A session signed by one worker works on all; the Overview counts every worker's requests."""
    daemon = start_daemon(MOCK_CONFIG, args=["--workers", "2"])
    with httpx.Client(base_url=daemon.url, timeout=10, follow_redirects=True) as browser:
        assert wait_until(lambda: browser.get("/ui/login").status_code == 200, timeout=20)
        signed = browser.post("/ui/login", content=f"key={MASTER_KEY}", headers=FORM)
        assert signed.status_code == 200 and "<h1>Overview</h1>" in signed.text
        for _ in range(6):
            answer = httpx.post(
                daemon.url + "/v1/chat/completions",
                headers=daemon.headers(),
                json={"model": "mock", "messages": [{"role": "user", "content": "hi"}]},
                timeout=10,
            )
            assert answer.status_code == 200

        # Fresh connections, so both workers answer polls: each one counts all six (once
        # its snapshot, shared for 2 s between a worker's pages, is renewed).
        def polled() -> int:
            with httpx.Client(base_url=daemon.url, cookies=browser.cookies, timeout=10) as tab:
                total: int = tab.get("/ui/api/overview").json()["total_requests"]
                return total

        assert wait_until(lambda: [polled() for _ in range(6)] == [6] * 6, timeout=20)
        token = re.search(r'name="csrf" value="([^"]+)"', browser.get("/ui/config").text)
        assert token
        refused = browser.post("/ui/config/reload", content=f"csrf={token.group(1)}", headers=FORM)
        assert refused.status_code == 501
        assert "systemctl reload fkllmproxy" in refused.text
