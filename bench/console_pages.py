"""``python -m bench.console_pages``: the web console's page views on a big usage ledger.

Issue 17 asks that the console's pages stay under 50 ms on a ledger of a million rows.
This builds such a ledger (``--rows`` over ``--days`` days, 50 keys, 6 models on 3
providers, prices for all), starts a real ``fkllm serve`` on it with 50 keys in the key
store (10 of them with budgets), signs in as a browser does, and times ``--views``
GETs of every console page, the Usage CSV and the JSON the live pages poll (median
and max, in ms, measured at the client over one kept-alive connection).

The raw rows are bulk-inserted into the ledger's own table (``usage.SCHEMA``); the
daily rollups are then made by the ledger's own code, ``UsageLedger`` opening the
file, exactly as the daemon's first start on a ledger written before the rollups
existed makes them. Exit status 1 when any median is over ``--budget-ms`` (50).
"""

from __future__ import annotations

import argparse
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from fkllmproxy.auth.store import KeyStore, store_path
from fkllmproxy.config.schema import PriceConfig
from fkllmproxy.observability.usage import SCHEMA, PriceTable, UsageLedger

MASTER = "sk-bench-console-0123456789"
PROVIDERS = ("alpha", "beta", "gamma")
MODELS = {  # model -> (provider, input $/Mtok, output $/Mtok)
    "small": ("alpha", 0.15, 0.6),
    "medium": ("alpha", 1.0, 4.0),
    "large": ("beta", 3.0, 15.0),
    "coder": ("beta", 1.25, 10.0),
    "fast": ("gamma", 0.1, 0.4),
    "reason": ("gamma", 2.0, 8.0),
}
KEYS = [f"team-{i:02d}" for i in range(50)]
PAGES = (
    "/ui/",
    "/ui/providers",
    "/ui/keys",
    "/ui/usage",
    "/ui/usage?by=model&since=all",
    "/ui/usage?by=day&since=90d",
    "/ui/config",
    "/ui/usage.csv?by=key&since=all",
    "/ui/api/overview",
    "/ui/api/providers",
)


def config_text(ledger: Path, state: Path) -> str:
    parts = [
        f'[usage]\nenabled = true\npath = "{ledger}"\n',
        f'[state]\ndirectory = "{state}"\n',
        '[logging]\nlevel = "WARNING"\n',
    ]
    for name in PROVIDERS:
        parts.append(f'[[providers]]\nname = "{name}"\ntype = "mock"\n')
    for model, (provider, inp, out) in MODELS.items():
        parts.append(
            f'[[models]]\nname = "{model}"\n'
            f'targets = [{{ provider = "{provider}", model = "{model}-1" }}]\n'
        )
        parts.append(
            f'[[pricing]]\nmodel = "{model}-1"\ninput_per_mtok = {inp}\noutput_per_mtok = {out}\n'
        )
    return "\n".join(parts)


def build_ledger(path: Path, rows: int, days: int, seed: int = 17) -> tuple[float, float]:
    """``rows`` requests spread over the last ``days`` days; (insert secs, rollup secs)."""
    rng = random.Random(seed)
    now = time.time()
    start = now - days * 86_400
    models = list(MODELS)
    favourite = {key: rng.sample(models, 3) for key in KEYS}  # each key uses a few models
    began = time.perf_counter()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")  # a bench build, not the daemon's writes
    connection.executescript(SCHEMA)

    def batch(count: int, first: int) -> list[tuple[object, ...]]:
        out: list[tuple[object, ...]] = []
        for i in range(first, first + count):
            key = KEYS[int(rng.paretovariate(1.2)) % len(KEYS)]
            model = rng.choice(favourite[key])
            provider, inp, outp = MODELS[model]
            prompt = rng.randint(50, 8000)
            completion = rng.randint(10, 2000)
            status = 200 if rng.random() > 0.03 else rng.choice((429, 500, 502, 503))
            cost = (prompt * inp + completion * outp) / 1e6
            out.append(
                (
                    start + (now - start) * (i / rows),  # in time order, as written
                    f"req-{i:08x}",
                    key,
                    model,
                    provider,
                    model + "-1",
                    prompt,
                    completion,
                    rng.uniform(150, 9000),
                    status,
                    cost,
                )
            )
        return out

    insert = (
        "INSERT INTO usage (ts, request_id, key_name, model, provider, upstream_model,"
        " prompt_tokens, completion_tokens, latency_ms, status, cost_usd)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    step = 50_000
    with connection:
        for first in range(0, rows, step):
            connection.executemany(insert, batch(min(step, rows - first), first))
    connection.close()
    inserted = time.perf_counter()
    # The ledger's own code adds the later columns and rolls the rows up by day.
    prices = [
        PriceConfig(model=m + "-1", input_per_mtok=p[1], output_per_mtok=p[2])
        for m, p in MODELS.items()
    ]
    UsageLedger(path, 1.0, PriceTable(prices)).close()
    return inserted - began, time.perf_counter() - inserted


def fill_key_store(state: Path) -> None:
    store = KeyStore(store_path(str(state)))
    for i, name in enumerate(KEYS):
        budget = {"budget_usd": 500.0, "budget_period": "month"} if i < 10 else {}
        store.create(name, [], **budget)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def time_views(url: str, views: int) -> dict[str, tuple[float, float, int]]:
    """Per page: (median ms, max ms, bytes), after one warm-up view."""
    figures = {}
    with httpx.Client(base_url=url, timeout=30) as browser:
        signed = browser.post(
            "/ui/login",
            content=f"key={MASTER}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert signed.status_code in (200, 303), signed.text
        for path in PAGES:
            first = browser.get(path)
            assert first.status_code == 200, (path, first.status_code, first.text[:300])
            samples = []
            for _ in range(views):
                began = time.perf_counter()
                answer = browser.get(path)
                samples.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200
            figures[path] = (statistics.median(samples), max(samples), len(first.content))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console_pages", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--budget-ms", type=float, default=50.0)
    parser.add_argument("--keep", help="build (or reuse) the ledger in this directory")
    args = parser.parse_args(argv)

    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="fkllm-console-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ledger, state = workdir / "usage.sqlite3", workdir / "state"
    state.mkdir(exist_ok=True)
    if not ledger.exists():
        inserted, rolled = build_ledger(ledger, args.rows, args.days)
        fill_key_store(state)
        print(f"ledger: {args.rows:,} rows over {args.days} days in {inserted:.1f} s, "
              f"rolled up by the ledger's code in {rolled:.1f} s")  # fmt: skip
    with sqlite3.connect(ledger) as db:
        (raw,) = db.execute("SELECT COUNT(*) FROM usage").fetchone()
        (daily,) = db.execute("SELECT COUNT(*) FROM usage_daily").fetchone()
    size = ledger.stat().st_size / 1e6
    print(f"ledger {ledger}: {raw:,} rows, {daily:,} daily rollup rows, {size:.0f} MB")

    config = workdir / "config.toml"
    config.write_text(config_text(ledger, state))
    port = free_port()
    env = {"APP_AUTH__MASTER_KEY": MASTER, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "fkllmproxy", "serve", "--config", str(config),
               "--port", str(port), "--env-file", "/dev/null"]  # fmt: skip
    with (workdir / "daemon.log").open("wb") as log:
        daemon = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if daemon.poll() is not None:
                    raise SystemExit(f"fkllm serve exited; see {workdir / 'daemon.log'}")
                time.sleep(0.2)
            figures = time_views(url, args.views)
        finally:
            daemon.terminate()
            daemon.wait(30)

    print(f"\n{'GET':<34} {'median ms':>10} {'max ms':>8} {'bytes':>8}")
    over = []
    for path, (median, worst, size_bytes) in figures.items():
        print(f"{path:<34} {median:>10.1f} {worst:>8.1f} {size_bytes:>8,}")
        if median > args.budget_ms:
            over.append(path)
    if over:
        print(f"\nover {args.budget_ms:g} ms (median): {', '.join(over)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
