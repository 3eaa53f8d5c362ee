"""The PNG beside the report: four panels, one bar per target, from ``results.json``.

matplotlib lives in the bench virtualenv only (``make bench`` makes it); the report
itself never needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import slow_figures

__all__ = ["render"]

_COLOURS = {
    "direct": "#9e9e9e",
    "fkllm": "#1b7f3b",
    "fkllm-redis": "#7fbf7b",
    "litellm": "#c0392b",
    "portkey": "#2c6fbb",
}


def _scenario(results: dict[str, Any], target: str, sid: str) -> dict[str, Any] | None:
    found = results["targets"][target]["scenarios"].get(sid)
    return None if not found or "failed" in found else found


def _bars(ax: Any, groups: list[str], targets: list[str], value: Any, *, log: bool) -> None:
    width = 0.8 / max(1, len(targets))
    for index, target in enumerate(targets):
        xs, ys = [], []
        for position, sid in enumerate(groups):
            found = value(target, sid)
            if found is not None:
                xs.append(position + (index - (len(targets) - 1) / 2) * width)
                ys.append(found)
        colour = _COLOURS.get(target, f"C{index}")
        bars = ax.bar(xs, ys, width, label=target, color=colour)
        ax.bar_label(bars, fmt="%.3g", fontsize=6, rotation=90, padding=2)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    if log and any(bar.get_height() > 0 for bar in ax.patches):
        ax.set_yscale("log")
    ax.margins(y=0.25)
    ax.grid(axis="y", alpha=0.3)


def render(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = [n for n, e in results["targets"].items() if not e.get("skipped")]
    gateways = [t for t in targets if t != "direct"]
    specs = {s["id"]: s for s in results["scenarios"]}
    fixed = [s for s in specs if specs[s]["group"] == "fixed"]
    streams = [s for s in specs if specs[s]["mode"] == "sequential"]
    slow = [s for s in specs if specs[s]["group"] == "slow"]

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    meta = results["meta"]
    fig.suptitle(
        f"fkllmproxy vs peers, same nginx upstream — {meta.get('started', '')}, "
        f"{meta.get('cpus', '?')} CPUs shared with the load generator",
        fontsize=11,
    )

    def rps(target: str, sid: str) -> float | None:
        found = _scenario(results, target, sid)
        return found["rps"] if found else None

    def cpu(target: str, sid: str) -> float | None:
        found = _scenario(results, target, sid)
        return found["cpu_ms_per_req"] if found else None

    def ttfb_added(target: str, sid: str) -> float | None:
        found, direct = _scenario(results, target, sid), _scenario(results, "direct", sid)
        if found is None or direct is None:
            return None
        return max(0.001, found["ttfb_p50"] - direct["ttfb_p50"])

    def pct_ideal(target: str, sid: str) -> float | None:
        figures = slow_figures(results, target, sid)
        return figures["pct_ideal"] if figures else None

    _bars(axes[0][0], fixed, targets, rps, log=True)
    axes[0][0].set_title("requests/s, fixed upstream (higher is better)", fontsize=10)
    axes[0][0].legend(fontsize=8)
    _bars(axes[0][1], fixed, targets, cpu, log=True)
    axes[0][1].set_title("CPU ms per request (lower is better)", fontsize=10)
    _bars(axes[1][0], streams, gateways, ttfb_added, log=True)
    axes[1][0].set_title("added time to first byte over direct, ms, p50 (lower)", fontsize=10)
    _bars(axes[1][1], slow, targets, pct_ideal, log=False)
    axes[1][1].axhline(95, color="black", linewidth=0.8, linestyle="--")
    axes[1][1].set_ylim(0, 110)
    axes[1][1].set_title("500 ms upstream: % of ideal requests/s (higher)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
