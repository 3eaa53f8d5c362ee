"""Run a program under the syscall sandbox systemd builds from our unit, without systemd.

Used by test_sandbox.py, run by the system's python3 (it needs Debian's python3-seccomp):

    python3 sandbox_exec.py UNIT_FILE -- PROGRAM ARGS...

Reads the unit's ``SystemCallFilter=`` lines, expands the groups with
``systemd-analyze syscall-filter`` (this systemd's own definitions), and installs the
same seccomp filter systemd would: the allow list minus the ``~`` deny list, everything
else failing with ``SystemCallErrorNumber=``; ``RestrictAddressFamilies=`` as a rule on
socket(2); ``MemoryDenyWriteExecute=`` as the kernel's PR_SET_MDWE; and
``NoNewPrivileges=``. Then it execs the program, which inherits all of it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
import sys

import seccomp

PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1


def syscall_groups() -> dict[str, list[str]]:
    text = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.split()[0], [])
        elif line.startswith("    ") and current is not None:
            entry = line.strip()
            if entry and not entry.startswith("#"):
                current.append(entry)
        else:
            current = None
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    calls: set[str] = set()
    for name in names:
        calls |= expand(groups[name], groups) if name.startswith("@") else {name}
    return calls


def unit_settings(path: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    with open(path) as unit:
        for line in unit:
            line = line.strip()
            if "=" in line and not line.startswith(("#", ";", "[")):
                key, value = line.split("=", 1)
                settings.setdefault(key, []).append(value)
    return settings


def main() -> None:
    separator = sys.argv.index("--")
    settings = unit_settings(sys.argv[1])
    program = sys.argv[separator + 1 :]

    groups = syscall_groups()
    allowed: set[str] = set()
    denied: set[str] = set()
    for value in settings.get("SystemCallFilter", []):
        if value.startswith("~"):
            denied |= expand(value[1:].split(), groups)
        else:
            allowed |= expand(value.split(), groups)
    error = getattr(errno, settings.get("SystemCallErrorNumber", ["EPERM"])[-1])
    families = [getattr(socket, f) for f in settings["RestrictAddressFamilies"][-1].split()]

    libc = ctypes.CDLL(None, use_errno=True)
    if settings.get("NoNewPrivileges") == ["yes"]:
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    mdwe = settings.get("MemoryDenyWriteExecute") == ["yes"]
    if mdwe and libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit("sandbox: this kernel has no PR_SET_MDWE (Linux >= 6.3 needed)")

    rules = seccomp.SyscallFilter(defaction=seccomp.ERRNO(error))
    for call in sorted((allowed - denied) - {"socket"}):
        try:
            rules.add_rule(seccomp.ALLOW, call)
        except (RuntimeError, ValueError, OSError):
            pass  # not a system call on this architecture
    for family in families:
        rules.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, family))
    rules.add_rule(
        seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.GT, max(families))
    )
    rules.load()
    os.execv(program[0], program)


if __name__ == "__main__":
    main()
