"""The benchmark harness itself: parsing, reporting, process accounting, one tiny run.

No figure is asserted here: these tests pin that the instrument reads wrk correctly,
renders what it measured, and can drive a real nginx when nginx and wrk are installed.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from bench.payloads import SSE_CHUNKS, chat_request, completion_body, sse_body
from bench.procstat import descendants, sample_tree
from bench.run import measure_target
from bench.scenarios import SCENARIOS, select
from bench.stream_timing import measure_streams, percentile
from bench.targets import DirectTarget, FkllmCallerTarget, FkllmTarget, check_endpoint
from bench.tls import ServerCertificate, make_certificates
from bench.upstream import Nginx, echo_module_available, nginx_config, parse_stub_status
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


def _load(
    rps: float, p50: float, p99: float, cpu: float, errors: int = 0, opened: int = 0
) -> dict[str, object]:
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
        "upstream_connections": opened,
        "upstream_connections_per_1k": 1000 * opened / (rps * 10),
        "upstream_connections_steady": 0,
        "upstream_requests_steady": int(rps * 5),
        "upstream_connections_per_1k_steady": 0.0,
        "cpu_ms_per_req_steady": cpu * 0.9,
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


def _with_tls(results: dict[str, object]) -> dict[str, object]:
    """The canned run plus the two TLS scenarios for direct and fkllm."""
    results = copy.deepcopy(results)
    results["scenarios"] += [s.__dict__ for s in select(["json_tls_c64", "slow_tls_c1024"])]  # type: ignore[operator]
    targets = results["targets"]
    targets["direct"]["scenarios"]["json_tls_c64"] = _load(40000, 1.5, 4.0, 0.02, opened=64)  # type: ignore[index]
    targets["fkllm"]["scenarios"]["json_tls_c64"] = _load(5500, 11.0, 22.0, 0.35, opened=30)  # type: ignore[index]
    targets["fkllm"]["scenarios"]["slow_tls_c1024"] = _load(1900, 510.0, 540.0, 0.4)  # type: ignore[index]
    return results


class TestNginxConfig:
    def test_every_kind_gets_its_own_port(self, tmp_path: Path) -> None:
        """Each kind of answer is served on the port it was given."""
        ports = {"json": 1001, "sse": 1002, "paced": 1003, "slow": 1004, "slow_sse": 1005}
        text = nginx_config(tmp_path, ports, with_echo=True)
        for port in ports.values():
            assert f"listen 127.0.0.1:{port}" in text
        assert "echo_sleep 0.5;" in text
        assert "daemon off;" in text

    def test_tls_kinds_listen_with_ssl_and_a_status_port(self, tmp_path: Path) -> None:
        """The TLS kinds get an ssl listener with the run's certificate; the counter port
        answers stub_status; without a certificate the TLS kinds are left out."""
        cert = ServerCertificate(tmp_path / "ca", tmp_path / "crt", tmp_path / "key", "x")
        ports = {"json": 1, "json_tls": 2, "slow_tls": 3}
        text = nginx_config(tmp_path, ports, with_echo=True, tls=cert, status_port=4)
        assert "listen 127.0.0.1:1 backlog=8192 reuseport;" in text
        assert "listen 127.0.0.1:2 backlog=8192 reuseport ssl;" in text
        assert f"ssl_certificate {tmp_path / 'crt'};" in text
        assert f"ssl_certificate_key {tmp_path / 'key'};" in text
        assert "listen 127.0.0.1:4;" in text and "stub_status;" in text
        assert text.count("echo_sleep 0.5;") == 1  # slow_tls answers as slow does
        plain = nginx_config(tmp_path, ports, with_echo=True)
        assert "ssl;" not in plain and "listen 127.0.0.1:2" not in plain

    def test_stub_status_is_parsed(self) -> None:
        """The counters come out of nginx's stub_status page; anything else is refused."""
        page = (
            "Active connections: 3 \nserver accepts handled requests\n 17 17 1042 \n"
            "Reading: 0 Writing: 1 Waiting: 2 \n"
        )
        status = parse_stub_status(page)
        assert (status.active, status.accepts, status.handled, status.requests) == (3, 17, 17, 1042)
        with pytest.raises(ValueError, match="stub_status"):
            parse_stub_status("<html>404</html>")

    def test_without_echo_only_the_instant_kinds(self, tmp_path: Path) -> None:
        """Without the echo module the delayed kinds are left out, not faked."""
        text = nginx_config(tmp_path, {"json": 1, "sse": 2, "slow": 3}, with_echo=False)
        assert "echo_sleep" not in text and "load_module" not in text
        assert "listen 127.0.0.1:3" not in text


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> None:
    """A TLS handshake between two in-memory ends; raises ``ssl.SSLError`` if refused."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    near = client.wrap_bio(to_client, to_server, server_hostname=hostname)
    far = server.wrap_bio(to_server, to_client, server_side=True)
    for _ in range(10):
        done = 0
        for end in (near, far):
            try:
                end.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
        if done == 2:
            return
    raise AssertionError("the handshake did not finish")


class TestCertificates:
    @pytest.mark.parametrize("use_openssl", [False, True])
    def test_server_certificate_is_trusted_through_the_ca_only(
        self, tmp_path: Path, use_openssl: bool
    ) -> None:
        """The certificate verifies for 127.0.0.1 against the run's CA, and not without it."""
        if use_openssl and shutil.which("openssl") is None:
            pytest.skip("no openssl command")
        files = make_certificates(tmp_path, use_openssl=use_openssl)
        assert files.made_with == ("openssl" if use_openssl else "cryptography")
        assert files.key_file.stat().st_mode & 0o077 == 0
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(files.cert_file, files.key_file)
        _handshake(server, ssl.create_default_context(cafile=files.ca_file), "127.0.0.1")
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(server, ssl.create_default_context(), "127.0.0.1")
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(server, ssl.create_default_context(cafile=files.ca_file), "example.com")


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

    def test_tls_rows_beside_their_plain_rows(self) -> None:
        """TLS rows show the plain row's figures, the CPU TLS adds, connections per 1,000
        requests, and the two TLS goals; the existing tables keep their rows."""
        plain_text = report.render(_canned_results())
        text = report.render(_with_tls(_canned_results()))
        assert "## Upstream over TLS" not in plain_text
        assert "## Upstream over TLS" in text
        # fkllm: 5,500 req/s over TLS against 6,000 plain; 0.35 - 0.3 ms; 30 of 55,000.
        assert (
            "| json_tls_c64 | fkllm | 5,500 | 0.14x | 6,000 |  | 0.350 | 0.300 | +0.050 |" in text
        )
        assert "| +0.050 | +0.045 | 0.55 / 0.00 | 0 |" in text  # steady: 0.315 - 0.270
        assert "| slow_tls_c1024 | fkllm | 1,900 | - | 1,940 |" in text
        assert "| CPU TLS adds per request at c=64 (keep-alive) | ≤ 0.1 ms | +0.050 ms" in text
        assert "json_tls_c64 0.00 (whole run 0.55)" in text
        assert "## Upstream connections opened per 1,000 requests" in text
        for line in plain_text.splitlines():
            if line.startswith("| json_c64 |"):
                assert line in text

    def test_tls_summary_table_follows_the_unchanged_one(self) -> None:
        """The docs summary keeps its table as it was and adds one for the TLS rows."""
        plain = report.summary(_canned_results())
        summary = report.summary(_with_tls(_canned_results()))
        assert summary.startswith(plain.rstrip("\n"))
        assert "| fkllm | 5,500 | 0.350 | +0.050 |" in summary
        assert "0.00 / 0.00 |" in summary

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

    def test_tls_upstream_is_trusted_through_the_run_ca(self, upstream: Nginx) -> None:
        """The TLS kinds answer over https to a client given the run's CA, and a client
        with the system's trust store refuses the certificate."""
        direct = DirectTarget(name="direct")
        direct.start(upstream, upstream.root)
        endpoint = direct.endpoint("json_tls")
        assert endpoint.url.startswith("https://") and endpoint.ca_file
        assert check_endpoint(endpoint, stream=False) is None
        untrusted = dataclasses.replace(endpoint, ca_file=None)
        assert "CERTIFICATE_VERIFY_FAILED" in (check_endpoint(untrusted, stream=False) or "")

    def test_the_counter_sees_each_new_connection(self, upstream: Nginx) -> None:
        """stub_status's accepts grows by one per connection (its own reading included)."""
        before = upstream.status().accepts
        for _ in range(3):
            direct = DirectTarget(name="direct")
            direct.start(upstream, upstream.root)
            assert check_endpoint(direct.endpoint("json_tls"), stream=False) is None
        assert upstream.status().accepts - before == 3 + 1

    def test_tls_scenarios_run_on_fkllm_with_connections_counted(
        self, upstream: Nginx, tmp_path: Path
    ) -> None:
        """A short run of the TLS scenarios (and their plain one) through fkllm: fkllm
        trusts the CA through its provider's ca_file, and every load scenario carries the
        upstream connection counts."""
        ids = ["json_c64", "json_tls_c64"]
        if echo_module_available():
            ids.append("slow_tls_c1024")
        small = [dataclasses.replace(s, connections=4) for s in select(ids)]
        target = FkllmTarget(name="fkllm")
        try:
            entry = measure_target(target, upstream, small, duration=1, warmup=1, workdir=tmp_path)
        finally:
            target.stop()
        assert f'ca_file = "{upstream.ca_file}"' in (tmp_path / "fkllm.toml").read_text()
        assert entry["skipped"] is None
        for sid in ids:
            result = entry["scenarios"][sid]
            assert "failed" not in result, result
            assert result["requests"] > 0 and result["error_count"] == 0
            assert result["upstream_connections"] >= 0
            assert result["upstream_requests_steady"] > 0
            assert result["upstream_connections_per_1k_steady"] is not None
            assert result["cpu_ms_per_req_steady"] is not None

    def test_identity_targets_skip_the_tls_scenarios(self, upstream: Nginx, tmp_path: Path) -> None:
        """fkllm-key (like fkllm-redis) is not put through the TLS scenarios."""
        target = FkllmCallerTarget(name="fkllm-key", caller="key")
        try:
            entry = measure_target(
                target, upstream, select(["json_tls_c64"]), duration=1, warmup=0, workdir=tmp_path
            )
        finally:
            target.stop()
        assert entry["skipped"] is None and entry["scenarios"] == {}

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
