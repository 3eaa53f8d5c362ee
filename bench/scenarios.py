"""What each target is put through, in order. Durations scale with ``--duration``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SCENARIOS", "Scenario", "select"]


@dataclass(frozen=True)
class Scenario:
    """One measurement: a kind of upstream answer, a client shape, and a size.

    ``mode`` is ``"load"`` (wrk, ``connections`` at once) or ``"sequential"`` (one
    streaming request after another, timing the first and last byte). A scenario with
    ``plain`` set repeats that plain-HTTP scenario against the upstream over TLS (group
    ``"tls"``); the report shows the two side by side.
    """

    id: str
    title: str
    kind: str
    stream: bool
    mode: str
    connections: int = 1
    count: int = 0
    group: str = "fixed"
    ideal_s: float = 0.0  # for slow upstreams: how long one request takes at best
    api: str = "chat"  # the client's API: "chat" (Chat Completions) or "responses"
    plain: str = ""  # for a TLS scenario: the id of the plain-HTTP one it repeats


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("json_c1", "fixed completion, c=1", "json", False, "load", 1),
    Scenario("json_c16", "fixed completion, c=16", "json", False, "load", 16),
    Scenario("json_c64", "fixed completion, c=64", "json", False, "load", 64),
    Scenario("sse_c16", "fixed 20-chunk stream, c=16", "sse", True, "load", 16),
    Scenario(
        "responses_sse_c16",
        "Responses stream from a 20-chunk chat stream, c=16",
        "sse",
        True,
        "load",
        16,
        api="responses",
    ),
    Scenario(
        "ttfb_sse", "stream, one at a time", "sse", True, "sequential", count=400, group="stream"
    ),
    Scenario(
        "ttfb_paced",
        "paced stream (10 ms gaps), one at a time",
        "paced",
        True,
        "sequential",
        count=60,
        group="stream",
    ),
    Scenario(
        "slow_c256", "500 ms upstream, c=256", "slow", False, "load", 256, group="slow", ideal_s=0.5
    ),
    Scenario(
        "slow_c1024",
        "500 ms upstream, c=1024",
        "slow",
        False,
        "load",
        1024,
        group="slow",
        ideal_s=0.5,
    ),
    Scenario(
        "slow_sse_c256",
        "500 ms + 20 chunks 25 ms apart, c=256",
        "slow_sse",
        True,
        "load",
        256,
        group="slow",
        ideal_s=0.5 + 19 * 0.025,
    ),
    Scenario(
        "json_tls_c64",
        "fixed completion, upstream over TLS, c=64",
        "json_tls",
        False,
        "load",
        64,
        group="tls",
        plain="json_c64",
    ),
    Scenario(
        "slow_tls_c1024",
        "500 ms upstream over TLS, c=1024",
        "slow_tls",
        False,
        "load",
        1024,
        group="tls",
        ideal_s=0.5,
        plain="slow_c1024",
    ),
)


def select(ids: list[str] | None) -> list[Scenario]:
    """The scenarios named in ``ids`` (all when empty); ``ValueError`` names unknown ones."""
    if not ids:
        return list(SCENARIOS)
    known = {s.id: s for s in SCENARIOS}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; known: {sorted(known)}")
    return [known[i] for i in ids]
