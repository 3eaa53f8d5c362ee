"""The benchmark harness itself: parsing, reporting, process accounting, one tiny run.

No figure is asserted here: these tests pin that the instrument reads wrk correctly,
renders what it measured, and can drive a real nginx when nginx and wrk are installed.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench.payloads import SSE_CHUNKS, chat_request, completion_body, sse_body
from bench.procstat import descendants, sample_tree
from bench.scenarios import SCENARIOS, select
from bench.stream_timing import measure_streams, percentile
from bench.targets import FkllmCallerTarget, check_endpoint
from bench.upstream import Nginx, echo_module_available, nginx_config
from bench.wrk import lua_script, parse_output, run_wrk, wrk_available

from bench import report

CANNED_WRK = """Running 1s test @ http://127.0.0.1:4000/v1/chat/completions
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  500.00us   9.00ms   90.00%
  4000 requests in 1.00s, 2.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   4000.00
WRK_JSON {"requests":4000,"duration_us":1000000,"bytes":2000000,"errors":{"connect":0,"read":1,"write":0,"status":3,"timeout":0},"latency_us":{"min":900,"mean":2100.5,"max":9000,"p50":2000,"p90":2500,"p99":4000,"p999":8000}}
"""


def _load(rps: float, p50: float, p99: float, cpu: float, errors: int = 0) -> dict[str, object]:
    return {
        "rps": rps,
        "requests": int(rps * 10),
        "duration_s": 10.0,
        "errors": {"status": errors},
        "error_count": errors,
        "latency_ms": {"p50": p50, "p90": p50 * 1.2, "p99": p99, "mean": p50, "max": p99},
        "cpu_s": cpu * rps * 10 / 1000,
        "cpu_ms_per_req": cpu,
        "rss_mib": 50.0,
    }


def _seq(ttfb: float, total: float) -> dict[str, object]:
    return {
        "ttfb_p50": ttfb,
        "ttfb_p90": ttfb * 1.1,
        "ttfb_mean": ttfb,
        "total_p50": total,
        "total_p90": total,
        "count": 100.0,
        "errors": 0.0,
        "error_count": 0,
        "cpu_ms_per_req": 0.5,
        "rss_mib": 50.0,
    }


def _canned_results() -> dict[str, object]:
    direct = {
        "json_c1": _load(20000, 0.05, 0.2, 0.01),
        "json_c64": _load(60000, 1.0, 3.0, 0.01),
        "ttfb_sse": _seq(0.1, 0.1),
        "slow_c1024": _load(1950, 501.0, 505.0, 0.02),
    }
    fkllm = {
        "json_c1": _load(3000, 0.4, 1.2, 0.3),
        "json_c64": _load(6000, 10.0, 20.0, 0.3),
        "ttfb_sse": _seq(0.6, 0.7),
        "slow_c1024": _load(1940, 505.0, 530.0, 0.3),
    }
    litellm = {"json_c1": _load(140, 7.0, 12.0, 7.0), "json_c64": _load(150, 300, 1800, 6.5)}
    return {
        "meta": {"started": "now", "cpus": 2, "slow_delay_s": 0.5, "duration_s": 10},
        "scenarios": [
            s.__dict__ for s in select(["json_c1", "json_c64", "ttfb_sse", "slow_c1024"])
        ],
        "targets": {
            "direct": {"skipped": None, "scenarios": direct, "rss_idle_mib": 5.0},
            "fkllm": {"skipped": None, "scenarios": fkllm, "rss_idle_mib": 55.0},
            "litellm": {"skipped": None, "scenarios": litellm, "rss_idle_mib": 300.0},
            "portkey": {"skipped": "node is not installed", "scenarios": {}},
        },
    }


class TestWrkOutput:
    def test_reads_counts_errors_and_percentiles(self) -> None:
        """The Lua report line becomes counts, errors and latency in milliseconds."""
        result = parse_output(CANNED_WRK)
        assert result.requests == 4000
        assert result.rps == pytest.approx(4000.0)
        assert result.error_count == 4
        assert result.ok_requests == 3997
        assert result.latency_ms["p99"] == pytest.approx(4.0)
        assert result.latency_ms["mean"] == pytest.approx(2.1005)

    def test_missing_report_line_is_an_error(self) -> None:
        """Output without the report line is refused, not read as zero."""
        with pytest.raises(ValueError, match="WRK_JSON"):
            parse_output("Running 1s test\nRequests/sec: 10\n")

    def test_script_carries_body_and_headers_verbatim(self) -> None:
        """Bodies and header values survive Lua quoting, even with closing brackets."""
        body = b'{"messages":[["]]"]],"x":"]=]"}'
        script = lua_script(body, {"authorization": "Bearer k]]"})
        assert body.decode() in script
        assert "Bearer k]]" in script
        assert "wrk.headers[ [" in script  # a space: "[[" would open a Lua long string


class TestPayloads:
    def test_stream_has_twenty_chunks_then_done(self) -> None:
        """The fixed stream is SSE_CHUNKS data frames and a final [DONE]."""
        frames = sse_body().split(b"\n\n")
        data = [f for f in frames if f.startswith(b"data: {")]
        assert len(data) == SSE_CHUNKS
        assert frames[-2] == b"data: [DONE]"

    def test_request_and_completion_are_openai_shaped(self) -> None:
        """The request names the model; the completion carries usage."""
        assert b'"model":"bench-json"' in chat_request("bench-json")
        assert b'"stream":true' in chat_request("m", stream=True)
        assert b'"usage"' in completion_body()


class TestNginxConfig:
    def test_every_kind_gets_its_own_port(self, tmp_path: Path) -> None:
        """Each kind of answer is served on the port it was given."""
        ports = {"json": 1001, "sse": 1002, "paced": 1003, "slow": 1004, "slow_sse": 1005}
        text = nginx_config(tmp_path, ports, with_echo=True)
        for port in ports.values():
            assert f"listen 127.0.0.1:{port}" in text
        assert "echo_sleep 0.5;" in text
        assert "daemon off;" in text

    def test_without_echo_only_the_instant_kinds(self, tmp_path: Path) -> None:
        """Without the echo module the delayed kinds are left out, not faked."""
        text = nginx_config(tmp_path, {"json": 1, "sse": 2, "slow": 3}, with_echo=False)
        assert "echo_sleep" not in text and "load_module" not in text
        assert "listen 127.0.0.1:3" not in text


class TestReport:
    def test_renders_tables_ratios_goals_and_skips(self) -> None:
        """The report shows every measured target, ratios, the goals and why a peer is missing."""
        text = report.render(_canned_results())
        assert "**portkey: skipped** — node is not installed" in text
        assert "| json_c64 | fkllm | 6,000 | 0.10x |" in text
        assert "| json_c64 | 40x |" in text  # fkllm ÷ litellm req/s
        assert "Idle RSS | < 60 MB | 55.0 MiB | yes |" in text
        assert "| Requests/s at c=64 vs Portkey | ≥ 3x | portkey not measured | - |" in text

    def test_a_missed_goal_is_marked(self) -> None:
        """A goal the figures miss reads 'no', in bold."""
        results = _canned_results()
        broken = copy.deepcopy(results)
        broken["targets"]["fkllm"]["rss_idle_mib"] = 80.0  # type: ignore[index]
        assert "Idle RSS | < 60 MB | 80.0 MiB | **no** |" in report.render(broken)

    def test_redis_row_shows_what_the_backend_adds(self) -> None:
        """With fkllm-redis measured, the report prints its cost next to plain fkllm."""
        results = _canned_results()
        assert "What the Redis backend costs" not in report.render(results)
        redis = {"json_c64": _load(4500, 13.0, 26.0, 0.42)}
        results["targets"]["fkllm-redis"] = {"skipped": None, "scenarios": redis}  # type: ignore[index]
        text = report.render(results)
        assert "## What the Redis backend costs" in text
        assert "| json_c64 | 6,000 | 4,500 | 0.75x | 0.300 | 0.420 | +0.120 |" in text

    def test_identity_cost_shows_what_a_budget_and_a_jwt_add(self) -> None:
        """With bench.identity_cost's figures, the report prints each identity's quickest
        in-process CPU and what it adds to the plain key's."""
        results = _canned_results()
        assert "in process" not in report.render(results)
        results["identity_cost"] = {
            "rounds": 2,
            "cpu_us": {"key": [130.0, 128.0], "budget": [141.0, 139.5], "jwt": [133.0, 134.0]},
            "quickest_cpu_us": {"key": 128.0, "budget": 139.5, "jwt": 133.0},
            "added_us": {"budget": 11.5, "jwt": 5.0},
        }
        text = report.render(results)
        assert "## What a budget or a JWT costs, in process" in text
        assert "| key with a budget | 139.5 | +11.5 |" in text
        assert "| JWT | 133.0 | +5.0 |" in text

    def test_docs_table_is_replaced_between_markers_only(self) -> None:
        """--update-docs swaps the summary in and leaves the rest of the page alone."""
        page = f"intro\n{report.DOCS_START}\nold table\n{report.DOCS_END}\noutro\n"
        updated = report.update_docs(page, _canned_results())
        assert updated.startswith("intro\n") and updated.endswith("outro\n")
        assert "old table" not in updated
        assert "| fkllm | 6,000 | 0.300 | +0.35 | +0.50 |" in updated
        assert report.update_docs("no markers here", _canned_results()) == "no markers here"

    def test_slow_share_uses_sustained_rate(self) -> None:
        """% of ideal is connections / mean latency over connections / delay."""
        figures = report.slow_figures(_canned_results(), "fkllm", "slow_c1024")
        assert figures is not None
        assert figures["ideal"] == pytest.approx(2048)
        assert figures["pct_ideal"] == pytest.approx(100 * 0.5 / 0.505)


class TestHelpers:
    def test_percentile_interpolates(self) -> None:
        assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
        assert percentile([], 90) == 0.0

    def test_unknown_scenario_is_named(self) -> None:
        with pytest.raises(ValueError, match="nope"):
            select(["json_c1", "nope"])
        assert len(select([])) == len(SCENARIOS)

    def test_process_tree_includes_children(self) -> None:
        """CPU and memory are summed over the process and its descendants."""
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert child.pid in descendants(os.getpid())
            sample = sample_tree(os.getpid())
            assert sample.processes >= 2
            assert sample.rss_mib > 0
        finally:
            child.kill()
            child.wait(timeout=10)


needs_tools = pytest.mark.skipif(
    not (wrk_available() and Path("/usr/sbin/nginx").exists()),
    reason="nginx and wrk are not installed (make bench-setup installs them)",
)


@needs_tools
class TestAgainstRealNginx:
    @pytest.fixture
    def upstream(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        nginx = Nginx.start(tmp_path / "nginx")
        yield nginx
        nginx.stop()

    @pytest.mark.parametrize("caller", ["budget", "jwt"])
    def test_a_budgeted_key_and_a_jwt_are_answered(
        self, upstream: Nginx, tmp_path: Path, caller: str
    ) -> None:
        """The fkllm-budget and fkllm-jwt targets start and answer a real request with 200
        (a refused identity would fail the check before anything is measured)."""
        target = FkllmCallerTarget(name=f"fkllm-{caller}", caller=caller)
        target.start(upstream, tmp_path)
        try:
            assert check_endpoint(target.endpoint("json"), stream=False) is None
        finally:
            target.stop()

    def test_one_second_of_wrk_direct(self, upstream: Nginx, tmp_path: Path) -> None:
        """A one-second wrk run against nginx completes requests without errors."""
        result = run_wrk(
            f"{upstream.url('json')}/chat/completions",
            chat_request("bench-json"),
            {"content-type": "application/json"},
            connections=2,
            duration_s=1,
            workdir=tmp_path,
        )
        assert result.requests > 0
        assert result.error_count == 0

    def test_sequential_streams_direct(self, upstream: Nginx) -> None:
        """Streams are read to [DONE] and timed, first byte before last."""
        timing = measure_streams(
            f"{upstream.url('sse')}/chat/completions",
            chat_request("bench-sse", stream=True),
            {},
            count=5,
            max_seconds=10,
        )
        assert timing.errors == 0, timing.sample_error
        assert len(timing.ttfb_ms) == 5
        assert all(f <= t for f, t in zip(timing.ttfb_ms, timing.total_ms, strict=True))

    @pytest.mark.skipif(not echo_module_available(), reason="nginx echo module not installed")
    def test_slow_kind_waits_before_answering(self, upstream: Nginx) -> None:
        """The slow upstream really holds the answer back (at least the configured delay)."""
        timing = measure_streams(
            f"{upstream.url('slow')}/chat/completions",
            chat_request("bench-slow"),
            {},
            count=1,
            max_seconds=10,
            expect=b"chat.completion",
        )
        assert timing.errors == 0, timing.sample_error
        assert timing.total_ms[0] >= 450


def test_the_responses_row_sends_a_responses_stream_to_gateways_only() -> None:
    """responses_sse_c16: gateways get POST /v1/responses; direct stays the upstream's chat."""
    from bench.targets import Endpoint

    (scenario,) = select(["responses_sse_c16"])
    assert scenario.api == "responses" and scenario.stream
    gateway = Endpoint("http://127.0.0.1:1/v1/chat/completions", {}, "bench-sse")
    moved = gateway.for_api(scenario.api)
    assert moved.url == "http://127.0.0.1:1/v1/responses"
    body = moved.body(stream=True)
    assert b'"input"' in body and b'"stream":true' in body and b'"messages"' not in body
    direct = Endpoint("http://127.0.0.1:2/v1/chat/completions", {}, "bench-sse", gateway=False)
    assert direct.for_api(scenario.api) == direct


@needs_tools
@pytest.mark.parametrize("caller", ["key", "budget", "jwt"])
def test_inproc_drives_every_kind_of_caller(
    caller: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """bench.inproc answers every request with 200 for a client key, a budgeted key and a JWT
    (a refused caller would show as "not 200" and a non-zero exit)."""
    from bench.inproc import main as inproc

    code = inproc(["--mock", "--caller", caller, "--requests", "40", "--batches", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"caller {caller}" in out and "; 0 not 200" in out
