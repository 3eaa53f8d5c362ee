"""The supply chain: hash-pinned locks, the build installing only them, SBOM and checksums.

``requirements.lock`` pins what ships (the runtime dependencies in pyproject.toml) and
``requirements-build.lock`` the freezer; both carry every file's SHA-256 and ``make dist``
installs from them with ``--require-hashes``, so a tampered or re-uploaded release of any
dependency fails the build instead of landing in the binary.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import tomllib
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

pytestmark = pytest.mark.timeout(1800)  # the SBOM tests may build the program first

LOCK = REPO / "requirements.lock"
BUILD_LOCK = REPO / "requirements-build.lock"


def pins(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) for every requirement in a lock file."""
    text = re.sub(r"\s*\\\n\s*", " ", lock.read_text())
    found: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement, *options = line.split()
        name, _, version = requirement.partition("==")
        assert version, f"{lock.name}: {requirement} is not pinned with =="
        hashes = [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=")]
        assert options == [f"--hash=sha256:{h}" for h in hashes], line
        found[canonicalize_name(name)] = (version, hashes)
    return found


@pytest.mark.parametrize("lock", [LOCK, BUILD_LOCK], ids=lambda p: p.name)
def test_every_requirement_is_pinned_with_hashes(lock: Path) -> None:
    locked = pins(lock)
    assert locked
    for name, (_, hashes) in locked.items():
        assert hashes, f"{name} has no --hash"
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name


def test_lock_covers_every_runtime_dependency_within_its_range() -> None:
    """pyproject.toml's dependencies (and extras they pull) are all in the lock, in range."""
    locked = pins(LOCK)
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for spec in dependencies:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is missing from requirements.lock: run make lock"
        assert requirement.specifier.contains(locked[name][0], prereleases=True), (
            f"{name}=={locked[name][0]} is outside {requirement.specifier}: run make lock"
        )
        for extra in requirement.extras:  # redis[hiredis], pyjwt[crypto]
            for pulled in _pulled_by_extra(requirement.name, extra):
                assert pulled in locked, f"{pulled} ({spec}) is missing: run make lock"


def _pulled_by_extra(distribution: str, extra: str) -> list[str]:
    """The packages ``distribution[extra]`` adds, from its installed metadata."""
    pulled = []
    for line in importlib.metadata.requires(distribution) or []:
        requirement = Requirement(line)
        if requirement.marker is not None and requirement.marker.evaluate({"extra": extra}):
            pulled.append(canonicalize_name(requirement.name))
    assert pulled, f"{distribution}[{extra}] adds nothing: is the extra misspelt?"
    return pulled


def test_lock_is_what_the_tests_run_against() -> None:
    """The binary ships the versions this virtualenv tested; a drift says: make lock."""
    for name, (version, _) in pins(LOCK).items():
        try:
            have = installed_version(name)
        except Exception:
            pytest.fail(f"{name} is locked but not installed here")
        assert have == version, f"{name}: locked {version}, tested {have}: run make lock"


def test_the_build_installs_only_from_the_locks_with_hashes() -> None:
    makefile = (REPO / "Makefile").read_text().replace("\\\n", " ")
    install = next(line for line in makefile.splitlines() if "pip install" in line and
                   "requirements.lock" in line)  # fmt: skip
    for option in ("--require-hashes", "--no-deps", "--only-binary :all:",
                   "-r requirements.lock", "-r requirements-build.lock"):  # fmt: skip
        assert option in install, option
    assert "pyinstaller" in pins(BUILD_LOCK)


def test_sha256sums_verifies_the_build(dist_binary: Path) -> None:
    """The runbook's check before copying: sha256sum -c in dist/ passes."""
    sha256sum = shutil.which("sha256sum")
    if sha256sum is None:
        pytest.skip("sha256sum is not installed (Debian package: coreutils)")
    result = subprocess.run(
        [sha256sum, "-c", "SHA256SUMS"], cwd=dist_binary.parent, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fkllmproxy: OK" in result.stdout and "fkllmproxy.cdx.json: OK" in result.stdout


def test_sbom_names_every_locked_package_and_the_file(dist_binary: Path) -> None:
    """CycloneDX JSON: the lock's packages at their versions, CPython, the file's SHA-256."""
    sbom = json.loads((dist_binary.parent / "fkllmproxy.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    root = sbom["metadata"]["component"]
    assert root["name"] == "fkllmproxy" and root["version"]
    digest = hashlib.sha256(dist_binary.read_bytes()).hexdigest()
    assert root["hashes"] == [{"alg": "SHA-256", "content": digest}]
    components = {canonicalize_name(c["name"]): c for c in sbom["components"]}
    for name, (version, _) in pins(LOCK).items():
        assert components[name]["version"] == version, name
    assert "cpython" in components and "pyinstaller" in components


def test_accepted_vulnerabilities_file_is_ids_with_reasons() -> None:
    for line in (REPO / "deploy" / "audit-accepted.txt").read_text().splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            vulnerability, _, reason = entry.partition(" ")
            assert re.fullmatch(r"(GHSA|PYSEC|CVE|OSV)-[\w-]+", vulnerability), entry
            assert reason.strip(), f"{vulnerability}: say why it is accepted"
