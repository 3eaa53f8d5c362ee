"""``fkllm usage backup``: a consistent copy of the ledger while a daemon writes to it."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import MOCK_CONFIG, fkllm, wait_until


def _rows(path: Path) -> int:
    with sqlite3.connect(path, timeout=10) as connection:
        return int(connection.execute("SELECT count(*) FROM usage").fetchone()[0])


def test_backup_while_the_daemon_writes(start_daemon: Any, tmp_path: Path) -> None:
    """The copy passes integrity_check and has every row committed before it started."""
    ledger = tmp_path / "usage.sqlite3"
    daemon = start_daemon(
        MOCK_CONFIG
        + f"""
[usage]
enabled = true
path = "{ledger}"

[rate_limit]
enabled = false
"""
    )
    stop = threading.Event()
    failures: list[int] = []

    def load() -> None:
        body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                response = client.post(
                    daemon.url + "/v1/chat/completions", json=body, headers=daemon.headers()
                )
                if response.status_code != 200:
                    failures.append(response.status_code)

    writers = [threading.Thread(target=load) for _ in range(4)]
    for writer in writers:
        writer.start()
    try:
        assert wait_until(lambda: ledger.exists() and _rows(ledger) >= 200, 60.0)
        before = _rows(ledger)
        copy = tmp_path / "backups" / "usage-copy.sqlite3"
        copy.parent.mkdir()
        result = fkllm("usage", "backup", str(copy), "--db", str(ledger))
        assert result.returncode == 0, result.stderr
        assert f"to {copy}" in result.stdout
        still_writing = _rows(ledger)
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)
    assert not failures
    assert [p.name for p in copy.parent.iterdir()] == ["usage-copy.sqlite3"]  # no temp left
    with sqlite3.connect(copy) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        copied = int(connection.execute("SELECT count(*) FROM usage").fetchone()[0])
    assert copied >= before
    assert still_writing >= before


def test_backup_of_no_ledger_is_one_line(tmp_path: Path) -> None:
    """A missing ledger is a one-line error, exit 1, and nothing is written."""
    result = fkllm("usage", "backup", str(tmp_path / "copy"), "--db", str(tmp_path / "none"))
    assert result.returncode == 1 and "no usage ledger" in result.stderr
    assert list(tmp_path.iterdir()) == []
