"""``fkllm rotate-key``: a new key in the env file, atomically, printed once."""

from __future__ import annotations

import multiprocessing
import re
import stat
from pathlib import Path

from fkllmproxy.cli.rotate_key import rotate
from fkllmproxy.config.envfile import read_env_file
from tests.conftest import fkllm

ENV = """# /etc/fkllmproxy/env: secrets for fkllmproxy
OPENAI_API_KEY=sk-provider-secret   # the provider

APP_AUTH__MASTER_KEY=old-master-key-1234
# trailing comment
"""


def env_file(tmp_path: Path, text: str = ENV) -> Path:
    path = tmp_path / "env"
    path.write_text(text)
    path.chmod(0o640)
    return path


class TestRotateKey:
    def test_new_key_printed_once_and_written(self, tmp_path: Path) -> None:
        path = env_file(tmp_path)
        result = fkllm("rotate-key", "--env-file", str(path))
        assert result.returncode == 0, result.stderr
        key = result.stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{64}", key)
        assert result.stdout == key + "\n"
        assert key not in result.stderr and "systemctl reload" in result.stderr
        assert path.read_text() == ENV.replace("old-master-key-1234", key)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_keep_previous_writes_old_key_and_rotation_time(self, tmp_path: Path) -> None:
        path = env_file(tmp_path)
        result = fkllm("rotate-key", "--env-file", str(path), "--keep-previous")
        assert result.returncode == 0, result.stderr
        values = read_env_file(path)
        assert values["APP_AUTH__MASTER_KEY"] == result.stdout.strip()
        assert values["APP_AUTH__PREVIOUS_MASTER_KEY"] == "old-master-key-1234"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", values["APP_AUTH__ROTATED_AT"])
        assert path.read_text().startswith(
            ENV.replace("old-master-key-1234", values["APP_AUTH__MASTER_KEY"])
        )

    def test_without_keep_previous_an_old_previous_key_is_dropped(self, tmp_path: Path) -> None:
        path = env_file(
            tmp_path,
            ENV
            + "APP_AUTH__PREVIOUS_MASTER_KEY=older\nAPP_AUTH__ROTATED_AT=2020-01-01T00:00:00Z\n",
        )
        assert fkllm("rotate-key", "--env-file", str(path)).returncode == 0
        values = read_env_file(path)
        assert "APP_AUTH__PREVIOUS_MASTER_KEY" not in values
        assert "APP_AUTH__ROTATED_AT" not in values
        assert values["OPENAI_API_KEY"] == "sk-provider-secret"

    def test_appends_a_key_to_a_file_without_one(self, tmp_path: Path) -> None:
        path = env_file(tmp_path, "# only a comment\n")
        result = fkllm("rotate-key", "--env-file", str(path), "--keep-previous")
        assert result.returncode == 0
        assert "no APP_AUTH__MASTER_KEY to keep" in result.stderr
        assert (
            path.read_text() == f"# only a comment\nAPP_AUTH__MASTER_KEY={result.stdout.strip()}\n"
        )

    def test_symlinked_env_file_keeps_its_link(self, tmp_path: Path) -> None:
        target = env_file(tmp_path)
        link = tmp_path / "env-link"
        link.symlink_to(target)
        result = fkllm("rotate-key", "--env-file", str(link))
        assert result.returncode == 0
        assert link.is_symlink()
        assert read_env_file(target)["APP_AUTH__MASTER_KEY"] == result.stdout.strip()

    def test_failures_exit_1_with_the_reason(self, tmp_path: Path) -> None:
        missing_dir = fkllm("rotate-key", "--env-file", str(tmp_path / "no" / "env"))
        assert missing_dir.returncode == 1
        assert missing_dir.stderr.startswith("fkllm: cannot rotate")
        assert missing_dir.stdout == ""
        broken = env_file(tmp_path, "APP_AUTH__MASTER_KEY=secret-value\nnot an assignment\n")
        result = fkllm("rotate-key", "--env-file", str(broken))
        assert result.returncode == 1
        assert "line 2" in result.stderr and "Traceback" not in result.stderr
        assert "secret-value" not in result.stderr
        assert broken.read_text() == "APP_AUTH__MASTER_KEY=secret-value\nnot an assignment\n"


def _rotate_many(path: str, count: int, queue: multiprocessing.Queue[tuple[str, str]]) -> None:
    for _ in range(count):
        rotation = rotate(Path(path), keep_previous=True)
        assert rotation.replaced is not None
        queue.put((rotation.replaced, rotation.key))


def test_concurrent_rotations_never_corrupt_the_file(tmp_path: Path) -> None:
    """Processes rotating at once: the file stays whole and the keys form one chain."""
    path = env_file(tmp_path)
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[tuple[str, str]] = context.Queue()
    workers = [context.Process(target=_rotate_many, args=(str(path), 5, queue)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    pairs = dict(queue.get(timeout=5) for _ in range(30))
    # No update was lost: each key was replaced by exactly one rotation, so following
    # replaced -> new from the original key walks through all 30 new keys in turn.
    assert len(pairs) == 30
    chain = ["old-master-key-1234"]
    while chain[-1] in pairs:
        chain.append(pairs[chain[-1]])
    assert len(chain) == 31
    values = read_env_file(path)
    assert values["APP_AUTH__MASTER_KEY"] == chain[-1]
    assert values["APP_AUTH__PREVIOUS_MASTER_KEY"] == chain[-2]
    assert values["OPENAI_API_KEY"] == "sk-provider-secret"
    text = path.read_text()
    assert text.count("APP_AUTH__MASTER_KEY=") == 1
    assert text.count("APP_AUTH__PREVIOUS_MASTER_KEY=") == 1
    assert text.startswith("# /etc/fkllmproxy/env: secrets for fkllmproxy\n")
    assert "# trailing comment\n" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env", "env.lock"]
