"""Complete the CycloneDX SBOM cyclonedx-py wrote from requirements.lock.

    python deploy/sbom.py SBOM PROGRAM FROZEN_DIR [--image]

cyclonedx-py knows the Python packages (name, version, the lock's hashes). What else is
inside the file it cannot see, so this adds: the root component's version and SHA-256
(the file itself), the CPython the program carries, PyInstaller (its bootloader runs
first), zlib (linked into the launcher) and every shared library PyInstaller copied from
this machine, each as the Debian package it came from (``dpkg -S``); in the Debian 11
build root (deploy/buildroot.sh), also the Debian source packages of the CPython and the
OpenSSL compiled there (the root's DEBIAN-SOURCE file). With ``--image`` it
also adds what deploy/rootfs.sh puts beside the program: glibc and the CA certificates.
Rewrites SBOM in place; standard library only.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

IMAGE_PACKAGES = ("libc6", "ca-certificates")
SYSTEM_LIBRARY_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu")


def _deb(package: str) -> dict[str, Any] | None:
    """The component for an installed Debian package, or None where dpkg does not know it."""
    try:
        version = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return {
        "type": "library",
        "bom-ref": f"deb:{package}",
        "name": package,
        "version": version,
        "purl": f"pkg:deb/debian/{package}@{version}?arch=amd64",
    }


def _owner(library: str) -> str | None:
    """The Debian package holding a shared library of this name, if any."""
    for directory in SYSTEM_LIBRARY_DIRS:
        try:
            found = subprocess.run(
                ["dpkg", "-S", f"{directory}/{library}"], capture_output=True, text=True,
                check=True,
            ).stdout  # fmt: skip
        except (OSError, subprocess.CalledProcessError):
            continue
        return found.split(":", 1)[0].strip()
    return None


def _compiled_sources() -> dict[str, str]:
    """{source package: Debian revision} of what deploy/buildroot.sh compiled for this build
    (CPython, OpenSSL), from the DEBIAN-SOURCE file beside the CPython running this; {} for
    a build on the host's own Python."""
    listing = Path(sys.base_prefix) / "DEBIAN-SOURCE"
    if not listing.is_file():
        return {}
    return dict(line.split(None, 1) for line in listing.read_text().splitlines() if line.strip())


def _source_purl(package: str, revision: str) -> str:
    return f"pkg:deb/debian/{package}@{quote(revision)}?arch=source"


def _cpython(sources: dict[str, str]) -> dict[str, Any]:
    """The CPython running this (the one frozen in), with its Debian source package if any."""
    python = ".".join(map(str, sys.version_info[:3]))
    component: dict[str, Any] = {"type": "application", "bom-ref": "cpython", "name": "cpython",
                                 "version": python, "purl": f"pkg:generic/cpython@{python}"}  # fmt: skip
    package = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    if package in sources:
        component["description"] = f"built from Debian's source package {package} {sources[package]}"
        component["purl"] = _source_purl(package, sources[package])
    return component


def complete(sbom_path: Path, program: Path, frozen: Path, image: bool) -> None:
    sbom = json.loads(sbom_path.read_text())
    init = (Path(__file__).resolve().parents[1] / "src/fkllmproxy/__init__.py").read_text()
    version = re.search(r'__version__ = "([^"]+)"', init)
    root = sbom["metadata"]["component"]
    root["version"] = version[1] if version else "unknown"
    root["hashes"] = [{"alg": "SHA-256", "content": hashlib.sha256(program.read_bytes()).hexdigest()}]
    components: list[dict[str, Any]] = sbom.setdefault("components", [])
    refs = {c.get("bom-ref") for c in components}
    sources = _compiled_sources()
    if "cpython" not in refs:  # the build's own run; --image completes that SBOM again
        components.append(_cpython(sources))
    for package, revision in sources.items():
        if not package.startswith("python") and f"deb-source:{package}" not in refs:
            components.append({"type": "library", "bom-ref": f"deb-source:{package}",
                               "name": package, "version": revision,
                               "purl": _source_purl(package, revision),
                               "description": "compiled from Debian's source package"})  # fmt: skip
    try:
        from importlib.metadata import version as installed

        pyinstaller = installed("pyinstaller")
        if "pyinstaller-bootloader" not in refs:
            components.append({"type": "application", "bom-ref": "pyinstaller-bootloader",
                               "name": "pyinstaller", "version": pyinstaller,
                               "purl": f"pkg:pypi/pyinstaller@{pyinstaller}"})  # fmt: skip
    except ImportError:
        pass
    packages = {"zlib1g"} | ({*IMAGE_PACKAGES} if image else set())
    internal = frozen / "_internal"
    for library in sorted(p.name for p in internal.glob("lib*.so*")):
        if library.startswith("libpython"):
            continue  # CPython, above
        owner = _owner(library)
        if owner:
            packages.add(owner.split(":")[0])
    known = {c.get("bom-ref") for c in components}
    for package in sorted(packages):
        component = _deb(package)
        if component and component["bom-ref"] not in known:
            components.append(component)
    sbom_path.write_text(json.dumps(sbom, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--image"]
    if len(arguments) != 3:
        raise SystemExit(__doc__)
    complete(Path(arguments[0]), Path(arguments[1]), Path(arguments[2]), "--image" in sys.argv)
