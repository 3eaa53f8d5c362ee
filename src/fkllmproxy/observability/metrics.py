"""The proxy's metrics: Prometheus series, and the JSON summary of ``/metrics``.

One ``Metrics`` per process (``process_metrics()``), fed from four places:

* the request middleware, once per finished request: ``request_started`` /
  ``request_finished`` (status, route template, latency), ``tokens``, and
  ``rate_limited`` / ``auth_failed`` from the error the request ended with;
* the router, once per upstream attempt: ``upstream_attempt``;
* the stream relay, through the request context: ``first_token``;
* the circuit breaker, on every state change: ``circuit_state``.

Label values are bounded by construction: routes are route templates, models and
providers are configured names (the middleware maps anything else to ``unknown``),
statuses, reasons and outcomes come from fixed sets. Each label combination's child
is looked up once and cached, so recording is a dict lookup and an increment.

With several worker processes, prometheus-client's multiprocess mode keeps every
series in per-process files under one directory (``PROMETHEUS_MULTIPROC_DIR``, made
fresh at each start by the daemon); a scrape answered by any worker merges them all,
so totals cover every worker. The recent-latency rings (``window.py``) live there too.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fkllmproxy.observability.circuits import CIRCUIT_NAMES, CIRCUIT_VALUES
from fkllmproxy.observability.window import SUFFIX, Record, Ring, percentile, read_ring_files

__all__ = [
    "MULTIPROC_ENV",
    "OUTCOMES",
    "Metrics",
    "process_metrics",
    "use_multiprocess",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Looked up by the state names other processes and files report, checked or not.
_CIRCUIT_VALUE: dict[str, int] = {name: value for name, value in CIRCUIT_VALUES.items()}
# What one upstream attempt can come to; "rejected" is the client's fault, not the provider's.
OUTCOMES = ("success", "error", "timeout", "rate_limited", "rejected")
_PROVIDER_OK = frozenset({"success", "rejected"})

REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
# Joules: a short answer of a small model is a few J, a long agent turn tens of kJ.
ENERGY_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 50_000, 100_000)
FIRST_TOKEN_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60)
RECENT_SECS = 300.0  # "recent" error rate of a provider: the last five minutes
_PROCESS_REFRESH_SECS = 5.0
_MMAP_HEADER_BYTES = 8  # prometheus-client's files start with their used length, padded


def use_multiprocess(directory: str | None) -> None:
    """Switch prometheus-client into (or out of) multiprocess mode for metrics made from now on.

    The library decides at import time from ``PROMETHEUS_MULTIPROC_DIR``; the daemon
    imports it long before it knows how many workers it will run, and forked workers
    inherit the parent's decision. Re-deriving the value class after setting the
    variable makes every metric created afterwards (in the workers) use the files.
    """
    if directory:
        os.environ[MULTIPROC_ENV] = directory
    else:
        os.environ.pop(MULTIPROC_ENV, None)
    from prometheus_client import values

    values.ValueClass = values.get_value_class()


def _sized_files_collector(registry: Any, directory: Path) -> Any:
    """prometheus-client's multiprocess collector, minus the files not yet sized.

    A worker creates its file empty and sizes it a moment later; the stock collector
    fails on an empty file, so a worker registering its collector (which reads every
    file once) while another one starts crashed at start-up, and a scrape at that
    moment failed. An empty file holds no series yet, so skipping it loses nothing.
    """
    from prometheus_client.multiprocess import MultiProcessCollector

    class SizedFilesCollector(MultiProcessCollector):
        def collect(self) -> Any:
            files = []
            for path in directory.glob("*.db"):
                with contextlib.suppress(OSError):
                    if path.stat().st_size >= _MMAP_HEADER_BYTES:
                        files.append(str(path))
            return self.merge(files, accumulate=True)

    return SizedFilesCollector(registry, path=str(directory))


class Metrics:
    """This process's metric series, recent-latency rings, and the JSON summary.

    ``directory`` set means multiprocess mode: the series live in files there (one set
    per process) and every read merges all of them.
    """

    def __init__(self, window: int = 4096, directory: str | Path | None = None) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            disable_created_metrics,
        )

        # The ``*_created`` series only double the output; multiprocess mode has none.
        disable_created_metrics()
        self.window = window
        self.directory = Path(directory) if directory else None
        self.registry = CollectorRegistry(auto_describe=True)
        own = None if self.directory else self.registry
        self._requests = Counter(
            "fkllm_requests_total",
            "Requests answered, by route template, model, provider and HTTP status.",
            ["route", "model", "provider", "status"],
            registry=own,
        )
        self._latency = Histogram(
            "fkllm_request_latency_seconds",
            "Time from request arrival to the last byte of the response (streams included).",
            buckets=REQUEST_BUCKETS,
            registry=own,
        )
        self._failed = Counter(
            "fkllm_failed_requests_total",
            "Requests answered with a 4xx or 5xx status, by route template and error code.",
            ["route", "reason"],
            registry=own,
        )
        self._upstream = Counter(
            "fkllm_upstream_requests_total",
            "Attempts sent to a provider, by outcome.",
            ["provider", "outcome"],
            registry=own,
        )
        self._upstream_latency = Histogram(
            "fkllm_upstream_latency_seconds",
            "Time for one upstream attempt (until the provider accepted a stream).",
            ["provider"],
            buckets=REQUEST_BUCKETS,
            registry=own,
        )
        self._first_token = Histogram(
            "fkllm_time_to_first_token_seconds",
            "Time from request arrival to the first streamed chunk, by provider.",
            ["provider"],
            buckets=FIRST_TOKEN_BUCKETS,
            registry=own,
        )
        self._tokens = Counter(
            "fkllm_tokens_total",
            "Tokens the providers reported, by provider, model and kind (prompt, completion;"
            " cache_read and cache_write, prompt-cache tokens also counted in prompt).",
            ["provider", "model", "kind"],
            registry=own,
        )
        self._energy = Histogram(
            "fkllm_energy_joules",
            "Estimated energy of each answered request (an estimate from its tokens and the"
            " model's Wh per 1,000 tokens, not a measurement), by provider and model.",
            ["provider", "model"],
            buckets=ENERGY_BUCKETS,
            registry=own,
        )
        self._energy_saved = Histogram(
            "fkllm_energy_saved_joules",
            "Estimated energy a response-cache hit avoided (the estimate of the answer it"
            " replayed), by model.",
            ["model"],
            buckets=ENERGY_BUCKETS,
            registry=own,
        )
        self._rate_limited = Counter(
            "fkllm_rate_limit_hits_total",
            "Requests refused with 429 because the caller's bucket was empty.",
            registry=own,
        )
        self._auth_failures = Counter(
            "fkllm_auth_failures_total",
            "Requests refused with 401 (missing or wrong key).",
            registry=own,
        )
        self._usage_dropped = Counter(
            "fkllm_usage_rows_dropped_total",
            "Usage-ledger rows dropped because the writer fell too far behind (disk full, read-only).",
            registry=own,
        )
        self._cache_hits = Counter(
            "fkllm_cache_hits_total",
            "Requests answered from the response cache, by model.",
            ["model"],
            registry=own,
        )
        self._cache_misses = Counter(
            "fkllm_cache_misses_total",
            "Requests to a cached model that the cache could not answer, by model.",
            ["model"],
            registry=own,
        )
        self._admin_writes = Counter(
            "fkllm_admin_writes_total",
            "Writes asked for over the admin API or in the console, by action (put, restore:"
            " the config file; usage_backup) and outcome (ok, invalid, stale, refused, error).",
            ["action", "outcome"],
            registry=own,
        )
        self._circuit = Gauge(
            "fkllm_circuit_breaker_state",
            "Circuit breaker state per provider: 0 closed, 1 half-open, 2 open "
            "(with several workers, the worst of them).",
            ["provider"],
            registry=own,
            multiprocess_mode="livemax",
        )
        # Spend is shared by the workers (state/budgets.py), so each one's latest reading
        # is the same number, give or take the calls in flight: the largest is the newest.
        self._budget_spent = Gauge(
            "fkllm_budget_spent_usd",
            "Spend this budget period per budgeted key (or OIDC group: group:<name>).",
            ["client"],
            registry=own,
            multiprocess_mode="livemax",
        )
        self._budget_limit = Gauge(
            "fkllm_budget_limit_usd",
            "The budget for the period per budgeted key (or OIDC group).",
            ["client"],
            registry=own,
            multiprocess_mode="livemax",
        )
        self._in_flight = Gauge(
            "fkllm_in_flight_requests",
            "Requests being answered right now (streams included).",
            registry=own,
            multiprocess_mode="livesum",
        )
        self._children: dict[tuple[str, ...], Any] = {}
        self._process_gauges: dict[str, Any] = {}
        self._process_refreshed = 0.0
        if self.directory is None:
            from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        else:
            _sized_files_collector(self.registry, self.directory)
            self._make_process_gauges()
        self._rings: dict[str, Ring] = {}
        self._pid = os.getpid()

    # -- recording (hot path) -------------------------------------------------------

    def _child(self, key: tuple[str, ...], metric: Any, *labels: str) -> Any:
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request_started(self) -> None:
        self._in_flight.inc()

    def request_finished(
        self,
        *,
        route: str,
        model: str,
        provider: str,
        status: int,
        seconds: float,
        reason: str | None = None,
        broken: bool = False,
    ) -> None:
        """Count one answered request (call ``request_started`` before it).

        ``broken`` marks a stream that failed after its 200 went out: the status label
        says what the client saw, the failure is counted under ``reason``.
        """
        self._in_flight.dec()
        code = str(status)
        self._child(
            ("r", route, model, provider, code), self._requests, route, model, provider, code
        ).inc()
        self._latency.observe(seconds)
        ok = status < 400 and not broken
        if not ok:
            why = reason or f"http_{status}"
            self._child(("f", route, why), self._failed, route, why).inc()
        self._ring("requests").add(seconds, ok)
        if self.directory is not None:
            self._maybe_refresh_process()

    def upstream_attempt(self, provider: str, outcome: str, seconds: float) -> None:
        """Count one attempt at ``provider`` that ended in ``outcome`` (see ``OUTCOMES``)."""
        self._child(("u", provider, outcome), self._upstream, provider, outcome).inc()
        self._child(("ul", provider), self._upstream_latency, provider).observe(seconds)
        self._ring("upstream:" + provider).add(seconds, outcome in _PROVIDER_OK)

    def first_token(self, provider: str, seconds: float) -> None:
        self._child(("t", provider), self._first_token, provider).observe(seconds)

    def tokens(self, provider: str, model: str, prompt: int, completion: int) -> None:
        if prompt:
            self._child(("k", provider, model, "p"), self._tokens, provider, model, "prompt").inc(
                prompt
            )
        if completion:
            self._child(
                ("k", provider, model, "c"), self._tokens, provider, model, "completion"
            ).inc(completion)

    def cache_tokens(self, provider: str, model: str, read: int, write: int) -> None:
        """Prompt-cache tokens (``kind="cache_read"`` / ``"cache_write"``), also in ``prompt``."""
        if read:
            self._child(
                ("k", provider, model, "cr"), self._tokens, provider, model, "cache_read"
            ).inc(read)
        if write:
            self._child(
                ("k", provider, model, "cw"), self._tokens, provider, model, "cache_write"
            ).inc(write)

    def energy(self, provider: str, model: str, joules: float) -> None:
        """One answered request's estimated energy."""
        self._child(("e", provider, model), self._energy, provider, model).observe(joules)

    def energy_saved(self, model: str, joules: float) -> None:
        """What one cache hit avoided: the estimated energy of the answer it replayed."""
        self._child(("es", model), self._energy_saved, model).observe(joules)

    def cache_lookup(self, model: str, *, hit: bool) -> None:
        """Count one response-cache lookup for ``model`` (a configured name)."""
        if hit:
            self._child(("ch", model), self._cache_hits, model).inc()
        else:
            self._child(("cm", model), self._cache_misses, model).inc()

    def usage_rows_dropped(self, count: int) -> None:
        self._usage_dropped.inc(count)

    def admin_write(self, action: str, outcome: str) -> None:
        """Count one write asked for by an operator (config put or restore, ledger backup)."""
        self._child(("aw", action, outcome), self._admin_writes, action, outcome).inc()

    def budget_gauges(self, client: str) -> tuple[Any, Any]:
        """``client``'s spend and budget gauges, for a caller that sets them per request."""
        return (
            self._child(("bs", client), self._budget_spent, client),
            self._child(("bl", client), self._budget_limit, client),
        )

    def rate_limited(self) -> None:
        self._rate_limited.inc()

    def auth_failed(self) -> None:
        self._auth_failures.inc()

    def circuit_state(self, provider: str, state: str | int) -> None:
        """Set ``provider``'s breaker state: the breaker calls this on every change."""
        value = state if isinstance(state, int) else _CIRCUIT_VALUE.get(state, 0)
        self._child(("c", provider), self._circuit, provider).set(value)

    def sync_providers(self, states: Mapping[str, str]) -> None:
        """Make the circuit gauge cover exactly the configured providers, with their states."""
        for provider, state in states.items():
            self.circuit_state(provider, state)
        for key in [k for k in self._children if k[0] == "c" and k[1] not in states]:
            del self._children[key]
            with contextlib.suppress(KeyError):
                self._circuit.remove(key[1])

    def _ring(self, label: str) -> Ring:
        ring = self._rings.get(label)
        if ring is None:
            path = None
            if self.directory is not None:
                path = self.directory / f"{os.getpid()}-{len(self._rings)}{SUFFIX}"
            ring = self._rings[label] = Ring(label, self.window, path)
        return ring

    # -- process metrics with several workers --------------------------------------

    def _make_process_gauges(self) -> None:
        from prometheus_client import Gauge

        for name, help_text in (
            ("process_resident_memory_bytes", "Resident memory size in bytes, per worker."),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes, per worker."),
            ("process_cpu_seconds_total", "User and system CPU time in seconds, per worker."),
            ("process_open_fds", "Open file descriptors, per worker."),
            ("process_max_fds", "Maximum open file descriptors, per worker."),
            ("process_start_time_seconds", "Start time since the epoch in seconds, per worker."),
        ):
            self._process_gauges[name] = Gauge(
                name, help_text, registry=None, multiprocess_mode="liveall"
            )

    def _maybe_refresh_process(self) -> None:
        now = time.monotonic()
        if now - self._process_refreshed >= _PROCESS_REFRESH_SECS:
            self.refresh_process()

    def refresh_process(self) -> None:
        """Write this worker's process numbers (the standard collector, read once)."""
        from prometheus_client import ProcessCollector

        self._process_refreshed = time.monotonic()
        for family in ProcessCollector(registry=None).collect():
            for sample in family.samples:
                gauge = self._process_gauges.get(sample.name)
                if gauge is not None:
                    gauge.set(sample.value)

    def _prune_dead_workers(self) -> None:
        """Drop the live gauges (in-flight, circuits) of workers that are gone."""
        assert self.directory is not None
        from prometheus_client.multiprocess import mark_process_dead

        for path in self.directory.glob("gauge_live*_*.db"):
            pid = path.stem.rsplit("_", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                mark_process_dead(int(pid), str(self.directory))

    def close(self) -> None:
        """This process is going away: its live gauges stop counting (totals stay)."""
        if self.directory is not None:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(os.getpid(), str(self.directory))

    # -- reading --------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The Prometheus text format of every series (all workers)."""
        from prometheus_client import generate_latest

        self._before_read()
        return generate_latest(self.registry)

    def _before_read(self) -> None:
        if self.directory is not None:
            self.refresh_process()
            self._prune_dead_workers()

    def _recent(self) -> dict[str, list[Record]]:
        """Every ring's records by label: this process's, or every worker's from the files."""
        merged: dict[str, list[Record]] = {}
        if self.directory is None:
            for label, ring in self._rings.items():
                merged[label] = ring.records()
            return merged
        for label, records in read_ring_files(self.directory):
            merged.setdefault(label, []).extend(records)
        return merged

    def snapshot(self, *, uptime: float) -> dict[str, Any]:
        """The JSON of ``/metrics``: totals over every worker, recent latency, providers."""
        self._before_read()
        totals = _Totals()
        for family in self.registry.collect():
            for sample in family.samples:
                totals.add(sample.name, sample.labels, sample.value)
        recent = self._recent()
        requests = sorted(recent.get("requests", []), key=lambda r: r.at)[-self.window :]
        latencies = sorted(r.seconds * 1000 for r in requests)
        providers: dict[str, Any] = {}
        now = time.time()
        for name in sorted(totals.circuits.keys() | totals.attempts.keys()):
            attempts = totals.attempts.get(name, {})
            count = sum(attempts.values())
            failures = sum(v for k, v in attempts.items() if k not in _PROVIDER_OK)
            window = [r for r in recent.get("upstream:" + name, []) if now - r.at <= RECENT_SECS]
            recent_failures = sum(1 for r in window if not r.ok)
            upstream_ms = sorted(r.seconds * 1000 for r in window)
            providers[name] = {
                "circuit": CIRCUIT_NAMES.get(int(totals.circuits.get(name, 0)), "closed"),
                "attempts": int(count),
                "failures": int(failures),
                "outcomes": {k: int(v) for k, v in sorted(attempts.items())},
                "recent_attempts": len(window),
                "recent_error_rate": _ratio(recent_failures, len(window)),
                "latency_ms": _percentiles(upstream_ms),
                "tokens": {k: int(v) for k, v in sorted(totals.tokens.get(name, {}).items())},
            }
        total = int(totals.requests)
        successful = total - int(totals.failed)
        return {
            "total_requests": total,
            "successful_requests": successful,
            "failed_requests": total - successful,
            "success_rate": _ratio(successful, total, empty=1.0),
            "rate_limited_requests": int(totals.rate_limited),
            "auth_failures": int(totals.auth_failures),
            "in_flight_requests": int(totals.in_flight),
            "latency_ms": {**_percentiles(latencies), "samples": len(latencies)},
            "providers": providers,
            "tokens": {
                "prompt": int(sum(t.get("prompt", 0) for t in totals.tokens.values())),
                "completion": int(sum(t.get("completion", 0) for t in totals.tokens.values())),
            },
            "admin_writes": {
                action: {k: int(v) for k, v in sorted(outcomes.items())}
                for action, outcomes in sorted(totals.admin_writes.items())
            },
            "uptime": round(uptime, 3),
        }


class _Totals:
    """Sums of the series ``snapshot`` reports, read from the collected samples."""

    def __init__(self) -> None:
        self.requests = 0.0
        self.failed = 0.0
        self.rate_limited = 0.0
        self.auth_failures = 0.0
        self.in_flight = 0.0
        self.attempts: dict[str, dict[str, float]] = {}
        self.circuits: dict[str, float] = {}
        self.tokens: dict[str, dict[str, float]] = {}
        self.admin_writes: dict[str, dict[str, float]] = {}

    def add(self, name: str, labels: Mapping[str, str], value: float) -> None:
        if name == "fkllm_requests_total":
            self.requests += value
        elif name == "fkllm_failed_requests_total":
            self.failed += value
        elif name == "fkllm_upstream_requests_total":
            outcomes = self.attempts.setdefault(labels["provider"], {})
            outcomes[labels["outcome"]] = outcomes.get(labels["outcome"], 0.0) + value
        elif name == "fkllm_circuit_breaker_state":
            self.circuits[labels["provider"]] = value
        elif name == "fkllm_tokens_total":
            kinds = self.tokens.setdefault(labels["provider"], {})
            kinds[labels["kind"]] = kinds.get(labels["kind"], 0.0) + value
        elif name == "fkllm_rate_limit_hits_total":
            self.rate_limited += value
        elif name == "fkllm_auth_failures_total":
            self.auth_failures += value
        elif name == "fkllm_in_flight_requests":
            self.in_flight += value
        elif name == "fkllm_admin_writes_total":
            outcomes = self.admin_writes.setdefault(labels["action"], {})
            outcomes[labels["outcome"]] = outcomes.get(labels["outcome"], 0.0) + value


def _ratio(part: float, whole: float, empty: float | None = None) -> float | None:
    return round(part / whole, 4) if whole else empty


def _percentiles(ordered: list[float]) -> dict[str, float | None]:
    def at(fraction: float) -> float | None:
        value = percentile(ordered, fraction)
        return None if value is None else round(value, 3)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_process: Metrics | None = None


def process_metrics(window: int | None = None) -> Metrics:
    """This process's ``Metrics``, made on first use (in multiprocess mode when the
    daemon set ``PROMETHEUS_MULTIPROC_DIR``). ``window`` sizes the latency rings until
    the first request is recorded; every call returns the same object.
    """
    global _process
    if _process is None or _process._pid != os.getpid():
        _process = Metrics(window or 4096, os.environ.get(MULTIPROC_ENV) or None)
    elif window is not None and not _process._rings:
        _process.window = window  # nothing recorded yet: the rings are made on first use
    return _process
