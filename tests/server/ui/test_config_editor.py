"""The Config page's editor: CSRF-checked like every console form, problems listed with
the posted text kept, nothing written by Validate or by a refused Save."""

from __future__ import annotations

import logging
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MOCK_CONFIG
from tests.server.ui.conftest import FORM, csrf_of, make_client, sign_in


def _form(**fields: str) -> str:
    return urllib.parse.urlencode(fields)


def test_the_editor_needs_the_csrf_token(tmp_path: Path) -> None:
    """A save or restore without this session's token is a 403 and the file is untouched."""
    with make_client(tmp_path) as client:
        sign_in(client)
        config = tmp_path / "c.toml"
        for path, fields in (
            ("/ui/config/source", {"action": "save", "text": "x = 1"}),
            ("/ui/config/restore", {"name": "c.toml.20260101T000000000000Z.bak"}),
        ):
            refused = client.post(path, content=_form(**fields), headers=FORM)
            assert refused.status_code == 403
        assert config.read_text() == MOCK_CONFIG


def test_validate_and_save_show_problems_and_keep_the_text(tmp_path: Path) -> None:
    """Every problem listed, the text as posted still in the editor, nothing written."""
    with make_client(tmp_path) as client:
        sign_in(client)
        config = tmp_path / "c.toml"
        html = client.get("/ui/config").text
        assert 'id="config-text"' in html and "No backups yet" in html
        token = csrf_of(html)
        bad = MOCK_CONFIG + "\n[rate_limit]\ncapacity = 0\nsurprise = 1\n"
        for action in ("validate", "save"):
            answer = client.post(
                "/ui/config/source",
                content=_form(csrf=token, action=action, text=bad),
                headers=FORM,
            )
            assert answer.status_code == 422
            assert "rate_limit.capacity" in answer.text and "rate_limit.surprise" in answer.text
            assert "surprise = 1" in answer.text  # the operator's text is not lost
        assert config.read_text() == MOCK_CONFIG
        good = MOCK_CONFIG + "\n[rate_limit]\ncapacity = 50\n"
        valid = client.post(
            "/ui/config/source",
            content=_form(csrf=token, action="validate", text=good),
            headers=FORM,
        )
        assert valid.status_code == 200 and "settings changed: rate_limit.capacity" in valid.text
        assert config.read_text() == MOCK_CONFIG
        saved: Any = client.post(
            "/ui/config/source", content=_form(csrf=token, action="save", text=good), headers=FORM
        )
        assert saved.status_code == 200 and "written" in saved.text
        assert config.read_text() == good
        assert 'aria-label="Restore c.toml.' in saved.text


def _writes(client: Any) -> dict[tuple[str, str], int]:
    counts = client.get("/metrics").json()["admin_writes"]
    return {(a, o): n for a, outcomes in counts.items() for o, n in outcomes.items()}


def test_console_writes_are_counted_and_name_the_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A save, a refused save and a restore of a missing backup each count once in
    fkllm_admin_writes_total; the write's log line names the console session, whose
    label the sign-in line carries too."""
    caplog.set_level(logging.INFO, logger="fkllmproxy")
    with make_client(tmp_path) as client:
        sign_in(client)
        before = _writes(client)  # the process's metrics: other tests' writes too
        token = csrf_of(client.get("/ui/config").text)
        good = MOCK_CONFIG + "\n[rate_limit]\ncapacity = 50\n"
        for text in (good, MOCK_CONFIG + "\n[rate_limit]\ncapacity = 0\n"):
            client.post(
                "/ui/config/source",
                content=_form(csrf=token, action="save", text=text),
                headers=FORM,
            )
        missing = client.post(
            "/ui/config/restore", content=_form(csrf=token, name="nope.bak"), headers=FORM
        )
        assert missing.status_code == 404
        after = _writes(client)
        assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k)} == {
            ("put", "ok"): 1,
            ("put", "invalid"): 1,
            ("restore", "refused"): 1,
        }
    (signed,) = [r for r in caplog.records if r.getMessage() == "console signed in"]
    (written,) = [
        r for r in caplog.records if r.getMessage() == "config file written in the console"
    ]
    label = signed.__dict__["session"]
    assert re.fullmatch(r"[0-9a-f]{12}", label)
    assert written.__dict__["who"] == f"console session {label} from testclient"
