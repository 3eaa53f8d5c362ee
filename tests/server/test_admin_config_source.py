"""``/admin/config/source``: the file shown redacted, replaced validated, atomic, backed up
and applied, refused over a newer version, restored from a backup."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import (
    MASTER_KEY,
    MOCK_CONFIG,
    ChatLoad,
    RunningDaemon,
    free_port,
    prometheus_samples,
    read_only_mount,
    sample_sum,
    wait_until,
)

FORM = {"content-type": "application/x-www-form-urlencoded"}
TEAM_KEY = "sk-team-config-test-0001"
PROVIDER_KEY = "sk-inline-provider-secret-4242"
CONFIG = (
    "# the operator's own comment, kept\n"
    + MOCK_CONFIG
    + f"""
[[providers]]
name = "upstream"
type = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "{PROVIDER_KEY}"  # inline secret

[[auth.keys]]
name = "team"
key_sha256 = "{hashlib.sha256(TEAM_KEY.encode()).hexdigest()}"
"""
)
NEW_MODEL = """
[[models]]
name = "second"
targets = [{ provider = "mock", model = "mock-2" }]
"""


def _source(daemon: Any) -> httpx.Response:
    response = httpx.get(daemon.url + "/admin/config/source", headers=daemon.headers())
    assert response.status_code == 200, response.text
    return response


def _put(daemon: Any, text: str, etag: str | None = None) -> httpx.Response:
    headers = daemon.headers()
    if etag is not None:
        headers["if-match"] = etag
    return httpx.put(
        daemon.url + "/admin/config/source", content=text.encode(), headers=headers, timeout=30
    )


def _chat(daemon: Any, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(timeout=10) as client:  # a fresh connection: any worker may answer
        return client.post(daemon.url + "/v1/chat/completions", json=body, headers=daemon.headers())


def _workers(supervisor: int) -> set[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return {int(pid) for pid in children}


def test_get_redacts_secrets_and_keeps_comments(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG)
    response = _source(daemon)
    body = response.json()
    assert PROVIDER_KEY not in response.text
    assert 'api_key = "<redacted>"  # inline secret' in body["text"]
    assert body["text"].startswith("# the operator's own comment, kept\n")
    assert hashlib.sha256(TEAM_KEY.encode()).hexdigest() in body["text"]  # a hash is shown
    assert response.headers["etag"] == body["etag"]
    assert "<redacted>" in body["note"]


def test_put_replaces_the_file_backs_up_and_reloads(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG)
    os.chmod(daemon.config_path, 0o640)
    assert _chat(daemon, "second").status_code == 404
    read = _source(daemon).json()
    inode = daemon.config_path.stat().st_ino
    with ChatLoad(daemon, threads=2) as load:
        response = _put(daemon, read["text"] + NEW_MODEL, read["etag"])
    assert load.statuses and set(load.statuses) == {200}  # no request dropped
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["diff"]["models"] == {"added": ["second"], "removed": [], "changed": []}
    assert body["diff"]["providers"] == {"added": [], "removed": [], "changed": []}
    assert body["diff"]["settings"] == []
    assert body["reload"]["status"] == "reloaded"
    on_disk = daemon.config_path.read_text()
    assert on_disk == CONFIG + NEW_MODEL  # the redacted secret kept, comments kept
    info = daemon.config_path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640 and info.st_ino != inode  # renamed over
    backup = daemon.config_path.parent / body["backup"]
    assert backup.read_text() == CONFIG and stat.S_IMODE(backup.stat().st_mode) == 0o640
    assert _chat(daemon, "second").status_code == 200
    assert response.headers["etag"] == _source(daemon).json()["etag"] == body["etag"]


def test_put_invalid_lists_every_problem_and_writes_nothing(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG)
    bad = CONFIG + '\n[rate_limit]\ncapacity = -1\nbogus = 1\n\n[[models]]\nname = "x"\n'
    bad += 'targets = [{ provider = "nowhere", model = "m" }]\n'
    response = _put(daemon, bad)
    assert response.status_code == 422, response.text
    problems = response.json()["problems"]
    assert any("rate_limit.capacity" in p for p in problems)
    assert any("rate_limit.bogus" in p for p in problems)
    assert response.json()["error"]["code"] == "invalid_config"
    assert daemon.config_path.read_text() == CONFIG
    assert (
        httpx.get(daemon.url + "/admin/config/backups", headers=daemon.headers()).json()["backups"]
        == []
    )
    syntax = _put(daemon, "[[models]\n")
    assert syntax.status_code == 422 and "TOML syntax error" in syntax.json()["problems"][0]
    assert str(daemon.config_path) in syntax.json()["problems"][0] or "config text" in syntax.text
    assert daemon.config_path.read_text() == CONFIG


def test_cross_field_problems_are_reported(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG)
    bad = CONFIG + '\n[[models]]\nname = "x"\ntargets = [{ provider = "nowhere", model = "m" }]\n'
    response = _put(daemon, bad)
    assert response.status_code == 422
    assert any("no provider has that name" in p for p in response.json()["problems"])
    assert daemon.config_path.read_text() == CONFIG


def test_a_stale_if_match_is_refused(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG)
    read = _source(daemon).json()
    first = _put(daemon, read["text"] + NEW_MODEL, read["etag"])
    assert first.status_code == 200, first.text
    second = _put(daemon, read["text"] + "\n# another operator\n", read["etag"])
    assert second.status_code == 412
    assert second.json()["error"]["code"] == "precondition_failed"
    assert daemon.config_path.read_text() == CONFIG + NEW_MODEL


def test_a_redacted_marker_with_nothing_to_keep_is_refused(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG)
    text = CONFIG + '\n[[providers]]\nname = "new"\ntype = "openai"\napi_key = "<redacted>"\n'
    response = _put(daemon, text)
    assert response.status_code == 422
    assert "providers[name=new].api_key" in response.json()["problems"][0]
    assert daemon.config_path.read_text() == CONFIG


def test_validate_writes_nothing_and_shows_the_diff(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG)
    text = _source(daemon).json()["text"].replace('name = "upstream"', 'name = "other"')
    response = httpx.post(
        daemon.url + "/admin/config/validate", content=text.encode(), headers=daemon.headers()
    )
    assert response.status_code == 200, response.text
    diff = response.json()["diff"]
    assert diff["providers"]["added"] == ["other"] and diff["providers"]["removed"] == ["upstream"]
    assert daemon.config_path.read_text() == CONFIG


def test_restore_puts_a_backup_back_and_rotation_keeps_n(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG.replace("# the operator", "[admin]\nconfig_backups = 2\n# the"))
    original = daemon.config_path.read_text()
    for n in range(4):
        text = _source(daemon).json()["text"] + f"\n# edit {n}\n"
        assert _put(daemon, text).status_code == 200
    listed = httpx.get(daemon.url + "/admin/config/backups", headers=daemon.headers()).json()
    names = [b["name"] for b in listed["backups"]]
    assert len(names) == 2 and names == sorted(names, reverse=True)
    kept = [p.name for p in daemon.config_path.parent.iterdir() if p.name.endswith(".bak")]
    assert sorted(kept) == sorted(names)
    oldest = names[-1]
    assert (daemon.config_path.parent / oldest).read_text() == original + "\n# edit 0\n\n# edit 1\n"
    restored = httpx.post(
        daemon.url + "/admin/config/restore", json={"name": oldest}, headers=daemon.headers()
    )
    assert restored.status_code == 200, restored.text
    assert daemon.config_path.read_text() == original + "\n# edit 0\n\n# edit 1\n"
    missing = httpx.post(
        daemon.url + "/admin/config/restore",
        json={"name": "../etc/passwd"},
        headers=daemon.headers(),
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "backup_not_found"
    malformed = httpx.post(
        daemon.url + "/admin/config/restore", content=b"{", headers=daemon.headers()
    )
    assert malformed.status_code == 400


def test_only_the_master_key_may_read_or_write(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG)
    team = {"authorization": f"Bearer {TEAM_KEY}"}
    for method, path in (
        ("GET", "/admin/config/source"),
        ("PUT", "/admin/config/source"),
        ("POST", "/admin/config/validate"),
        ("GET", "/admin/config/backups"),
        ("POST", "/admin/config/restore"),
    ):
        response = httpx.request(method, daemon.url + path, headers=team, content=b"x = 1")
        assert response.status_code == 403, (method, path)
        assert httpx.request(method, daemon.url + path).status_code == 401
    assert daemon.config_path.read_text() == CONFIG


def test_a_body_over_max_request_size_is_refused(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG, env={"APP_SERVER__MAX_REQUEST_SIZE": "2000"})
    response = _put(daemon, CONFIG + "#" * 5000)
    assert response.status_code == 413
    assert daemon.config_path.read_text() == CONFIG


def test_without_a_config_file_put_says_so(tmp_path: Path) -> None:
    """A daemon on built-in defaults and the environment only has no file to edit: 409."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    env.pop("FKLLM_CONFIG", None)
    env.update({"APP_AUTH__MASTER_KEY": MASTER_KEY, "GOOGLE_API_KEY": "fake-google-key-1"})
    empty_env = tmp_path / "env"
    empty_env.write_text("")
    command = [sys.executable, "-m", "fkllmproxy", "serve", "--port", str(port),
               "--env-file", str(empty_env)]  # fmt: skip
    log = (tmp_path / "out.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    try:

        def up() -> bool:
            try:
                return httpx.get(url + "/health", timeout=1).status_code < 500
            except httpx.HTTPError:
                return process.poll() is not None

        assert wait_until(up, 20.0) and process.poll() is None
        for method, path in (("GET", "/admin/config/source"), ("PUT", "/admin/config/source")):
            response = httpx.request(method, url + path, headers=headers, content=MOCK_CONFIG)
            assert response.status_code == 409, response.text
            assert "no config file" in response.json()["error"]["message"]
        assert not any(p.suffix == ".toml" for p in tmp_path.iterdir())
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(20)
        log.close()


def _reloads(daemon: Any) -> Counter[int]:
    """How many times each worker (pid) has logged "configuration reloaded"."""
    return Counter(
        line["pid"] for line in daemon.logs() if line.get("msg") == "configuration reloaded"
    )


def test_every_worker_gets_the_new_file(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG, args=["--workers", "2"])
    assert wait_until(lambda: len(_workers(daemon.pid)) == 2, 20.0)
    before = _workers(daemon.pid)
    earlier = _reloads(daemon)
    read = _source(daemon).json()
    with ChatLoad(daemon, threads=2) as load:
        response = _put(daemon, read["text"] + NEW_MODEL, read["etag"])
        assert response.status_code == 200, response.text
        assert response.json()["reload"]["status"] == "reloading"
        assert wait_until(lambda: all(_reloads(daemon)[pid] > earlier[pid] for pid in before), 30.0)
    assert load.statuses and set(load.statuses) == {200}, sorted(map(str, set(load.statuses)))

    def everyone_has_it() -> bool:
        try:
            return all(_chat(daemon, "second").status_code == 200 for _ in range(12))
        except httpx.HTTPError:
            return False

    assert wait_until(everyone_has_it, 30.0)
    # Every worker reloaded in place: none was restarted (a restart can drop a request).
    assert _workers(daemon.pid) == before
    assert all(_chat(daemon, "second").status_code == 200 for _ in range(8))


def test_read_only_mode_refuses_writes_and_keeps_the_file(
    start_daemon: Any, tmp_path: Path
) -> None:
    """[admin] config_writable = false: PUT and restore are 403, validate still answers;
    the ledger backup, which never touches the config file, is not covered and works."""
    config = CONFIG.replace("# the operator", "[admin]\nconfig_writable = false\n# the")
    config += f'\n[usage]\nenabled = true\npath = "{tmp_path / "usage.sqlite3"}"\n'
    daemon = start_daemon(config)
    backup = daemon.config_path.parent / f"{daemon.config_path.name}.20260101T000000000000Z.bak"
    backup.write_text(CONFIG)  # a real backup, kept from before writes were turned off
    read = _source(daemon).json()
    refused = _put(daemon, read["text"] + NEW_MODEL, read["etag"])
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "config_writes_disabled"
    assert "config_writable = false" in refused.json()["error"]["message"]
    restore = httpx.post(
        daemon.url + "/admin/config/restore", json={"name": backup.name}, headers=daemon.headers()
    )
    assert restore.status_code == 403, restore.text
    assert restore.json()["error"]["code"] == "config_writes_disabled"
    validated = httpx.post(
        daemon.url + "/admin/config/validate",
        content=(read["text"] + NEW_MODEL).encode(),
        headers=daemon.headers(),
    )
    assert validated.status_code == 200, validated.text
    assert daemon.config_path.read_text() == config
    assert [p.name for p in daemon.config_path.parent.glob("*.bak")] == [backup.name]
    ledger_copy = httpx.post(daemon.url + "/admin/usage/backup", headers=daemon.headers())
    assert ledger_copy.status_code == 200, ledger_copy.text


def test_validate_answers_on_a_read_only_config_directory(tmp_path: Path) -> None:
    """The config's directory read-only, as under ProtectSystem=strict: validate (the API
    and the console's button) checks the text and shows the diff; a write is 403."""
    etc = tmp_path / "etc"
    etc.mkdir()
    with RunningDaemon(etc, CONFIG, wrapper=read_only_mount(etc)) as daemon:
        read = _source(daemon).json()
        validated = httpx.post(
            daemon.url + "/admin/config/validate",
            content=(read["text"] + NEW_MODEL).encode(),
            headers=daemon.headers(),
        )
        assert validated.status_code == 200, validated.text
        assert validated.json()["diff"]["models"]["added"] == ["second"]
        invalid = httpx.post(
            daemon.url + "/admin/config/validate",
            content=read["text"] + "\n[rate_limit]\ncapacity = -1\n",
            headers=daemon.headers(),
        )
        assert invalid.status_code == 422
        assert any("rate_limit.capacity" in p for p in invalid.json()["problems"])
        with httpx.Client(base_url=daemon.url, timeout=10) as browser:
            browser.post("/ui/login", content=f"key={MASTER_KEY}", headers=FORM)
            token = re.search(r'name="csrf" value="([^"]+)"', browser.get("/ui/config").text)
            assert token is not None
            form = {"csrf": token.group(1), "action": "validate", "text": read["text"] + NEW_MODEL}
            console = browser.post("/ui/config/source", data=form)
            assert console.status_code == 200, console.text
            assert "models added: second" in console.text
        refused = _put(daemon, read["text"] + NEW_MODEL, read["etag"])
        assert refused.status_code == 403  # the mount is read-only indeed
        assert refused.json()["error"]["code"] == "config_not_writable"
        assert "Read-only file system" in refused.json()["error"]["message"]
    assert sorted(p.name for p in etc.iterdir() if not p.name.endswith(".log")) == sorted(
        [daemon.config_path.name, daemon.env_file.name]
    )
    assert daemon.config_path.read_text() == CONFIG


def test_every_write_is_counted_and_logged_with_who(start_daemon: Any) -> None:
    """fkllm_admin_writes_total counts each PUT and restore once by outcome (ok, invalid,
    stale, refused), in the Prometheus text and the JSON; a write's log line says who."""
    daemon = start_daemon(CONFIG)
    read = _source(daemon).json()
    assert _put(daemon, read["text"] + NEW_MODEL, read["etag"]).status_code == 200
    assert _put(daemon, read["text"] + "\n[rate_limit]\ncapacity = -1\n").status_code == 422
    assert _put(daemon, read["text"], read["etag"]).status_code == 412
    missing = httpx.post(
        daemon.url + "/admin/config/restore", json={"name": "nope.bak"}, headers=daemon.headers()
    )
    assert missing.status_code == 404
    httpx.post(
        daemon.url + "/admin/config/validate", content=read["text"], headers=daemon.headers()
    )
    samples = prometheus_samples(httpx.get(daemon.url + "/metrics/prometheus").text)
    for action, outcome in (("put", "ok"), ("put", "invalid"), ("put", "stale"),
                            ("restore", "refused")):  # fmt: skip
        counted = sample_sum(samples, "fkllm_admin_writes_total", action=action, outcome=outcome)
        assert counted == 1, (action, outcome)
    assert httpx.get(daemon.url + "/metrics").json()["admin_writes"] == {
        "put": {"invalid": 1, "ok": 1, "stale": 1},
        "restore": {"refused": 1},
    }  # validate writes nothing and is not counted
    (written,) = [line for line in daemon.logs() if line["msg"].startswith("config file written")]
    assert written["who"] == "master key" and written["diff"]["models"]["added"] == ["second"]
