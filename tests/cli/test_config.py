"""``fkllm config get|put|restore|backups`` against a running daemon: the text, the
ETag for the next write, what changed, and an exit code a script can act on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import MASTER_KEY, MOCK_CONFIG, fkllm, free_port

SECRET = "sk-inline-provider-secret-7777"
CONFIG = (
    "# kept comment\n"
    + MOCK_CONFIG
    + f"""
[[providers]]
name = "upstream"
type = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "{SECRET}"
"""
)
NEW_MODEL = '\n[[models]]\nname = "second"\ntargets = [{ provider = "mock", model = "m2" }]\n'


def _config(daemon: Any, *args: str) -> Any:
    return fkllm("config", *args, "--url", daemon.url, "--key", MASTER_KEY, timeout=90)


def test_get_put_backups_and_restore(start_daemon: Any, tmp_path: Path) -> None:
    """get prints the redacted file and keeps its ETag; put with it writes and says what
    changed; backups lists the old version; restore puts it back."""
    daemon = start_daemon(CONFIG)
    etag_file = tmp_path / "etag"
    got = _config(daemon, "get", "--etag-file", str(etag_file))
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith("# kept comment\n") and SECRET not in got.stdout
    assert 'api_key = "<redacted>"' in got.stdout
    etag = etag_file.read_text().strip()
    assert etag.startswith('"') and etag.endswith('"')
    edited = tmp_path / "config.toml"
    edited.write_text(got.stdout + NEW_MODEL)
    put = _config(daemon, "put", str(edited), "--if-match", etag)
    assert put.returncode == 0, put.stderr
    assert "models added: second" in put.stdout and "reload: reloaded" in put.stdout
    assert daemon.config_path.read_text() == CONFIG + NEW_MODEL  # the secret kept
    listed = _config(daemon, "backups", "--json")
    assert listed.returncode == 0, listed.stderr
    (backup,) = json.loads(listed.stdout)["backups"]
    assert backup["name"] in _config(daemon, "backups").stdout
    restored = _config(daemon, "restore", backup["name"])
    assert restored.returncode == 0, restored.stderr
    assert "models removed: second" in restored.stdout
    assert daemon.config_path.read_text() == CONFIG
    as_json = _config(daemon, "get", "--json")
    assert json.loads(as_json.stdout)["etag"] == etag  # the same bytes, the same tag


def test_refusals_have_their_own_exit_codes(start_daemon: Any, tmp_path: Path) -> None:
    """Invalid: 1 with every problem; stale If-Match: 4; no such backup or not the master
    key: 1; each a plain message on stderr, the file untouched."""
    daemon = start_daemon(CONFIG)
    text = _config(daemon, "get").stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(text + "\n[rate_limit]\ncapacity = -1\nbogus = 1\n")
    invalid = _config(daemon, "put", str(bad))
    assert invalid.returncode == 1
    assert "nothing was written" in invalid.stderr
    assert "rate_limit.capacity" in invalid.stderr and "rate_limit.bogus" in invalid.stderr
    stale = tmp_path / "stale.toml"
    stale.write_text(text + NEW_MODEL)
    old_etag = '"00000000000000000000000000000000"'
    refused = _config(daemon, "put", str(stale), "--if-match", old_etag)
    assert refused.returncode == 4
    assert refused.stderr.startswith("fkllm: The config file has changed since it was read")
    assert refused.stderr.count("\n") == 1
    missing = _config(daemon, "restore", "config.toml.20260101T000000000000Z.bak")
    assert missing.returncode == 1 and "No backup called" in missing.stderr
    wrong_key = fkllm("config", "get", "--url", daemon.url, "--key", "sk-not-the-master")
    assert wrong_key.returncode == 1 and wrong_key.stderr.startswith("fkllm: ")
    assert "Traceback" not in wrong_key.stderr
    no_file = _config(daemon, "put", str(tmp_path / "nowhere.toml"))
    assert no_file.returncode == 1 and "cannot read" in no_file.stderr
    assert daemon.config_path.read_text() == CONFIG


def test_read_only_mode_is_exit_3(start_daemon: Any, tmp_path: Path) -> None:
    """[admin] config_writable = false: put and restore exit 3 naming the setting."""
    config = "[admin]\nconfig_writable = false\n" + CONFIG
    daemon = start_daemon(config)
    edited = tmp_path / "c.toml"
    edited.write_text(_config(daemon, "get").stdout + NEW_MODEL)
    backup = f"{daemon.config_path.name}.20260101T000000000000Z.bak"
    (daemon.config_path.parent / backup).write_text(CONFIG)
    for args in (("put", str(edited)), ("restore", backup)):
        refused = _config(daemon, *args)
        assert refused.returncode == 3, refused.stderr
        assert "config_writable = false" in refused.stderr
    assert daemon.config_path.read_text() == config


def test_an_unreachable_daemon_is_exit_2() -> None:
    """Nothing listening: one line naming the address, exit 2, as status and metrics."""
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("get",), ("backups",), ("restore", "x")):
        result = fkllm("config", *args, "--url", url, "--key", MASTER_KEY)
        assert result.returncode == 2
        assert result.stderr == f"fkllm: cannot reach fkllmproxy at {url} (connection refused)\n"
