"""``dist/fkllmproxy``: one file that serves on a machine with no Python at all.

The file is built by ``make dist`` in this test run (once per session, see the
``dist_binary`` fixture; make skips it when nothing changed) and run outside the
virtualenv, with an empty environment, from a directory holding only its config, in a
mount namespace where every Python on this machine is hidden (``hide_python.sh``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import py_compile
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY, REPO
from tests.deploy.bare import BareRun, copy_program

pytestmark = pytest.mark.timeout(1800)  # the first test may build the file (see dist_binary)

HIDE_PYTHON = Path(__file__).with_name("hide_python.sh")
TRAILER = struct.Struct("<8sQQ64s")


def trailer(program: Path) -> tuple[int, int, str]:
    """(archive offset, archive length, digest) from the end of the file."""
    data = program.read_bytes()[-TRAILER.size :]
    magic, start, length, digest = TRAILER.unpack(data)
    assert magic == b"FKLLMPK1"
    return start, length, digest.decode()


def unpacked(cache: Path, program: Path) -> Path:
    return cache / f"fkllmproxy-{trailer(program)[2][:16]}"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the program unpacks, kept across this module's runs like the unit's cache."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def no_python() -> list[str]:
    """The command prefix hiding every Python, checked: python3 does not run under it."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed (Debian package: util-linux)")
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", str(HIDE_PYTHON), "--"]
    probe = subprocess.run(
        [*prefix, "/bin/true"], capture_output=True, text=True, timeout=60, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.strip()}")
    for python in ("python3", "python", f"python3.{sys.version_info[1]}", sys.executable):
        found = subprocess.run(
            [*prefix, "sh", "-c", f'PATH=/usr/local/bin:/usr/bin:/bin; "{python}" -c 1'],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert found.returncode != 0, f"{python} still runs with Python hidden"
    return prefix


def test_is_one_executable_file_needing_only_the_c_library(dist_binary: Path) -> None:
    """An ELF launcher linked to libc alone, with the frozen program appended."""
    data = dist_binary.read_bytes()
    assert data[:4] == b"\x7fELF"
    start, length, digest = trailer(dist_binary)
    assert start + length + TRAILER.size == len(data)
    assert len(digest) == 64
    ldd = shutil.which("ldd")
    if ldd is not None:
        libraries = subprocess.run(
            [ldd, str(dist_binary)], capture_output=True, text=True, check=True
        ).stdout
        names = {line.split()[0] for line in libraries.splitlines() if line.strip()}
        assert names <= {"linux-vdso.so.1", "libc.so.6", "/lib64/ld-linux-x86-64.so.2"}, names
    sums = (REPO / "dist" / "SHA256SUMS").read_text().split()
    assert sums[1] == "fkllmproxy"
    assert sums[0] == hashlib.sha256(data).hexdigest()


def test_serves_with_no_python_on_the_machine(
    dist_binary: Path, no_python: list[str], tmp_path: Path, cache: Path
) -> None:
    """Copied into an empty directory, every python3 hidden: it unpacks once and serves."""
    workdir = tmp_path / "clean"
    workdir.mkdir()
    copy_program(dist_binary, workdir / "fkllmproxy")
    run = BareRun(workdir / "fkllmproxy", workdir, cache, prefix=no_python)
    try:
        assert run.wait_healthy()["status"] == "healthy"
        pid = run.process.pid  # what systemd would watch: the launcher exec'd in place
        tree = unpacked(cache, dist_binary)
        assert Path(f"/proc/{pid}/exe").resolve() == (tree / "fkllmproxy").resolve()
        interpreters = {
            line.split()[-1]
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
            if "libpython" in line
        }
        assert interpreters and all(path.startswith(str(tree)) for path in interpreters)
        assert b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        client = openai.OpenAI(base_url=run.url + "/v1", api_key=MASTER_KEY, timeout=30)
        answer = client.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "Hello without python"}]
        )
        assert "Hello without python" in (answer.choices[0].message.content or "")
        stream = client.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        login = httpx.get(run.url + "/ui/login", timeout=10)
        assert login.status_code == 200 and "Master key" in login.text
        assert httpx.get(run.url + "/ui/static/console.js", timeout=10).status_code == 200
        run.process.send_signal(signal.SIGHUP)  # a reload keeps the process
        assert run.wait_healthy()["status"] == "healthy" and run.process.pid == pid
    finally:
        assert run.stop() == 0, run.stderr_text()
    # It unpacked where FKLLMPROXY_CACHE said, complete, and nowhere else.
    assert (unpacked(cache, dist_binary) / ".complete").exists()
    assert not list(cache.glob(".unpacking-*"))
    assert not (workdir / "home" / ".cache").exists()


def test_a_file_without_its_archive_says_so(dist_binary: Path, tmp_path: Path) -> None:
    """A truncated copy (an interrupted download) exits with a clear message, no crash."""
    broken = tmp_path / "fkllmproxy"
    broken.write_bytes(dist_binary.read_bytes()[: trailer(dist_binary)[0] + 1000])
    broken.chmod(0o755)
    result = subprocess.run(
        [str(broken), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"FKLLMPROXY_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 71
    assert result.stderr.startswith("fkllmproxy: this file carries no program")


def test_a_relative_cache_path_is_refused(dist_binary: Path, tmp_path: Path) -> None:
    """FKLLMPROXY_CACHE=relative/path is an error naming it, not a silent other place."""
    result = subprocess.run(
        [str(dist_binary), "--version"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"FKLLMPROXY_CACHE": "cache", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 71
    assert "FKLLMPROXY_CACHE must be an absolute path, not cache" in result.stderr
    assert not (tmp_path / "cache").exists() and not (tmp_path / ".cache").exists()


def _next_release(program: Path, cache: Path, destination: Path, version: str) -> None:
    """A rebuilt program reporting another version: a stand-in for the next release.

    Takes the unpacked build, compiles the package's ``__init__`` with a changed
    ``__version__`` into it, and packs it behind the same launcher with deploy/pack.py,
    which gives it a new digest (and so its own cache directory), as a real rebuild does.
    """
    tree = destination.parent / "tree"
    shutil.copytree(unpacked(cache, program), tree, symlinks=True)
    (tree / ".complete").unlink()
    compiled = tree / "_internal" / "fkllmproxy" / "__init__.pyc"
    if compiled.read_bytes()[:4] != importlib.util.MAGIC_NUMBER:
        pytest.skip("the build's Python is another version than the test's: cannot recompile")
    source = destination.parent / "__init__.py"
    original = (REPO / "src" / "fkllmproxy" / "__init__.py").read_text()
    source.write_text(original.replace('__version__ = "', f'__version__ = "{version}-', 1))
    py_compile.compile(str(source), cfile=str(compiled), doraise=True)
    launcher = destination.parent / "launcher"
    launcher.write_bytes(program.read_bytes()[: trailer(program)[0]])
    subprocess.run(
        [sys.executable, str(REPO / "deploy" / "pack.py"), "--level", "1", str(launcher), str(tree),
         str(destination)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip


def test_upgrade_and_rollback_by_copying_files(
    dist_binary: Path, no_python: list[str], tmp_path: Path, cache: Path
) -> None:
    """The runbook's procedure, literally, with no Python: stop, back up, copy, start; undo.

    ``bin/`` stands in for /usr/local/bin and starting/stopping the process for
    ``systemctl start/stop``; the cache directory persists across runs like the unit's.
    """
    bindir, workdir = tmp_path / "bin", tmp_path / "srv"
    bindir.mkdir()
    workdir.mkdir()
    installed, backup = bindir / "fkllmproxy", bindir / "fkllmproxy.backup"

    copy_program(dist_binary, installed)
    service = BareRun(installed, workdir, cache, prefix=no_python)
    old_version = str(service.wait_healthy()["version"])
    assert service.stop() == 0
    new_release = tmp_path / "build" / "fkllmproxy"
    new_release.parent.mkdir()
    _next_release(dist_binary, cache, new_release, "next")

    # 1. stop (done)  2. back up the current program  3. copy the new one in  4. start
    copy_program(installed, backup)
    copy_program(new_release, installed)
    service = BareRun(installed, workdir, cache, prefix=no_python)
    assert service.wait_healthy()["version"] == f"next-{old_version}"
    assert service.stop() == 0

    # 5. roll back: stop, copy the backup over, start
    copy_program(backup, installed)
    service = BareRun(installed, workdir, cache, prefix=no_python)
    assert service.wait_healthy()["version"] == old_version
    assert service.stop() == 0
    assert installed.read_bytes() == dist_binary.read_bytes()
    # Each build kept its own unpacked tree; neither was touched by the other.
    assert len(list(cache.glob("fkllmproxy-*"))) == 2
