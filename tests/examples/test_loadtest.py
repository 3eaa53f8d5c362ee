"""examples/loadtest: the Locust scenario runs headless against a real daemon on the mock
provider, every task succeeding; against a key the proxy refuses, every task fails."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MASTER_KEY

LOCUSTFILE = Path(__file__).parents[2] / "examples" / "loadtest" / "locustfile.py"
LOCUST = Path(sys.executable).with_name("locust")
needs_locust = pytest.mark.skipif(not LOCUST.exists(), reason="locust is not installed")
TASKS = {"chat", "chat stream", "messages"}


def run_locust(tmp_path: Path, url: str, key: str, seconds: int = 4) -> tuple[int, dict[str, Any]]:
    """Run the scenario headless; its exit status and the stats CSV's rows by task name."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "FKLLM_"))}
    env.update(FKLLM_BASE_URL=url, FKLLM_API_KEY=key, FKLLM_MODEL="mock", FKLLM_PROMPT="hi")
    result = subprocess.run(
        [str(LOCUST), "-f", str(LOCUSTFILE), "--headless", "-u", "4", "-r", "4",
         "-t", f"{seconds}s", "--only-summary", "--csv", str(tmp_path / "run")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    with (tmp_path / "run_stats.csv").open() as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    return result.returncode, rows


@needs_locust
def test_every_task_succeeds_against_the_mock_provider(mock_daemon: Any, tmp_path: Path) -> None:
    """Chat, chat stream and messages each run and none fails; locust exits 0."""
    status, rows = run_locust(tmp_path, mock_daemon.url, MASTER_KEY)
    assert set(rows) >= TASKS
    for name in TASKS:
        assert int(rows[name]["Request Count"]) > 0, name
        assert rows[name]["Failure Count"] == "0", name
    assert status == 0


@needs_locust
def test_a_refused_key_fails_every_task(mock_daemon: Any, tmp_path: Path) -> None:
    """The scenario checks answers: 401s are failures, and locust exits 1."""
    status, rows = run_locust(tmp_path, mock_daemon.url, "sk-not-a-key", seconds=2)
    for name in TASKS:
        assert rows[name]["Failure Count"] == rows[name]["Request Count"] != "0", name
    assert status == 1
