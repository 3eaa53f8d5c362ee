"""JSON log lines on stdout: one object per line, nothing else on stdout.

Built on the standard ``logging`` module so that library messages (Granian's, httpx's)
come out in the same shape. A record's ``extra`` fields become top-level keys; the
formatter never sees request bodies, keys or headers because callers never pass them.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextvars import ContextVar
from typing import Any

import msgspec

__all__ = ["configure_logging", "get_logger", "register_secrets", "request_id_var"]

# The id of the request being served, set by the request middleware: every line logged
# while serving it (an upstream attempt, a circuit change) carries its ``request_id``.
request_id_var: ContextVar[str | None] = ContextVar("fkllm_request_id", default=None)

_encode = msgspec.json.Encoder().encode
_STANDARD = frozenset(
    logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
_LEVELS = {"WARN": "WARNING", "CRITICAL": "ERROR", "FATAL": "ERROR"}


_second = -1
_second_text = ""


def _timestamp(created: float) -> str:
    """RFC 3339 UTC with milliseconds; the part up to the second is formatted once a second.

    Every request writes a line, so this runs per request: the cached prefix makes it
    about a fifth of a ``datetime`` round trip.
    """
    global _second, _second_text
    second = int(created)
    if second != _second:
        _second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = second
    return f"{_second_text}.{int((created - second) * 1000):03d}Z"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
    if "request_id" not in extras:
        request_id = request_id_var.get()
        if request_id is not None:
            extras["request_id"] = request_id
    return extras


class JSONFormatter(logging.Formatter):
    """``{"ts", "level", "msg", "logger", ...extra}``; exceptions as one ``error`` string.

    ``with_pid`` adds the process id to every line (several workers share one stdout).
    """

    def __init__(self, with_pid: bool = False) -> None:
        super().__init__()
        self.with_pid = with_pid

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": _LEVELS.get(record.levelname, record.levelname),
            "msg": record.getMessage(),
            "logger": record.name,
        }
        if self.with_pid:
            line["pid"] = os.getpid()
        line.update(_extras(record))
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line["error"] = f"{type(exc).__name__}: {exc}"
            line["traceback"] = self.formatException(record.exc_info)
        return _encode(line).decode()


class TextFormatter(logging.Formatter):
    """Human lines for a terminal: time, level, message, then key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        pairs = " ".join(f"{k}={v}" for k, v in _extras(record).items() if v is not None)
        text = f"{when} {record.levelname:<7} {record.getMessage()}"
        if pairs:
            text += "  " + pairs
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


# Secret values (keys, tokens) that must never reach a log line. Callers never log them
# on purpose; this catches the accidents (an exception message quoting a URL with a
# key in it, a provider echoing a header). Short values are skipped: scrubbing a
# three-letter "key" would mangle ordinary words.
_SECRETS: set[str] = set()
_MIN_SECRET_LENGTH = 8
_MAX_SECRETS = 256


def register_secrets(values: set[str]) -> None:
    """Add ``values`` to the strings replaced by ``<redacted>`` in every log line.

    Old values stay (a rotated-out key is still a secret) up to a bound.
    """
    for value in values:
        if len(value) >= _MIN_SECRET_LENGTH and len(_SECRETS) < _MAX_SECRETS:
            _SECRETS.add(value)


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``<redacted>``."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "<redacted>")
    return text


class _ScrubbingHandler(logging.StreamHandler):
    """A stream handler whose every formatted line passes through ``scrub``."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure_logging(level: str = "INFO", fmt: str = "json", *, with_pid: bool = False) -> None:
    """Send every logger's records to stdout in the chosen format (idempotent)."""
    # No line we print names the calling file and line, the thread or the process name:
    # the logging HOWTO's "Optimization" switches stop collecting them for every record
    # (the caller's file and line alone meant walking the stack once per request).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.logProcesses = False
    handler = _ScrubbingHandler(sys.stdout)
    handler.setFormatter(JSONFormatter(with_pid) if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Library chatter stays at WARNING unless we are debugging.
    quiet = logging.WARNING if level != "DEBUG" else logging.DEBUG
    for name in ("httpx", "httpcore", "asyncio"):
        logging.getLogger(name).setLevel(quiet)
    # Granian installs its own plain-text handlers; route it through ours instead. Its
    # INFO and WARNING lines ("experimental", "Listening at") repeat what we log ourselves.
    for name in ("_granian", "granian", "granian.access"):
        granian = logging.getLogger(name)
        granian.handlers.clear()
        granian.propagate = True
        granian.setLevel(logging.ERROR if level != "DEBUG" else logging.DEBUG)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"fkllmproxy.{name}")
