"""Turning ``results.json`` into the markdown report: tables, ratios, and the goals.

Pure functions over the results dictionary, so the smoke test can render a canned run.
Every figure for a gateway is shown next to the direct upstream's and, for fkllm, as
a ratio to each peer measured in the same run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["GOALS", "goal_rows", "render", "slow_figures", "tls_added"]

PEERS = ("litellm", "portkey")
Results = dict[str, Any]


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x" if a / b < 10 else f"{a / b:.0f}x"


def _signed(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}"


def _scenario(results: Results, target: str, sid: str) -> dict[str, Any] | None:
    entry = results["targets"].get(target)
    if not entry or entry.get("skipped"):
        return None
    found = entry["scenarios"].get(sid)
    if not found or "failed" in found:
        return None
    return found


def _failure(results: Results, target: str, sid: str) -> str | None:
    """Why ``target`` has no figures for ``sid`` although it ran, if it ran."""
    entry = results["targets"].get(target)
    if not entry or entry.get("skipped"):
        return None
    found = entry["scenarios"].get(sid)
    return found.get("failed") if found else None


def _failed_row(sid: str, target: str, reason: str, width: int) -> list[str]:
    return [sid, target, f"**failed**: {reason}"] + [""] * (width - 3)


def _measured(results: Results) -> list[str]:
    return [n for n, e in results["targets"].items() if not e.get("skipped")]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def slow_figures(results: Results, target: str, sid: str) -> dict[str, float] | None:
    """Achieved and ideal req/s for a slow-upstream run.

    The ideal is ``connections / delay``. wrk's own count (requests / run time) is
    quantised by the 500 ms cycle (a 10 s run fits 19 or 20 full cycles), so the share
    of the ideal is computed from the sustained rate ``connections / mean latency``
    (Little's law, valid while every connection stays busy: errors are shown beside it),
    and the raw rate is compared with the direct upstream's raw rate in the same run.
    """
    data = _scenario(results, target, sid)
    spec = next((s for s in results["scenarios"] if s["id"] == sid), None)
    if data is None or spec is None:
        return None
    delay = spec.get("ideal_s") or results["meta"].get("slow_delay_s", 0.5)
    connections = spec["connections"]
    ideal = connections / delay
    mean_s = data["latency_ms"]["mean"] / 1000
    sustained = connections / mean_s if mean_s > 0 else 0.0
    direct = _scenario(results, "direct", sid)
    return {
        "ideal": ideal,
        "raw": data["rps"],
        "sustained": sustained,
        "pct_ideal": 100 * sustained / ideal,
        "pct_direct": 100 * data["rps"] / direct["rps"] if direct and direct["rps"] else math.nan,
    }


def _added(results: Results, target: str, sid: str, key: str) -> float | None:
    data, direct = _scenario(results, target, sid), _scenario(results, "direct", sid)
    if data is None or direct is None:
        return None
    return float(data["latency_ms"][key] - direct["latency_ms"][key])


def _ttfb_added(results: Results, target: str, sid: str, key: str = "ttfb_p50") -> float | None:
    data, direct = _scenario(results, target, sid), _scenario(results, "direct", sid)
    if data is None or direct is None:
        return None
    return float(data[key] - direct[key])


def _get(results: Results, target: str, sid: str, *path: str) -> float | None:
    value: Any = _scenario(results, target, sid)
    for key in path:
        if value is None:
            return None
        value = value.get(key)
    return float(value) if value is not None else None


Goal = tuple[str, str, Callable[[Results], tuple[str, bool | None]]]


def _goal_cpu(r: Results) -> tuple[str, bool | None]:
    values = [_get(r, "fkllm", s, "cpu_ms_per_req") for s in ("json_c16", "json_c64")]
    known = [v for v in values if v is not None]
    if not known:
        return "-", None
    return " / ".join(_fmt(v, 3) for v in values) + " ms (c=16 / c=64)", max(known) < 0.5


def _goal_latency(r: Results) -> tuple[str, bool | None]:
    p50 = _added(r, "fkllm", "json_c1", "p50")
    p99 = _added(r, "fkllm", "json_c1", "p99")
    if p50 is None or p99 is None:
        return "-", None
    return f"p50 {_signed(p50, 3)} ms, p99 {_signed(p99, 3)} ms", p50 < 0.5 and p99 < 1.5


def _goal_rps(peer: str, factor: float) -> Callable[[Results], tuple[str, bool | None]]:
    def check(r: Results) -> tuple[str, bool | None]:
        ours = _get(r, "fkllm", "json_c64", "rps")
        theirs = _get(r, peer, "json_c64", "rps")
        if ours is None or theirs is None:
            return f"{peer} not measured", None
        return (
            f"{ours / theirs:.1f}x ({_fmt(ours)} vs {_fmt(theirs)} req/s)",
            ours >= factor * theirs,
        )

    return check


def _goal_ttfb(r: Results) -> tuple[str, bool | None]:
    parts, ok = [], True
    for sid in ("ttfb_sse", "ttfb_paced"):
        added = _ttfb_added(r, "fkllm", sid)
        if added is not None:
            parts.append(f"{sid.removeprefix('ttfb_')} {_signed(added, 3)} ms")
            ok = ok and added <= 1.0
    return (", ".join(parts), ok) if parts else ("-", None)


def _goal_slow(r: Results) -> tuple[str, bool | None]:
    figures = slow_figures(r, "fkllm", "slow_c1024")
    data = _scenario(r, "fkllm", "slow_c1024")
    if figures is None or data is None:
        return "-", None
    errors = data["error_count"]
    text = (
        f"{figures['pct_ideal']:.1f} % of ideal, {figures['pct_direct']:.1f} % of direct, "
        f"{errors} errors"
    )
    return text, figures["pct_ideal"] >= 95 and errors == 0


def _goal_rss(r: Results) -> tuple[str, bool | None]:
    entry = r["targets"].get("fkllm")
    if not entry or entry.get("skipped") or "rss_idle_mib" not in entry:
        return "-", None
    return f"{entry['rss_idle_mib']:.1f} MiB", entry["rss_idle_mib"] < 60


def tls_added(results: Results, target: str, sid: str, key: str = "cpu_ms_per_req") -> float | None:
    """CPU ms per request of TLS scenario ``sid`` minus its plain-HTTP scenario's, same
    run: over the whole measured run, or (``cpu_ms_per_req_steady``) its steady window."""
    spec = next((s for s in results["scenarios"] if s["id"] == sid), None)
    plain = spec.get("plain") if spec else None
    tls, base = _scenario(results, target, sid), _scenario(results, target, plain or "")
    if tls is None or base is None or tls.get(key) is None or base.get(key) is None:
        return None
    return float(tls[key] - base[key])


def _connections(data: dict[str, Any] | None) -> str:
    """Upstream connections opened per 1,000 requests: the whole measured window, then
    the steady window inside it (see ``bench/run.py``)."""
    if data is None or "upstream_connections_per_1k" not in data:
        return "-"
    steady = data.get("upstream_connections_per_1k_steady")
    return f"{_fmt(data['upstream_connections_per_1k'])} / {_fmt(steady)}"


def _tls_sids(results: Results) -> list[str]:
    return [s["id"] for s in results["scenarios"] if s.get("plain")]


def _goal_tls_cpu(r: Results) -> tuple[str, bool | None]:
    added = tls_added(r, "fkllm", "json_tls_c64")
    if added is None:
        return "-", None
    return f"{_signed(added, 3)} ms (json_tls_c64 - json_c64)", added <= 0.1


def _goal_tls_connections(r: Results) -> tuple[str, bool | None]:
    parts, ok = [], True
    for sid in _tls_sids(r):
        data = _scenario(r, "fkllm", sid)
        steady = data.get("upstream_connections_per_1k_steady") if data else None
        if data is None or steady is None:
            continue
        parts.append(
            f"{sid} {_fmt(steady)} (whole run {_fmt(data['upstream_connections_per_1k'])})"
        )
        ok = ok and steady <= 2
    return ("; ".join(parts), ok) if parts else ("-", None)


GOALS: tuple[Goal, ...] = (
    ("Gateway CPU per non-streaming request", "< 0.5 ms", _goal_cpu),
    ("Added latency at c=1", "p50 < 0.5 ms, p99 < 1.5 ms", _goal_latency),
    ("Requests/s at c=64 vs Portkey", "≥ 3x", _goal_rps("portkey", 3)),
    ("Requests/s at c=64 vs LiteLLM", "≥ 20x", _goal_rps("litellm", 20)),
    ("Streaming time to first byte over direct", "≤ 1 ms", _goal_ttfb),
    ("500 ms upstream at c=1024", "≥ 95 % of ideal, no errors", _goal_slow),
    ("Idle RSS", "< 60 MB", _goal_rss),
    ("CPU TLS adds per request at c=64 (keep-alive)", "≤ 0.1 ms", _goal_tls_cpu),
    (
        "Upstream connections opened per 1,000 requests over TLS, after warm-up",
        "≤ 2",
        _goal_tls_connections,
    ),
)


def goal_rows(results: Results) -> list[list[str]]:
    rows = []
    for name, goal, check in GOALS:
        text, ok = check(results)
        mark = "-" if ok is None else ("yes" if ok else "**no**")
        rows.append([name, goal, text, mark])
    return rows


def _load_rows(results: Results, sids: list[str]) -> list[list[str]]:
    rows = []
    for sid in sids:
        for target in _measured(results):
            data = _scenario(results, target, sid)
            if data is None:
                reason = _failure(results, target, sid)
                if reason:
                    rows.append(_failed_row(sid, target, reason, 11))
                continue
            direct = _scenario(results, "direct", sid)
            lat = data["latency_ms"]
            rows.append(
                [
                    sid,
                    target,
                    _fmt(data["rps"], 0),
                    _ratio(data["rps"], direct["rps"] if direct else None),
                    _fmt(lat["p50"]),
                    _fmt(lat["p90"]),
                    _fmt(lat["p99"]),
                    _signed(_added(results, target, sid, "p50")) if target != "direct" else "",
                    _signed(_added(results, target, sid, "p99")) if target != "direct" else "",
                    _fmt(data["cpu_ms_per_req"], 3),
                    str(data["error_count"]),
                ]
            )
    return rows


def _peer_rows(results: Results, sids: list[str]) -> list[list[str]]:
    peers = [p for p in PEERS if p in _measured(results)]
    rows = []
    for sid in sids:
        ours = _scenario(results, "fkllm", sid)
        if ours is None:
            continue
        row = [sid]
        for peer in peers:
            theirs = _scenario(results, peer, sid)
            row.append(_ratio(ours["rps"], theirs["rps"]) if theirs else "-")
            row.append(_ratio(theirs["cpu_ms_per_req"], ours["cpu_ms_per_req"]) if theirs else "-")
        rows.append(row)
    return rows


def _redis_rows(results: Results, sids: list[str]) -> list[list[str]]:
    """What the Redis backend adds per request: fkllm-redis against fkllm, same run."""
    rows = []
    for sid in sids:
        memory, redis = _scenario(results, "fkllm", sid), _scenario(results, "fkllm-redis", sid)
        if memory is None or redis is None:
            continue
        added = redis["cpu_ms_per_req"] - memory["cpu_ms_per_req"]
        rows.append(
            [
                sid,
                _fmt(memory["rps"], 0),
                _fmt(redis["rps"], 0),
                _ratio(redis["rps"], memory["rps"]),
                _fmt(memory["cpu_ms_per_req"], 3),
                _fmt(redis["cpu_ms_per_req"], 3),
                _signed(added, 3),
            ]
        )
    return rows


def _caller_rows(results: Results, sids: list[str]) -> list[list[str]]:
    """What a budget or a JWT adds per request: against the plain client key, same run."""
    rows = []
    for sid in sids:
        key = _scenario(results, "fkllm-key", sid)
        if key is None:
            continue
        row = [sid, _fmt(key["cpu_ms_per_req"], 3)]
        for target in ("fkllm-budget", "fkllm-jwt"):
            other = _scenario(results, target, sid)
            row += (
                [_fmt(other["cpu_ms_per_req"], 3), _signed(
                    1000 * (other["cpu_ms_per_req"] - key["cpu_ms_per_req"]), 0
                )]
                if other
                else ["-", "-"]
            )  # fmt: skip
        rows.append(row)
    return rows


def summary(results: Results) -> str:
    """One compact table per run, a row per target: what the performance page shows."""
    meta = results["meta"]
    header = ["target", "req/s c=64", "CPU ms/req c=64", "+p50 c=1 ms", "+TTFB ms"]
    header += ["500 ms c=1024, % ideal", "idle RSS MiB"]
    rows = []
    for target in _measured(results):
        c64 = _scenario(results, target, "json_c64")
        slow = slow_figures(results, target, "slow_c1024")
        direct = target == "direct"
        rows.append(
            [
                target,
                _fmt(c64["rps"], 0) if c64 else "-",
                _fmt(c64["cpu_ms_per_req"], 3) if c64 else "-",
                "" if direct else _signed(_added(results, target, "json_c1", "p50")),
                "" if direct else _signed(_ttfb_added(results, target, "ttfb_sse")),
                _fmt(slow["pct_ideal"], 1) if slow else "-",
                _fmt(results["targets"][target].get("rss_idle_mib"), 1),
            ]
        )
    out = [
        f"Run {meta.get('started', '?')}, {meta.get('cpus', '?')} CPUs shared by load "
        f"generator, upstream and gateway; {meta.get('duration_s', '?')} s per scenario.",
        "",
        *_table(header, rows),
    ]
    tls_rows = _tls_summary_rows(results)
    if tls_rows:
        header = ["upstream over TLS", "req/s c=64", "CPU ms/req c=64", "TLS added ms/req c=64"]
        header += ["500 ms c=1024, % ideal", "TLS added ms/req c=1024"]
        header += ["upstream conns per 1,000 req c=64 / c=1024"]
        out += ["", *_table(header, tls_rows)]
    return "\n".join(out) + "\n"


def _tls_summary_rows(results: Results) -> list[list[str]]:
    rows = []
    for target in _measured(results):
        c64 = _scenario(results, target, "json_tls_c64")
        c1024 = _scenario(results, target, "slow_tls_c1024")
        if c64 is None and c1024 is None:
            continue
        slow = slow_figures(results, target, "slow_tls_c1024")
        steady = [
            _fmt(d.get("upstream_connections_per_1k_steady")) if d else "-" for d in (c64, c1024)
        ]
        rows.append(
            [
                target,
                _fmt(c64["rps"], 0) if c64 else "-",
                _fmt(c64["cpu_ms_per_req"], 3) if c64 else "-",
                _signed(tls_added(results, target, "json_tls_c64"), 3),
                _fmt(slow["pct_ideal"], 1) if slow else "-",
                _signed(tls_added(results, target, "slow_tls_c1024"), 3),
                " / ".join(steady),
            ]
        )
    return rows


DOCS_START = "<!-- bench:results:start -->"
DOCS_END = "<!-- bench:results:end -->"


def update_docs(text: str, results: Results) -> str:
    """``text`` with the part between the results markers replaced by ``summary``."""
    if DOCS_START not in text or DOCS_END not in text:
        return text
    head, rest = text.split(DOCS_START, 1)
    _, tail = rest.split(DOCS_END, 1)
    return f"{head}{DOCS_START}\n{summary(results)}{DOCS_END}{tail}"


def render(results: Results) -> str:
    """The whole markdown report for one run."""
    meta = results["meta"]
    sids = {s["id"]: s for s in results["scenarios"]}
    out = ["# fkllmproxy benchmark: results", ""]
    out.append(
        f"Run {meta.get('started', '?')} on {meta.get('cpus', '?')} CPUs (load generator, "
        f"upstream and gateway share them), {meta.get('duration_s', '?')} s per scenario "
        f"after {meta.get('warmup_s', '?')} s of warm-up."
    )
    out.append("")
    out.append(f"- machine load before: `{meta.get('uptime_before', '?')}`")
    out.append(f"- machine load after: `{meta.get('uptime_after', '?')}`")
    for name, entry in results["targets"].items():
        if entry.get("skipped"):
            out.append(f"- **{name}: skipped** — {entry['skipped']}")
        else:
            load = entry.get("load_before")
            load_text = f" (load average at start {load[0]:.2f})" if load else ""
            out.append(f"- {name}: {entry.get('version', '')}{load_text}")
    out.append("")

    out += ["## fkllm against the issue's goals", ""]
    out += _table(["what", "goal", "fkllm measured", "met"], goal_rows(results))
    out.append("")

    fixed = [s for s in sids if sids[s]["group"] == "fixed"]
    if fixed:
        out += ["## Fixed upstream (nginx answers at once)", ""]
        out.append(
            "Latency in ms as wrk measures it; *+p50/+p99* is what the gateway adds over "
            "calling nginx directly; CPU is the gateway's process tree (for *direct*: "
            "nginx's) per request; `sse_c16` streams the 20-chunk body."
        )
        out.append("")
        header = ["scenario", "target", "req/s", "x direct", "p50", "p90", "p99"]
        header += ["+p50", "+p99", "CPU ms/req", "errors"]
        out += _table(header, _load_rows(results, fixed))
        out.append("")

    peers = [p for p in PEERS if p in _measured(results)]
    if "fkllm" in _measured(results) and peers:
        out += ["## fkllm compared with each peer, same run", ""]
        out.append(
            "*req/s ratio*: fkllm's throughput divided by the peer's; *CPU ratio*: the "
            "peer's CPU per request divided by fkllm's (higher is better for fkllm)."
        )
        out.append("")
        header = ["scenario"]
        for peer in peers:
            header += [f"req/s ÷ {peer}", f"CPU {peer} ÷ fkllm"]
        load_sids = [s for s in sids if sids[s]["mode"] == "load"]
        out += _table(header, _peer_rows(results, load_sids))
        out.append("")

    measured = _measured(results)
    if "fkllm" in measured and "fkllm-redis" in measured:
        load_sids = [s for s in sids if sids[s]["mode"] == "load"]
        out += ["## What the Redis backend costs", ""]
        out.append(
            '`fkllm-redis` is fkllm with rate limiting on and `[state] backend = "redis"` '
            "(a local `redis-server`, one Lua round trip per request); `fkllm` has rate "
            "limiting off. CPU is fkllm's process tree only; Redis's own CPU shows as lower "
            "throughput where the machine is saturated."
        )
        out.append("")
        header = ["scenario", "fkllm req/s", "redis req/s", "ratio"]
        header += ["fkllm CPU ms/req", "redis CPU ms/req", "added CPU ms/req"]
        out += _table(header, _redis_rows(results, load_sids))
        out.append("")

    if "fkllm-key" in measured and ("fkllm-budget" in measured or "fkllm-jwt" in measured):
        load_sids = [s for s in sids if sids[s]["mode"] == "load"]
        out += ["## What a budget or a JWT costs", ""]
        out.append(
            "`fkllm-key` is called with a client key from `[[auth.keys]]`, `fkllm-budget` "
            "with the same key given a budget (reserved before each call and settled after, "
            "on the memory store), `fkllm-jwt` with a JWT from a local issuer (verified once "
            "per token, then cached). Added CPU is in µs per request, against `fkllm-key`; "
            "differences under ~15 % of the key's figure are noise here (`python -m "
            "bench.inproc --caller` measures them precisely)."
        )
        out.append("")
        header = ["scenario", "key CPU ms/req", "budget CPU ms/req", "budget added µs"]
        header += ["JWT CPU ms/req", "JWT added µs"]
        out += _table(header, _caller_rows(results, load_sids))
        out.append("")
    identity = results.get("identity_cost")
    if identity:
        out += ["## What a budget or a JWT costs, in process", ""]
        out.append(
            "`bench.identity_cost`: `python -m bench.inproc --mock --uvloop --caller ...` "
            "(the real app in process, the upstream answered from memory), the identities "
            f"alternated over {identity['rounds']} rounds, each one's quickest CPU per request "
            "kept. Target: a budgeted key and a JWT each add under 30 µs to the plain key."
        )
        out.append("")
        quickest, added = identity["quickest_cpu_us"], identity["added_us"]
        rows = [["client key", f"{quickest['key']:.1f}", ""]]
        rows.append(["key with a budget", f"{quickest['budget']:.1f}", _signed(added["budget"], 1)])
        rows.append(["JWT", f"{quickest['jwt']:.1f}", _signed(added["jwt"], 1)])
        out += _table(["caller", "CPU µs/req", "added µs"], rows)
        out.append("")

    seq = [s for s in sids if sids[s]["mode"] == "sequential"]
    if seq:
        out += ["## Streams one at a time: first byte and last byte", ""]
        out.append(
            "Time from sending the request to the first body byte (the first SSE frame) "
            "and to the end of the stream, in ms; `ttfb_paced` streams 20 chunks 10 ms "
            "apart, so a gateway that buffers shows it in the first byte."
        )
        out.append("")
        rows = []
        for sid in seq:
            for target in _measured(results):
                data = _scenario(results, target, sid)
                if data is None:
                    reason = _failure(results, target, sid)
                    if reason:
                        rows.append(_failed_row(sid, target, reason, 9))
                    continue
                is_direct = target == "direct"
                rows.append(
                    [
                        sid,
                        target,
                        _fmt(data["ttfb_p50"], 3),
                        "" if is_direct else _signed(_ttfb_added(results, target, sid), 3),
                        _fmt(data["ttfb_p90"], 3),
                        _fmt(data["total_p50"], 3),
                        ""
                        if is_direct
                        else _signed(_ttfb_added(results, target, sid, "total_p50"), 3),
                        f"{int(data['count'])}",
                        str(data["error_count"]),
                    ]
                )
        header = ["stream", "target", "first byte p50", "+ over direct", "first byte p90"]
        header += ["total p50", "+ over direct", "streams", "errors"]
        out += _table(header, rows)
        out.append("")

    slow = [s for s in sids if sids[s]["group"] == "slow"]
    if slow:
        out += ["## Slow upstream: 500 ms before the answer", ""]
        out.append(
            "*ideal* = connections / the fastest a request can be (0.5 s; 0.975 s for the "
            "paced stream). *% ideal* uses the sustained rate "
            "connections / mean latency (wrk's raw count is quantised by the 500 ms cycle); "
            "*% direct* compares raw counts with nginx's in the same run. `slow_sse_c256` "
            "streams 20 chunks 25 ms apart after the delay."
        )
        out.append("")
        rows = []
        for sid in slow:
            for target in _measured(results):
                data = _scenario(results, target, sid)
                figures = slow_figures(results, target, sid)
                if data is None or figures is None:
                    reason = _failure(results, target, sid)
                    if reason:
                        rows.append(_failed_row(sid, target, reason, 11))
                    continue
                lat = data["latency_ms"]
                rows.append(
                    [
                        sid,
                        target,
                        _fmt(figures["raw"], 0),
                        _fmt(figures["ideal"], 0),
                        f"{figures['pct_ideal']:.1f}",
                        "" if target == "direct" else f"{figures['pct_direct']:.1f}",
                        _fmt(lat["p50"], 1),
                        "" if target == "direct" else _signed(_added(results, target, sid, "p50")),
                        _fmt(lat["p99"], 1),
                        _fmt(data["cpu_ms_per_req"], 3),
                        str(data["error_count"]),
                    ]
                )
        header = ["scenario", "target", "req/s", "ideal", "% ideal", "% direct", "p50"]
        header += ["+p50", "p99", "CPU ms/req", "errors"]
        out += _table(header, rows)
        out.append("")

    tls = [s for s in sids if sids[s].get("plain")]
    if tls:
        out += ["## Upstream over TLS", ""]
        out.append(
            "The same nginx answers behind `listen ... ssl` with a certificate from a CA "
            f"the harness made for the run ({meta.get('tls', '')}); each gateway trusts "
            "that CA (fkllm: the provider's `ca_file`; LiteLLM: `SSL_CERT_FILE`; Portkey: "
            "`NODE_EXTRA_CA_CERTS`). Each row is shown with its plain-HTTP scenario's "
            "figures from the same run; *TLS added* is the TLS row's CPU per request minus "
            "the plain row's (for *direct*: nginx's own TLS cost), over the whole run and "
            "over its steady window (from 40 % to 95 % of the run, without the handshakes "
            "a gateway redoes at the start, see below). *Upstream conns / 1k* "
            "is the connections the upstream accepted per 1,000 requests (each a TLS "
            "handshake): over the whole measured run / over its steady window."
        )
        out.append("")
        rows = []
        for sid in tls:
            plain_sid = sids[sid]["plain"]
            for target in _measured(results):
                data = _scenario(results, target, sid)
                if data is None:
                    reason = _failure(results, target, sid)
                    if reason:
                        rows.append(_failed_row(sid, target, reason, 12))
                    continue
                plain = _scenario(results, target, plain_sid)
                direct = _scenario(results, "direct", sid)
                figures = slow_figures(results, target, sid) if sids[sid].get("ideal_s") else None
                rows.append(
                    [
                        sid,
                        target,
                        _fmt(data["rps"], 0),
                        _ratio(data["rps"], direct["rps"] if direct else None),
                        _fmt(plain["rps"], 0) if plain else "-",
                        f"{figures['pct_ideal']:.1f}" if figures else "",
                        _fmt(data["cpu_ms_per_req"], 3),
                        _fmt(plain["cpu_ms_per_req"], 3) if plain else "-",
                        _signed(tls_added(results, target, sid), 3),
                        _signed(tls_added(results, target, sid, "cpu_ms_per_req_steady"), 3),
                        _connections(data),
                        str(data["error_count"]),
                    ]
                )
        header = ["scenario", "target", "req/s", "x direct", "plain req/s", "% ideal"]
        header += ["CPU ms/req", "plain CPU ms/req", "TLS added ms/req", "steady window"]
        header += ["upstream conns / 1k", "errors"]
        out += _table(header, rows)
        out.append("")

    counted = [s for s in sids if sids[s]["mode"] == "load"]
    rows = []
    for target in _measured(results):
        cells = [_connections(_scenario(results, target, sid)) for sid in counted]
        if any(cell != "-" for cell in cells):
            rows.append([target, *cells])
    if rows:
        out += ["## Upstream connections opened per 1,000 requests", ""]
        out.append(
            "nginx's `stub_status` *accepts*, read before and after each measured run: "
            "whole run / steady window (from 40 % to 95 % of the run, per 1,000 requests "
            "nginx served in it). The whole-run figure includes the connections a gateway "
            "opens again at the start because it hung up on the warm-up's last requests "
            "when wrk cut them (and for *direct*, wrk's own connections). A gateway that "
            "keeps its upstream connections alive reads 0 in the steady window."
        )
        out.append("")
        out += _table(["target", *counted], rows)
        out.append("")

    out += ["## Memory (resident set of the process tree)", ""]
    rows = []
    for target in _measured(results):
        entry = results["targets"][target]
        rows.append(
            [
                target,
                str(entry.get("processes", "-")),
                _fmt(entry.get("rss_idle_mib"), 1),
                _fmt(entry.get("rss_after_mib"), 1),
                _fmt(entry.get("rss_peak_mib"), 1),
            ]
        )
    out += _table(["target", "processes", "idle MiB", "after load MiB", "peak MiB"], rows)
    out.append("")
    out.append("Idle is one second after the target answered its first requests.")
    out.append("")
    return "\n".join(out)
