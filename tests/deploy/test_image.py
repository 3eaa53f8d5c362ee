"""The container image: its root file system serves read-only, as non-root, with no Python.

``deploy/rootfs.sh`` assembles what ``deploy/Containerfile`` copies ``FROM scratch``. The
tree is run here in a chroot (read-only root, a tmpfs /tmp, /proc: what the image gets
from a container runtime), and, where podman can run containers, the image itself is
built with ``make image`` and served from.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import MASTER_KEY, MOCK_CONFIG, REPO, free_port, wait_until

pytestmark = pytest.mark.timeout(1800)  # may build the program first (see dist_binary)

CONTAINERFILE = REPO / "deploy" / "Containerfile"
ROOTFS = REPO / "deploy" / "rootfs.sh"
UID = 65532


def _instructions() -> list[tuple[str, str]]:
    lines = [line.strip() for line in CONTAINERFILE.read_text().replace("\\\n", " ").splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_containerfile_is_scratch_non_root_and_the_binary_only() -> None:
    """FROM scratch, numeric non-root USER, the program as ENTRYPOINT, cache env set."""
    instructions = _instructions()
    assert instructions[0] == ("FROM", "scratch")
    assert [i for i in instructions if i[0] == "FROM"] == [("FROM", "scratch")]
    assert ("USER", f"{UID}:{UID}") in instructions
    assert ("ENTRYPOINT", '["/usr/local/bin/fkllmproxy"]') in instructions
    env = " ".join(value for key, value in instructions if key == "ENV")
    assert "FKLLMPROXY_CACHE=/opt/fkllmproxy/cache" in env
    assert "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in env
    assert not any(key in {"RUN", "ADD"} for key, _ in instructions)  # nothing runs inside


@pytest.fixture(scope="module")
def rootfs(dist_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image") / "rootfs"
    result = subprocess.run(
        ["sh", str(ROOTFS), str(root), str(dist_binary)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return root


def test_rootfs_holds_the_program_glibc_and_no_python(rootfs: Path) -> None:
    """Nothing but the program, its unpacked tree and the C library; no interpreter."""
    files = [p for p in rootfs.rglob("*") if p.is_file()]
    outside = [p for p in files if "opt/fkllmproxy/cache" not in p.as_posix()]
    assert not [p for p in outside if p.name.startswith(("python", "libpython"))]
    libraries = {p.name for p in (rootfs / "lib/x86_64-linux-gnu").iterdir()}
    assert "libc.so.6" in libraries
    assert all(name.startswith(("libc.", "libm.", "libpthread", "libdl", "librt", "libutil",
                                "libresolv", "libnss_", "ld-linux")) for name in libraries)  # fmt: skip
    assert (rootfs / "usr/local/bin/fkllmproxy").read_bytes() == (
        REPO / "dist/fkllmproxy"
    ).read_bytes()
    assert list((rootfs / "opt/fkllmproxy/cache").glob("fkllmproxy-*/.complete"))
    assert "fkllmproxy:x:65532:65532:" in (rootfs / "etc/passwd").read_text()


def test_rootfs_serves_read_only_as_non_root_in_a_chroot(rootfs: Path, tmp_path: Path) -> None:
    """The image's tree as a container runs it: read-only /, tmpfs /tmp, uid 65532."""
    chroot, unshare = shutil.which("chroot"), shutil.which("unshare")
    if chroot is None or unshare is None:
        pytest.skip("chroot and unshare are needed (Debian packages: coreutils, util-linux)")
    config = tmp_path / "config.toml"
    config.write_text(MOCK_CONFIG)  # mounted over the image's, like the ConfigMap
    port = free_port()
    script = (
        'set -e; PATH=/usr/sbin:/usr/bin:/sbin:/bin; r="$1"; shift; mount --bind "$r" "$r"; mount -o remount,bind,ro "$r"; '
        'mount --bind "$CONFIG" "$r/etc/fkllmproxy/config.toml"; '
        'mount -t proc proc "$r/proc"; mount -t tmpfs tmpfs "$r/tmp"; '
        'PATH=/usr/local/bin exec "$@"'
    )
    environ = {"FKLLMPROXY_CACHE": "/opt/fkllmproxy/cache", "APP_AUTH__MASTER_KEY": MASTER_KEY,
               "CONFIG": str(config), "PATH": "/usr/local/bin"}  # fmt: skip
    command = [unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh",
               str(rootfs), chroot, f"--userspec={UID}:{UID}", str(rootfs),
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
        status = Path(f"/proc/{process.pid}/status").read_text()
        assert f"\nUid:\t{UID}\t" in status
        answer = httpx.post(
            url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
            json={"model": "mock", "messages": [{"role": "user", "content": "from scratch"}]},
            timeout=30,
        )
        assert answer.status_code == 200 and "from scratch" in answer.text
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        try:
            assert process.wait(30) == 0, (tmp_path / "stderr.log").read_text()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            log.close()


def _podman_run_options(podman: str) -> list[str] | None:
    """Options under which podman runs a container here, or None when it cannot."""
    candidates: list[list[str]] = [[]]
    if shutil.which("runc"):
        # Sandboxes with cgroup v1 and capped limits: runc, and limits no higher than ours.
        nofile = subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True, text=True)
        nproc = subprocess.run(["sh", "-c", "ulimit -Hu"], capture_output=True, text=True)
        n, p = (
            nofile.stdout.strip(),
            str(min(4096, int(nproc.stdout) if nproc.stdout.strip().isdigit() else 4096)),
        )
        candidates.append(["--runtime", "runc", "--ulimit", f"nofile={n}:{n}",
                           "--ulimit", f"nproc={p}:{p}"])  # fmt: skip
    for options in candidates:
        probe = subprocess.run(
            [podman, "run", "--rm", *options, "fkllmproxy-test:latest", "--version"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if probe.returncode == 0 and probe.stdout.startswith("fkllmproxy "):
            return options
    return None


def test_image_builds_and_serves_with_podman(dist_binary: Path, tmp_path: Path) -> None:
    """make image, then run it read-only as its own user: /ready answers, a chat works."""
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("podman is not installed (Debian package: podman)")
    built = subprocess.run(
        ["make", "-s", "image", "IMAGE=fkllmproxy-test", f"IMAGE_TOOL={podman}"],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    version = subprocess.run(
        [podman, "images", "--format", "{{.Tag}}", "fkllmproxy-test"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    subprocess.run([podman, "tag", f"fkllmproxy-test:{version[0]}", "fkllmproxy-test:latest"],
                   check=True)  # fmt: skip
    options = _podman_run_options(podman)
    if options is None:
        pytest.skip("podman cannot run containers in this sandbox (cgroups or limits)")
    config = tmp_path / "config.toml"
    config.write_text(MOCK_CONFIG.replace("127.0.0.1", "0.0.0.0"))
    port = free_port()
    name = f"fkllmproxy-test-{port}"
    started = subprocess.run(
        [podman, "run", "-d", "--name", name, *options, "--read-only", "--network", "host",
         "-e", f"APP_AUTH__MASTER_KEY={MASTER_KEY}",
         "-v", f"{config}:/etc/fkllmproxy/config.toml:ro",
         "fkllmproxy-test:latest", "serve", "--config", "/etc/fkllmproxy/config.toml",
         "--port", str(port)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{port}"
    try:

        def running() -> bool:
            state = subprocess.run(
                [podman, "inspect", name, "--format", "{{.State.Running}}"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            return state.stdout.strip() == "true"

        def ready() -> bool:
            try:
                return httpx.get(url + "/ready").status_code == 200
            except httpx.HTTPError:
                return not running()

        assert wait_until(ready, 90, interval=0.3) and running(), subprocess.run(
            [podman, "logs", name], capture_output=True, text=True
        ).stderr
        user = subprocess.run(
            [podman, "exec", name, "/usr/local/bin/fkllmproxy", "--version"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert user.returncode == 0
        inspect = subprocess.run(
            [podman, "inspect", name, "--format", "{{.Config.User}}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert inspect.stdout.strip() == f"{UID}:{UID}"
        answer = httpx.post(
            url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
            json={"model": "mock", "messages": [{"role": "user", "content": "in a container"}]},
            timeout=30,
        )
        assert answer.status_code == 200 and "in a container" in answer.text
    finally:
        subprocess.run([podman, "stop", "-t", "30", name], capture_output=True, timeout=60)
        code = subprocess.run(
            [podman, "inspect", name, "--format", "{{.State.ExitCode}}"],
            capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        subprocess.run([podman, "rm", "-f", name], capture_output=True, timeout=60)
    assert code == "0"
