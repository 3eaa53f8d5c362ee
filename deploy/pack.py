"""Join the launcher and a PyInstaller one-directory build into one executable file.

    python deploy/pack.py [--level N] LAUNCHER BUILD_DIR OUTPUT

The output is LAUNCHER's bytes, then BUILD_DIR as a zlib stream of records (what
``deploy/launcher.c`` unpacks), then a trailer: ``FKLLMPK1``, the archive's offset and
length (little-endian u64) and its SHA-256 in hex, which names the directory the launcher
unpacks into. Entries are written in sorted order with their permission bits only (no
owners, no times), so the same build gives the same file. ``--level`` is zlib's (9, the
default, for releases; the tests pack stand-in releases faster with 1).
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

MAGIC = b"FKLLMPK1"


def _entries(root: Path) -> Iterator[tuple[bytes, int, bytes, Path | None]]:
    """(type, mode, relative path, file to copy) for everything under root, parents first."""
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(directory)
        for name in [*dirnames, *sorted(filenames)]:
            path = base / name
            relative = path.relative_to(root).as_posix().encode()
            info = path.lstat()
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                yield b"l", mode, relative, path
            elif stat.S_ISDIR(info.st_mode):
                yield b"d", mode, relative, None
            elif stat.S_ISREG(info.st_mode):
                yield b"f", mode, relative, path
            else:
                raise SystemExit(f"pack: {path} is neither a file, a directory nor a link")


def pack(launcher: Path, build: Path, output: Path, level: int = 9) -> str:
    """Write output; returns the archive's SHA-256."""
    if not (build / "fkllmproxy").is_file():
        raise SystemExit(f"pack: {build} has no fkllmproxy program (not a PyInstaller onedir)")
    compressor = zlib.compressobj(level)
    digest = hashlib.sha256()
    temporary = output.with_name(output.name + ".tmp")
    with temporary.open("wb") as out:
        out.write(launcher.read_bytes())
        start = out.tell()

        def emit(data: bytes) -> None:
            chunk = compressor.compress(data)
            digest.update(chunk)
            out.write(chunk)

        for kind, mode, relative, source in _entries(build):
            if kind == b"l":
                assert source is not None
                data = os.readlink(source).encode()
            elif kind == b"f":
                assert source is not None
                data = source.read_bytes()
            else:
                data = b""
            emit(kind + struct.pack("<IIQ", mode, len(relative), len(data)) + relative)
            emit(data)
        emit(b"e")
        tail = compressor.flush()
        digest.update(tail)
        out.write(tail)
        length = out.tell() - start
        hexdigest = digest.hexdigest()
        out.write(MAGIC + struct.pack("<QQ", start, length) + hexdigest.encode())
    temporary.chmod(0o755)
    temporary.replace(output)
    return hexdigest


if __name__ == "__main__":
    arguments = sys.argv[1:]
    level = 9
    if arguments[:1] == ["--level"] and len(arguments) > 1:
        level, arguments = int(arguments[1]), arguments[2:]
    if len(arguments) != 3:
        raise SystemExit(__doc__)
    print(pack(Path(arguments[0]), Path(arguments[1]), Path(arguments[2]), level))
