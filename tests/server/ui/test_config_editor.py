"""The Config page's editor: CSRF-checked like every console form, problems listed with
the posted text kept, nothing written by Validate or by a refused Save."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from tests.conftest import MOCK_CONFIG
from tests.server.ui.test_routes import FORM, csrf_of, make_client, sign_in


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
