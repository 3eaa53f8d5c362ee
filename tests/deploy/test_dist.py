"""``dist/fkllmproxy``: one file that serves on a machine with nothing but python3.

The file is built by ``make dist`` in this test run (once per session, see the
``dist_binary`` fixture) and run outside the virtualenv, by its shebang, with an empty
environment, from a directory holding only its config.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY
from tests.deploy.bare import BareRun, copy_program, system_python_for

pytestmark = pytest.mark.timeout(900)  # the first test may build the file (~1 min)


@pytest.fixture(scope="module")
def shiv_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the program unpacks, kept across this module's runs like the unit's cache."""
    return tmp_path_factory.mktemp("shiv-root")


@pytest.fixture
def program(dist_binary: Path) -> Path:
    if system_python_for(dist_binary) is None:
        pytest.skip(f"the system has no {dist_binary.read_bytes()[:40]!r} interpreter")
    return dist_binary


def test_is_one_executable_file(program: Path) -> None:
    """A zipapp behind a shebang naming the Python its wheels were built for."""
    assert os.access(program, os.X_OK)
    first_line = program.read_bytes()[:100].split(b"\n", 1)[0]
    assert first_line.startswith(b"#!/usr/bin/env python3.")
    with zipfile.ZipFile(program) as archive:
        names = archive.namelist()
    # Compiled dependencies travel inside the file.
    assert any(n.startswith("site-packages/granian/") and n.endswith(".so") for n in names)
    assert any(n.startswith("site-packages/msgspec/") and n.endswith(".so") for n in names)
    assert "site-packages/fkllmproxy/cli/__init__.py" in names
    # So do the web console's package data (templates and static files).
    for data in ("templates/layout.html", "templates/login.html", "static/console.js",
                 "static/console.css"):  # fmt: skip
        assert f"site-packages/fkllmproxy/server/ui/{data}" in names


def test_serves_a_chat_completion_with_bare_python3(
    program: Path, tmp_path: Path, shiv_root: Path
) -> None:
    """Copied into an empty directory and run with PATH=/usr/bin:/bin only: it serves."""
    workdir = tmp_path / "clean"
    workdir.mkdir()
    copy_program(program, workdir / "fkllmproxy")
    run = BareRun(workdir / "fkllmproxy", workdir, shiv_root)
    try:
        assert run.wait_healthy()["status"] == "healthy"
        interpreter = os.readlink(f"/proc/{run.process.pid}/exe")
        assert interpreter.startswith(("/usr/bin/", "/bin/")), interpreter
        client = openai.OpenAI(base_url=run.url + "/v1", api_key=MASTER_KEY, timeout=30)
        answer = client.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "Hello from a bare python"}]
        )
        assert "Hello from a bare python" in (answer.choices[0].message.content or "")
        stream = client.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        login = httpx.get(run.url + "/ui/login", timeout=10)
        assert login.status_code == 200 and "Master key" in login.text
        assert httpx.get(run.url + "/ui/static/console.js", timeout=10).status_code == 200
    finally:
        assert run.stop() == 0, run.stderr_text()
    # It unpacked itself where SHIV_ROOT said, nowhere else.
    assert any(shiv_root.glob("fkllmproxy_*/site-packages/fkllmproxy"))
    assert not (workdir / "home" / ".shiv").exists()


def _variant(source: Path, destination: Path, version: str) -> None:
    """A copy of the program reporting another version: a stand-in for the next release.

    Rewrites the package's ``__version__`` and the archive's build id (a real rebuild
    changes it too: it names the directory the program unpacks into).
    """
    shebang = source.read_bytes()[:200].split(b"\n", 1)[0] + b"\n"
    with zipfile.ZipFile(source) as old, destination.open("wb") as out:
        out.write(shebang)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as new:
            for info in old.infolist():
                data = old.read(info)
                if info.filename == "site-packages/fkllmproxy/__init__.py":
                    data = re.sub(
                        rb'__version__ = "([^"]+)"',
                        rb'__version__ = "\1+' + version.encode() + b'"',
                        data,
                    )
                elif info.filename == "environment.json":
                    environment = json.loads(data)
                    environment["build_id"] = hashlib.sha256(version.encode()).hexdigest()
                    data = json.dumps(environment).encode()
                new.writestr(info, data)
    destination.chmod(0o755)


def test_upgrade_and_rollback_by_copying_files(
    program: Path, tmp_path: Path, shiv_root: Path
) -> None:
    """The runbook's procedure, literally: stop, back up, copy new, start; roll back.

    ``bin/`` stands in for /usr/local/bin and starting/stopping the process for
    ``systemctl start/stop``; the cache directory persists across runs like the unit's.
    """
    bindir, workdir = tmp_path / "bin", tmp_path / "srv"
    bindir.mkdir()
    workdir.mkdir()
    installed, backup = bindir / "fkllmproxy", bindir / "fkllmproxy.backup"
    new_release = tmp_path / "build" / "fkllmproxy"
    new_release.parent.mkdir()
    _variant(program, new_release, "next")

    copy_program(program, installed)
    service = BareRun(installed, workdir, shiv_root)
    old_version = service.wait_healthy()["version"]
    assert "next" not in str(old_version)

    # 1. stop  2. back up the current program  3. copy the new one in  4. start
    assert service.stop() == 0
    copy_program(installed, backup)
    copy_program(new_release, installed)
    service = BareRun(installed, workdir, shiv_root)
    assert service.wait_healthy()["version"] == f"{old_version}+next"

    # 5. roll back: stop, copy the backup over, start
    assert service.stop() == 0
    copy_program(backup, installed)
    service = BareRun(installed, workdir, shiv_root)
    assert service.wait_healthy()["version"] == old_version
    assert service.stop() == 0
    assert installed.read_bytes() == program.read_bytes()
