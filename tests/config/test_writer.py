"""Replacing the config file: atomic rename, same mode, a backup, the newest N kept."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

from fkllmproxy.config.writer import backups, read_backup, replace_file, staged


def _clock(start: datetime.datetime) -> list[datetime.datetime]:
    return [start + datetime.timedelta(seconds=i) for i in range(10)]


def test_replace_keeps_a_backup_with_the_mode_and_prunes(tmp_path: Path) -> None:
    """Each replacement keeps the old text beside the file; only the newest N remain."""
    path = tmp_path / "config.toml"
    path.write_text("v0\n")
    path.chmod(0o640)
    moments = _clock(datetime.datetime(2026, 12, 2, 16, 0, tzinfo=datetime.UTC))
    for i in range(1, 5):
        with staged(path, f"v{i}\n".encode()) as temp:
            assert stat.S_IMODE(temp.stat().st_mode) == 0o640
            name = replace_file(path, temp, keep=2, now=lambda i=i: moments[i])
        assert read_backup(path, name) == f"v{i - 1}\n".encode()
        assert not temp.exists()
    assert path.read_text() == "v4\n" and stat.S_IMODE(path.stat().st_mode) == 0o640
    kept = backups(path)
    assert [read_backup(path, b.name) for b in kept] == [b"v3\n", b"v2\n"]
    assert kept[0].created == "2026-12-02T16:00:04+00:00"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".bak") == sorted(
        b.name for b in kept
    )


def test_a_staged_file_not_used_is_removed(tmp_path: Path) -> None:
    """Validation that fails leaves no temporary file and the config as it was."""
    path = tmp_path / "config.toml"
    path.write_text("old\n")
    with staged(path, b"new\n") as temp:
        assert temp.read_text() == "new\n"
    assert not temp.exists() and path.read_text() == "old\n"


def test_only_our_backup_names_are_read(tmp_path: Path) -> None:
    """A name that is not one of the file's backups (a path, another file) is not opened."""
    path = tmp_path / "config.toml"
    path.write_text("x\n")
    (tmp_path / "secret").write_text("no\n")
    assert read_backup(path, "../secret") is None
    assert read_backup(path, "secret") is None
    assert read_backup(path, "config.toml.20260101T000000000000Z.bak") is None
