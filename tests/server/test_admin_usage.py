"""``POST /admin/usage/backup``: a consistent copy of the live ledger, made while requests
are being written, into the configured directory under a name the daemon chooses."""

from __future__ import annotations

import re
import sqlite3
import stat
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import MOCK_CONFIG, ChatLoad, prometheus_samples, sample_sum, wait_until

LEDGER = """
[usage]
enabled = true
path = "{ledger}"
{extra}

[rate_limit]
enabled = false
"""


def _rows(path: Path) -> int:
    with sqlite3.connect(path, timeout=10) as connection:
        return int(connection.execute("SELECT count(*) FROM usage").fetchone()[0])


def _backup(daemon: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(
        daemon.url + "/admin/usage/backup", headers=daemon.headers(), timeout=60, **kwargs
    )


def _writes(daemon: Any, outcome: str) -> float:
    text = httpx.get(daemon.url + "/metrics/prometheus").text
    samples = prometheus_samples(text)
    return sample_sum(samples, "fkllm_admin_writes_total", action="usage_backup", outcome=outcome)


def test_a_backup_under_load_holds_every_committed_row(start_daemon: Any, tmp_path: Path) -> None:
    """The copy opens as a consistent database with every row committed before it
    started, in ``backups/`` beside the ledger, under a generated name."""
    ledger = tmp_path / "usage.sqlite3"
    daemon = start_daemon(MOCK_CONFIG + LEDGER.format(ledger=ledger, extra=""))
    with ChatLoad(daemon, threads=4) as load:
        assert wait_until(lambda: ledger.exists() and _rows(ledger) >= 200, 60.0)
        before = _rows(ledger)
        # A client cannot choose where the copy goes: a body naming a path is ignored.
        response = _backup(daemon, json={"path": str(tmp_path / "elsewhere.sqlite3")})
        assert response.status_code == 200, response.text
        assert wait_until(lambda: _rows(ledger) > before + 50, 30.0)  # still writing
    assert not load.failures
    body = response.json()
    copy = Path(body["path"])
    assert copy.parent == tmp_path / "backups"
    assert re.fullmatch(r"usage-\d{8}T\d{12}Z\.sqlite3", copy.name), copy.name
    assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in copy.parent.iterdir()) == [copy.name]  # no temp left
    assert not (tmp_path / "elsewhere.sqlite3").exists()
    with sqlite3.connect(f"file:{copy}?mode=ro", uri=True) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        copied = int(connection.execute("SELECT count(*) FROM usage").fetchone()[0])
    assert copied >= before and body["rows"] == copied
    assert body["size"] == copy.stat().st_size and body["ledger"] == str(ledger)
    assert _writes(daemon, "ok") == 1
    assert httpx.get(daemon.url + "/metrics").json()["admin_writes"] == {"usage_backup": {"ok": 1}}
    (logged,) = [line for line in daemon.logs() if line["msg"].startswith("usage ledger backed")]
    assert logged["who"] == "master key" and logged["path"] == str(copy)


def test_no_ledger_is_a_409_that_says_why(start_daemon: Any) -> None:
    """[usage] enabled = false: 409 usage_ledger_disabled naming the setting; counted refused."""
    daemon = start_daemon()
    response = _backup(daemon)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "usage_ledger_disabled" and "[usage] enabled" in error["message"]
    assert _writes(daemon, "refused") == 1


def test_a_directory_it_cannot_write_is_a_clear_500(start_daemon: Any, tmp_path: Path) -> None:
    """backup_dir under a regular file: 500 storage_error naming the directory and the
    reason, no traceback logged, the daemon still serving."""
    ledger = tmp_path / "usage.sqlite3"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    extra = f'backup_dir = "{blocker}/backups"'
    daemon = start_daemon(MOCK_CONFIG + LEDGER.format(ledger=ledger, extra=extra))
    response = _backup(daemon)
    assert response.status_code == 500, response.text
    error = response.json()["error"]
    assert error["code"] == "storage_error"
    assert f"{blocker}/backups" in error["message"] and "Not a directory" in error["message"]
    assert _writes(daemon, "error") == 1
    assert not [line for line in daemon.logs() if line["level"] == "ERROR"]
    assert httpx.get(daemon.url + "/health").json()["status"] == "healthy"


def test_only_the_master_key_may_back_up(start_daemon: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "usage.sqlite3"
    daemon = start_daemon(MOCK_CONFIG + LEDGER.format(ledger=ledger, extra=""))
    assert httpx.post(daemon.url + "/admin/usage/backup").status_code == 401
    assert not (tmp_path / "backups").exists()
