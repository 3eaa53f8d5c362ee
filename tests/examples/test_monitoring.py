"""examples/monitoring: the alert rules pass promtool (and fire when they should), and the
rules and the Grafana dashboard use only series the proxy exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fkllmproxy.observability.metrics import Metrics
from tests.conftest import prometheus_samples

MONITORING = Path(__file__).parents[2] / "examples" / "monitoring"
RULES = MONITORING / "prometheus-alerts.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RULE_TESTS = Path(__file__).parent / "alerts_test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package 'prometheus')"
)
SERIES = re.compile(r"\b((?:fkllm|process)_[a-z_]+)\b")


def exported_names() -> set[str]:
    """Every sample name the proxy exports once each kind of event has happened."""
    metrics = Metrics(window=16)
    metrics.request_started()
    metrics.request_finished(route="/r", model="m", provider="p", status=502, seconds=0.1)
    metrics.upstream_attempt("p", "error", 0.1)
    metrics.first_token("p", 0.1)
    metrics.tokens("p", "m", 1, 1)
    metrics.rate_limited()
    metrics.auth_failed()
    metrics.circuit_state("p", "open")
    return {name for name, _ in prometheus_samples(metrics.exposition().decode())}


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 rules found" in result.stdout


@needs_promtool
def test_the_five_alerts_fire_on_their_conditions(tmp_path: Path) -> None:
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(RULE_TESTS.read_text().replace("RULES_PATH", str(RULES)))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(tests)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_name_the_runbook_alerts() -> None:
    names = re.findall(r"alert: (\w+)", RULES.read_text())
    assert names == [
        "FkllmproxyDown",
        "FkllmproxyHighErrorRate",
        "FkllmproxyHighLatency",
        "FkllmproxyCircuitOpen",
        "FkllmproxyRateLimitHits",
    ]


def test_rules_and_dashboard_use_exported_series() -> None:
    exported = exported_names()
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert len(expressions) >= 15
    used = {name for expr in expressions for name in SERIES.findall(expr)}
    used |= set(SERIES.findall(RULES.read_text()))
    assert used, "no series found"
    assert used <= exported, f"not exported: {sorted(used - exported)}"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
