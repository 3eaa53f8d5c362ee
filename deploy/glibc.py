"""The newest glibc each ELF file of a tree needs: its highest ``GLIBC_`` symbol version.

    python deploy/glibc.py PATH... [--max 2.31]

A program or library runs only where the C library carries every symbol version it was
linked against, so the newest ``GLIBC_2.x`` in a file's version needs (``.gnu.version_r``,
what ``objdump -T`` shows) is the oldest glibc it loads on. Prints ``GLIBC_2.x  FILE`` for
each ELF file under each PATH (a file or a directory, symlinks not followed), oldest first.
With ``--max`` it exits 1 after naming each file that needs a newer glibc than that.
``make dist`` runs it over the frozen tree and the launcher. Standard library only.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

SHT_GNU_VERNEED = 0x6FFFFFFE


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.removeprefix("GLIBC_").split("."))


def needed(data: bytes) -> set[str]:
    """The symbol versions a 64-bit little-endian ELF image needs ({} if it is none)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return set()
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
    ]
    names: set[str] = set()
    for _, kind, _, _, offset, _, link, count, _, _ in sections:
        if kind != SHT_GNU_VERNEED:
            continue
        strings = sections[link][4]
        for _ in range(count):  # Elf64_Verneed entries, each with a chain of Elf64_Vernaux
            _, aux_count, _, aux, following = struct.unpack_from("<HHIII", data, offset)
            at = offset + aux
            for _ in range(aux_count):
                _, _, _, name, aux_next = struct.unpack_from("<IHHII", data, at)
                start = strings + name
                names.add(data[start : data.index(b"\0", start)].decode())
                at += aux_next
            if not following:
                break
            offset += following
    return names


def newest_glibc(path: Path) -> str | None:
    """``GLIBC_2.x``, the newest glibc version ``path`` needs, or None (not ELF, or none)."""
    with path.open("rb") as file:
        if file.read(4) != b"\x7fELF":
            return None
    versions = [
        name
        for name in needed(path.read_bytes())
        if name.startswith("GLIBC_") and name[6:7].isdigit()
    ]
    return max(versions, key=_version) if versions else None


def scan(paths: list[Path]) -> list[tuple[str, Path]]:
    """(newest GLIBC_ version, file) for every ELF file under ``paths``, oldest first."""
    found: list[tuple[str, Path]] = []
    for root in paths:
        files = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in files:
            if path.is_file() and not path.is_symlink():
                version = newest_glibc(path)
                if version:
                    found.append((version, path))
    return sorted(found, key=lambda item: (_version(item[0]), str(item[1])))


def main(arguments: list[str]) -> int:
    limit = None
    if "--max" in arguments:
        at = arguments.index("--max")
        limit = arguments[at + 1]
        del arguments[at : at + 2]
    if not arguments or any(a.startswith("-") for a in arguments):
        raise SystemExit(__doc__)
    found = scan([Path(a) for a in arguments])
    for version, path in found:
        print(f"{version:12} {path}")
    if limit is None:
        return 0
    over = [(v, p) for v, p in found if _version(v) > _version(limit)]
    for version, path in over:
        print(f"glibc: {path} needs {version}, newer than {limit}", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
