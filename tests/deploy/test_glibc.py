"""``dist/fkllmproxy`` runs on glibc 2.31 (Debian 11, Ubuntu 20.04), its documented floor.

Two checks: ``deploy/glibc.py`` over the built file and its unpacked tree finds no ELF file
needing a newer glibc (the newest ``GLIBC_`` symbol version each needs, as ``objdump -T``
shows it), and the file serves in a chroot holding only itself and Debian 11's C library
(taken from the build root ``make dist`` froze it in: ``deploy/buildroot.sh``), no Python.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import MASTER_KEY, MOCK_CONFIG, REPO, free_port, wait_until

pytestmark = pytest.mark.timeout(1800)  # the first test may build the file (see dist_binary)

GLIBC_FLOOR = "2.31"  # CONTRACT.md: x86_64 Linux, glibc 2.31 or newer
SCAN = REPO / "deploy" / "glibc.py"


def glibc_scan(*paths: Path, limit: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCAN), *map(str, paths)]
    if limit:
        command += ["--max", limit]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def tree(dist_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The program's unpacked tree (what runs), unpacked by the file itself."""
    cache = tmp_path_factory.mktemp("cache")
    subprocess.run([str(dist_binary), "--version"], env={"FKLLMPROXY_CACHE": str(cache)},
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    (unpacked,) = cache.glob("fkllmproxy-*")
    return unpacked


def test_no_elf_file_needs_a_glibc_newer_than_the_floor(dist_binary: Path, tree: Path) -> None:
    """Launcher, libpython, extension modules, bundled libraries: all at most GLIBC_2.31."""
    result = glibc_scan(dist_binary, tree, limit=GLIBC_FLOOR)
    assert result.returncode == 0, result.stderr  # one line per file above the floor
    scanned = {Path(line.split()[1]).name for line in result.stdout.splitlines()}
    assert {"fkllmproxy", "libpython3.11.so.1.0", "libssl.so.3"} <= scanned, scanned
    assert len(scanned) > 50  # every extension module, not just the launcher


def test_a_file_above_the_floor_is_named(tree: Path) -> None:
    """Asked for an older floor, the check fails naming each file and the version it needs."""
    result = glibc_scan(tree, limit="2.17")
    assert result.returncode == 1
    assert re.search(r"^glibc: \S*libpython3\.11\.so\.1\.0 needs GLIBC_2\.\d+, newer than 2\.17$",
                     result.stderr, re.MULTILINE), result.stderr  # fmt: skip


def test_the_scan_agrees_with_objdump(tree: Path) -> None:
    """deploy/glibc.py reads the same newest GLIBC_ version as ``objdump -T`` does."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump is not installed (Debian package: binutils)")
    result = glibc_scan(tree)
    checked = 0
    for line in result.stdout.splitlines()[:: max(1, len(result.stdout.splitlines()) // 12)]:
        version, path = line.split()
        dump = subprocess.run([objdump, "-T", path], capture_output=True, text=True, check=True)
        versions = set(re.findall(r"\bGLIBC_(2(?:\.\d+)+)\b", dump.stdout))
        newest = max(versions, key=lambda v: tuple(map(int, v.split("."))))
        assert version == f"GLIBC_{newest}", path
        checked += 1
    assert checked >= 10


@pytest.fixture(scope="module")
def old_libc_root(dist_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/rootfs.sh's tree (the program and a C library, nothing else) with the Debian 11
    build root's glibc 2.31."""
    buildroot = Path(
        subprocess.run(["make", "-s", "--no-print-directory", "print-buildroot"], cwd=REPO,
                       capture_output=True, text=True, check=True).stdout.strip()
    )  # fmt: skip
    if not (buildroot / ".complete").exists():
        message = f"no Debian 11 build root at {buildroot}: make dist (DIST_GLIBC=2.31) makes it"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("glibc-2.31") / "rootfs"
    result = subprocess.run(
        ["sh", str(REPO / "deploy" / "rootfs.sh"), str(root), str(dist_binary)],
        env={**os.environ, "LIBC_ROOT": str(buildroot)},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return root


def test_serves_on_glibc_2_31_with_nothing_else(old_libc_root: Path, tmp_path: Path) -> None:
    """In a chroot holding Debian 11's C library and the file alone, it serves a chat."""
    chroot, unshare = shutil.which("chroot"), shutil.which("unshare")
    if chroot is None or unshare is None:
        pytest.skip("chroot and unshare are needed (Debian packages: coreutils, util-linux)")
    libc = (old_libc_root / "lib/x86_64-linux-gnu/libc.so.6").read_bytes()
    assert b"GNU C Library (Debian GLIBC 2.31-" in libc
    files = [p for p in old_libc_root.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.startswith(("python", "libpython"))
                and "opt/fkllmproxy/cache" not in p.as_posix()]  # fmt: skip
    config = tmp_path / "config.toml"
    config.write_text(MOCK_CONFIG)
    port = free_port()
    script = (
        'set -e; PATH=/usr/sbin:/usr/bin:/sbin:/bin; r="$1"; shift; '
        'mount --bind "$CONFIG" "$r/etc/fkllmproxy/config.toml"; '
        'mount -t proc proc "$r/proc"; mount -t tmpfs tmpfs "$r/tmp"; PATH=/usr/local/bin exec "$@"'
    )
    environ = {"FKLLMPROXY_CACHE": "/opt/fkllmproxy/cache", "APP_AUTH__MASTER_KEY": MASTER_KEY,
               "CONFIG": str(config), "PATH": "/usr/local/bin"}  # fmt: skip
    command = [unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh",
               str(old_libc_root), chroot, "--userspec=65532:65532", str(old_libc_root),
               "/usr/local/bin/fkllmproxy", "serve", "--config", "/etc/fkllmproxy/config.toml",
               "--port", str(port)]  # fmt: skip
    log = (tmp_path / "stderr.log").open("wb")
    process = subprocess.Popen(
        command, env=environ, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            try:
                return process.poll() is not None or httpx.get(url + "/ready").status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(ready, 90, interval=0.2) and process.poll() is None, (
            tmp_path / "stderr.log"
        ).read_text()
        maps = Path(f"/proc/{process.pid}/maps").read_text()
        assert f"{old_libc_root}/lib/x86_64-linux-gnu/libc.so.6" in maps  # Debian 11's, loaded
        answer = httpx.post(
            url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
            json={"model": "mock", "messages": [{"role": "user", "content": "on glibc 2.31"}]},
            timeout=30,
        )
        assert answer.status_code == 200 and "on glibc 2.31" in answer.text
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        try:
            assert process.wait(30) == 0, (tmp_path / "stderr.log").read_text()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            log.close()
