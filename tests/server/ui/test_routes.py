"""The console's handlers: sign-in, cookie flags, CSRF, expiry, sign-out, pages and names."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.conftest import MASTER_KEY
from tests.server.ui.conftest import FORM, clock, csrf_of, make_client, sign_in


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    with make_client(tmp_path) as client:
        yield client


class TestSignIn:
    def test_signed_out_pages_redirect_to_the_login(self, client: TestClient[Any]) -> None:
        """Every console page sends a signed-out browser to /ui/login; its JSON says 401."""
        for path in ("/ui", "/ui/", "/ui/providers", "/ui/keys", "/ui/usage", "/ui/config",
                     "/ui/usage.csv"):  # fmt: skip
            answer = client.get(path, follow_redirects=False)
            assert answer.status_code == 303, path
            assert answer.headers["location"] == "/ui/login"
        assert client.get("/ui/api/overview").status_code == 401
        post = client.post("/ui/keys", content="name=x", headers=FORM, follow_redirects=False)
        assert post.status_code == 303

    def test_the_login_form_has_its_accessible_names(self, client: TestClient[Any]) -> None:
        """A password field labelled "Master key" and a button "Sign in", posting the form."""
        page = client.get("/ui/login")
        assert page.status_code == 200
        html = page.text
        assert '<label for="master-key">Master key</label>' in html
        assert 'id="master-key" name="key" type="password"' in html
        assert '<button type="submit">Sign in</button>' in html
        assert '<form method="post" action="/ui/login"' in html
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"

    def test_sign_in_sets_a_strict_http_only_cookie(self, client: TestClient[Any]) -> None:
        """The cookie is HttpOnly, SameSite=Strict, Path=/ui, expiring after session_hours."""
        answer = sign_in(client)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/"
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("fkllm_session=")
        assert "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()  # the attribute is case-insensitive
        assert "Path=/ui" in cookie
        assert "Max-Age=43200" in cookie
        assert "Secure" not in cookie  # plain HTTP here
        assert MASTER_KEY not in cookie
        assert client.get("/ui/").status_code == 200

    def test_the_cookie_is_secure_over_tls(self, client: TestClient[Any]) -> None:
        """Behind TLS (or a proxy saying so) the cookie is Secure."""
        answer = client.post(
            "/ui/login",
            content=f"key={MASTER_KEY}",
            headers={**FORM, "x-forwarded-proto": "https"},
            follow_redirects=False,
        )
        assert "Secure" in answer.headers["set-cookie"]

    def test_a_wrong_key_is_refused_and_logged_without_it(
        self, client: TestClient[Any], caplog: pytest.LogCaptureFixture
    ) -> None:
        """401 with the form again; the log says "unauthorized" and holds neither key."""
        caplog.set_level(logging.DEBUG, logger="fkllmproxy")
        wrong = "sk-wrong-guess-000000000"
        answer = sign_in(client, wrong)
        assert answer.status_code == 401
        assert "That is not the master key." in answer.text
        assert "set-cookie" not in answer.headers
        assert any("unauthorized" in r.getMessage() for r in caplog.records)
        sign_in(client)
        dumped = " ".join(str(r.__dict__) for r in caplog.records)
        assert wrong not in dumped and MASTER_KEY not in dumped
        assert client.app.state.holder.access.auth_failures == 1

    def test_sign_in_attempts_are_rate_limited(self, client: TestClient[Any]) -> None:
        """After ten attempts from one address the next gets 429 with Retry-After."""
        for _ in range(10):
            assert sign_in(client, "sk-wrong-guess-000000000").status_code == 401
        limited = sign_in(client)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1

    def test_a_form_that_is_not_urlencoded_gets_a_json_error(self, client: TestClient[Any]) -> None:
        """415 in the API's error shape, naming the expected content type."""
        answer = client.post("/ui/login", json={"key": MASTER_KEY})
        assert answer.status_code == 415
        assert "x-www-form-urlencoded" in answer.json()["error"]["message"]

    def test_without_a_master_key_nobody_signs_in(self, tmp_path: Path) -> None:
        """No master key: the form says how to set one and every attempt is refused."""
        with make_client(tmp_path, APP_AUTH__MASTER_KEY="") as client:
            assert "APP_AUTH__MASTER_KEY" in client.get("/ui/login").text
            assert sign_in(client, "").status_code == 403


class TestSession:
    def test_a_session_ends_after_session_hours(self, client: TestClient[Any]) -> None:
        """With the clock moved past 12 h the cookie no longer signs in."""
        sign_in(client)
        clock(client).now += 11.9 * 3600
        assert client.get("/ui/", follow_redirects=False).status_code == 200
        clock(client).now += 0.2 * 3600
        assert client.get("/ui/", follow_redirects=False).status_code == 303

    def test_sign_out_ends_the_session(self, client: TestClient[Any]) -> None:
        """Sign out clears the cookie, and the old cookie replayed is refused."""
        sign_in(client)
        page = client.get("/ui/")
        assert '<button type="submit">Sign out</button>' in page.text
        old = client.cookies.get("fkllm_session")
        out = client.post(
            "/ui/logout", content=f"csrf={csrf_of(page.text)}", headers=FORM,
            follow_redirects=False,
        )  # fmt: skip
        assert out.status_code == 303
        assert out.headers["location"].startswith("/ui/login")
        assert "Max-Age=0" in out.headers["set-cookie"]
        client.cookies.set("fkllm_session", old or "", path="/ui")
        assert client.get("/ui/", follow_redirects=False).status_code == 303

    def test_changes_without_the_csrf_token_are_refused(self, client: TestClient[Any]) -> None:
        """A POST with no or a wrong CSRF token, or from another origin, is 403 and changes nothing."""
        sign_in(client)
        token = csrf_of(client.get("/ui/keys").text)
        for body, headers in (
            ("name=evil", FORM),
            ("name=evil&csrf=not-the-token", FORM),
            (f"name=evil&csrf={token}", {**FORM, "origin": "http://attacker.example"}),
        ):
            answer = client.post("/ui/keys", content=body, headers=headers)
            assert answer.status_code == 403
            assert "CSRF" in answer.text
        assert "evil" not in client.get("/ui/keys").text
        assert client.post("/ui/logout", content="", headers=FORM).status_code == 403

    def test_the_console_can_be_turned_off(self, tmp_path: Path) -> None:
        """[ui] enabled = false: every console route is a 404."""
        with make_client(tmp_path, APP_UI__ENABLED="false") as client:
            assert client.get("/ui/login").status_code == 404
            assert client.get("/ui/static/console.css").status_code == 404


class TestPages:
    def test_every_page_has_the_navigation_and_sign_out(self, client: TestClient[Any]) -> None:
        """A navigation landmark with the five links, and the current page marked."""
        sign_in(client)
        for path, title in (("/ui/", "Overview"), ("/ui/providers", "Providers"),
                            ("/ui/keys", "Keys"), ("/ui/usage", "Usage"),
                            ("/ui/config", "Config")):  # fmt: skip
            html = client.get(path).text
            assert '<nav aria-label="Console">' in html
            for label in ("Overview", "Providers", "Keys", "Usage", "Config"):
                assert f">{label}</a>" in html
            assert f'aria-current="page">{title}</a>' in html
            assert f"<h1>{title}</h1>" in html
            assert "<script>" not in html  # no inline script (CSP)

    def test_overview_shows_the_numbers_and_its_json(self, client: TestClient[Any]) -> None:
        """Status, rates, percentiles, tokens, cost; the poll's JSON has the same fields."""
        sign_in(client)
        html = client.get("/ui/").text
        for label in ("Status", "Requests per second", "Success rate", "Latency p50",
                      "Latency p95", "Latency p99", "Tokens since start", "Cost today"):  # fmt: skip
            assert label in html
        data = client.get("/ui/api/overview").json()
        assert {"status", "rps", "success_rate", "latency_ms", "tokens", "points"} <= set(data)

    def test_providers_rows_and_reset(self, client: TestClient[Any]) -> None:
        """A row per provider with its circuit, and Reset circuit closes it."""
        sign_in(client)
        html = client.get("/ui/providers").text
        assert '<th scope="row">mock</th>' in html
        assert '<button type="submit">Reset circuit</button>' in html
        assert "closed" in html
        reset = client.post(
            "/ui/providers/reset", content=f"provider=mock&csrf={csrf_of(html)}", headers=FORM
        )
        assert reset.status_code == 200
        assert "now closed" in reset.text
        unknown = client.post(
            "/ui/providers/reset", content=f"provider=nope&csrf={csrf_of(html)}", headers=FORM
        )
        assert unknown.status_code == 404

    def test_keys_create_once_and_revoke(self, client: TestClient[Any]) -> None:
        """Create key shows the key once and lets it in; Revoke shuts it out."""
        sign_in(client)
        html = client.get("/ui/keys").text
        assert '<label for="key-name">Name</label>' in html
        assert '<label for="key-models">Models</label>' in html
        assert '<button type="submit">Create key</button>' in html
        token = csrf_of(html)
        made = client.post(
            "/ui/keys", content=f"name=team-ui&models=mock&csrf={token}", headers=FORM
        )
        assert made.status_code == 200
        key = re.search(r'<code id="new-key">(sk-fkllm-[0-9a-f]+)</code>', made.text)
        assert key, made.text
        assert "Copy key" in made.text
        listing = client.get("/ui/keys").text
        assert "team-ui" in listing and key.group(1) not in listing
        assert '<button type="submit" class="danger">Revoke</button>' in listing
        auth = {"authorization": f"Bearer {key.group(1)}"}
        assert client.get("/v1/models", headers=auth).status_code == 200
        gone = client.post("/ui/keys/revoke", content=f"name=team-ui&csrf={token}", headers=FORM)
        assert gone.status_code == 200 and "revoked" in gone.text
        assert client.get("/v1/models", headers=auth).status_code == 401

    def test_key_form_errors_are_shown(self, client: TestClient[Any]) -> None:
        """A bad name or half a rate limit is refused with the reason."""
        sign_in(client)
        token = csrf_of(client.get("/ui/keys").text)
        bad = client.post("/ui/keys", content=f"name=a%20b&csrf={token}", headers=FORM)
        assert bad.status_code == 400 and "Not created" in bad.text
        half = client.post("/ui/keys", content=f"name=ok&capacity=5&csrf={token}", headers=FORM)
        assert half.status_code == 400 and "both" in half.text

    def test_usage_page_and_csv(self, tmp_path: Path) -> None:
        """By key, model, provider and day from the ledger, with a chart and a CSV file."""
        extra = f'\n[usage]\nenabled = true\npath = "{tmp_path / "u.sqlite3"}"\n'
        with make_client(tmp_path, extra) as client:
            holder = client.app.state.holder
            assert holder.ledger is None  # the daemon opens it; do as it does
            from fkllmproxy.observability.usage import open_ledger

            holder.ledger = open_ledger(holder.runtime.config)
            holder.ledger.record(
                request_id="r1", key_name="team", model="mock", provider="mock",
                upstream_model="mock-1", prompt_tokens=3, completion_tokens=4,
                latency_ms=1.5, status=200,
            )  # fmt: skip
            holder.ledger.close()
            sign_in(client)
            for by in ("key", "model", "provider", "day"):
                html = client.get(f"/ui/usage?by={by}").text
                assert '<table id="usage">' in html
                assert '<svg role="img"' in html
            assert "team" in client.get("/ui/usage?by=key").text
            csv = client.get("/ui/usage.csv?by=model&since=all")
            assert csv.status_code == 200
            assert csv.headers["content-type"].startswith("text/csv")
            assert "attachment" in csv.headers["content-disposition"]
            assert csv.text.splitlines()[0].startswith("model,requests,failed")
            assert csv.text.splitlines()[1].startswith("mock,1,0,3,4")

    def test_usage_page_shows_the_energy_estimate_labelled_as_one(self, tmp_path: Path) -> None:
        """The Usage table has an "Energy (estimate)" column with the ledger's Wh, and says how rough."""
        extra = f'\n[usage]\nenabled = true\npath = "{tmp_path / "u.sqlite3"}"\n'
        with make_client(tmp_path, extra) as client:
            holder = client.app.state.holder
            from fkllmproxy.observability.usage import open_ledger

            holder.ledger = open_ledger(holder.runtime.config)
            for energy in (0.25, 0.5):
                holder.ledger.record(
                    request_id="r", key_name="team", model="mock", provider="mock",
                    upstream_model="mock-1", prompt_tokens=3, completion_tokens=4,
                    latency_ms=1.5, status=200, energy_wh=energy,
                )  # fmt: skip
            holder.ledger.close()
            sign_in(client)
            html = client.get("/ui/usage?by=model").text
            assert '<th scope="col">Energy (estimate)</th>' in html
            assert "~0.75 Wh" in html
            assert "Energy is an estimate" in html
            csv = client.get("/ui/usage.csv?by=model&since=all").text.splitlines()
            assert csv[0].endswith(",energy_wh_estimate")
            assert csv[1].endswith(",0.750000")

    def test_config_is_redacted_and_reload_shows_refusals(self, client: TestClient[Any]) -> None:
        """The effective config without secrets; Reload lists why it was refused."""
        sign_in(client)
        html = client.get("/ui/config").text
        assert "&lt;redacted&gt;" in html and MASTER_KEY not in html
        assert '<button type="submit">Reload</button>' in html
        token = csrf_of(html)
        ok = client.post("/ui/config/reload", content=f"csrf={token}", headers=FORM)
        assert ok.status_code == 200 and "Reloaded" in ok.text
        client.app.state.reloads.append(["models[0].targets: provider 'x' is not configured"])
        refused = client.post("/ui/config/reload", content=f"csrf={token}", headers=FORM)
        assert refused.status_code == 422
        assert "Reload refused" in refused.text and "provider &#x27;x&#x27;" in refused.text

    def test_console_requests_are_not_api_traffic(self, client: TestClient[Any]) -> None:
        """Console pages and polls leave the request metrics as they were."""
        before = client.get("/metrics").json()["total_requests"]
        sign_in(client)
        for path in ("/ui/", "/ui/api/overview", "/ui/providers", "/ui/static/console.js"):
            assert client.get(path).status_code == 200
        assert client.get("/metrics").json()["total_requests"] == before

    def test_static_files_are_served_from_the_package(self, client: TestClient[Any]) -> None:
        """CSS and JS from the package; anything else is a JSON 404."""
        css = client.get("/ui/static/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert (
            client.get("/ui/static/console.js")
            .headers["content-type"]
            .startswith("text/javascript")
        )
        missing = client.get("/ui/static/nope.js")
        assert missing.status_code == 404 and missing.json()["error"]["message"]
