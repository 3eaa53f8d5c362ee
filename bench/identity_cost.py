"""What a budget or a JWT adds to a request's CPU, measured where it can be read.

Under wrk, the gateway's CPU per request moves by tens of microseconds from run to run
on a 2-core machine shared with the load generator and the upstream, which hides a
difference of that size. So ``bench.run`` also runs ``bench.inproc`` (the real app in
this process, the upstream answered from memory) for each identity in turn, several
rounds alternated, and keeps each one's quickest figure: other load only ever adds
time, so the quickest is the closest to the code's own cost.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["IDENTITIES", "measure"]

IDENTITIES = ("key", "budget", "jwt")
# The project's virtualenv, where fkllmproxy is installed (the bench one has only tools).
PYTHON = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"


def _inproc(caller: str, requests: int, batches: int) -> dict[str, Any]:
    command = [str(PYTHON), "-m", "bench.inproc", "--mock", "--uvloop", "--json"]
    command += ["--caller", caller, "--requests", str(requests), "--batches", str(batches)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=PYTHON.parents[2]
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.inproc --caller {caller} failed: {done.stderr.strip()}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def measure(rounds: int = 3, requests: int = 3000, batches: int = 15) -> dict[str, Any]:
    """Each identity's quickest CPU µs per request over ``rounds`` alternated runs, and
    what the budget and the JWT add to the plain key's."""
    seen: dict[str, list[float]] = {caller: [] for caller in IDENTITIES}
    for _ in range(rounds):
        for caller in IDENTITIES:
            seen[caller].append(_inproc(caller, requests, batches)["cpu_us"])
    quickest = {caller: min(figures) for caller, figures in seen.items()}
    return {
        "rounds": rounds,
        "cpu_us": seen,
        "quickest_cpu_us": quickest,
        "added_us": {
            caller: round(quickest[caller] - quickest["key"], 1) for caller in IDENTITIES[1:]
        },
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
