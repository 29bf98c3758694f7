"""Account pages: full renders, form errors, CSRF, the org switcher, 2FA panel fragments."""
from __future__ import annotations

import re
import time

import pyotp
import pytest

from tests.conftest import PASSWORD


def _login(client, email, password=PASSWORD):
    return client.post("/login", data={"email": email, "password": password})


def test_signup_page_renders_and_creates_account(client):
    page = client.get("/signup")
    assert page.status_code == 200 and b"Create your Kiln account" in page.data
    resp = client.post("/signup", data={"name": "Dana", "email": "dana@example.com", "password": PASSWORD})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/dashboard")
    dash = client.get("/dashboard")
    assert dash.status_code == 200 and b"Dana&#39;s workspace" in dash.data and b"Nothing here yet" in dash.data


def test_signup_errors_are_shown_by_field(client):
    resp = client.post("/signup", data={"name": "", "email": "nope", "password": "x"})
    assert resp.status_code == 400
    assert b"email-error" in resp.data or b"name-error" in resp.data


def test_login_logout_and_wrong_password(client, user):
    bad = _login(client, user.email, "nope nope")
    assert bad.status_code == 401 and b"Invalid email or password" in bad.data
    ok = _login(client, user.email)
    assert ok.status_code == 302
    assert client.get("/dashboard").status_code == 200
    assert client.post("/logout").status_code == 302
    assert client.get("/dashboard").status_code == 302


def test_anonymous_is_sent_to_login(client):
    resp = client.get("/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    resp = client.get("/account")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_open_redirect_is_refused(client, user):
    resp = client.post("/login?next=//evil.example/", data={"email": user.email, "password": PASSWORD})
    assert resp.headers["Location"].endswith("/dashboard")


def test_forgot_and_reset_pages(client, app, user):
    assert client.get("/forgot-password").status_code == 200
    resp = client.post("/forgot-password", data={"email": user.email})
    assert b"on its way" in resp.data
    import email
    from email import policy
    from pathlib import Path

    mail = sorted(Path(app.config["KILN_OUTBOX_DIR"]).glob("*.eml"))[-1]
    body = email.message_from_bytes(mail.read_bytes(), policy=policy.default).get_content()
    path = re.search(r"http://[^/]+(/reset-password/\S+)", body).group(1)
    assert client.get(path).status_code == 200
    mismatch = client.post(path, data={"password": "new password 1", "password_confirm": "different"})
    assert mismatch.status_code == 400
    done = client.post(path, data={"password": "new password 1", "password_confirm": "new password 1"})
    assert done.status_code == 302
    assert _login(client, user.email, "new password 1").status_code == 302


def test_settings_profile_and_totp_panel_fragments(client, user):
    _login(client, user.email)
    page = client.get("/account")
    assert page.status_code == 200 and b'id="totp-panel"' in page.data
    fragment = client.post("/account/totp", data={"action": "setup"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    html = fragment.data.decode()
    assert html.lstrip().startswith('<article id="totp-panel">') and "<svg" in html and "<html" not in html
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', html).group(1)
    wrong = client.post("/account/totp", data={"action": "enable", "code": "000000"}, headers={"HX-Request": "true"})
    assert wrong.status_code == 400 and b"not valid" in wrong.data
    # Codes work once (issue 13): enable with the previous step's code, log in with the current one.
    enabled = client.post("/account/totp", data={"action": "enable", "code": pyotp.TOTP(secret).at(time.time() - 30)},
                          headers={"HX-Request": "true"})
    assert b"is <strong>on</strong>" in enabled.data
    client.post("/logout")
    need = _login(client, user.email)
    assert need.status_code == 401 and b"totp_code" in need.data
    ok = client.post("/login", data={"email": user.email, "password": PASSWORD, "totp_code": pyotp.TOTP(secret).now()})
    assert ok.status_code == 302
    saved = client.post("/account", data={"action": "profile", "name": "Alice B"})
    assert saved.status_code == 302 and b"Alice B" in client.get("/account").data


def test_org_switcher_only_switches_to_own_orgs(client, factory, user):
    other_owner = factory.user(email="owner2@example.com")
    shared_org = factory.org(other_owner, name="Shared Co")
    foreign_org = factory.org(other_owner, name="Foreign Co")
    factory.add_member(shared_org, user, "viewer")
    _login(client, user.email)
    client.post("/orgs/switch", data={"org_id": str(shared_org), "next": "/dashboard"})
    dash = client.get("/dashboard")
    assert b"Shared Co" in dash.data and b"viewer" in dash.data
    client.post("/orgs/switch", data={"org_id": str(foreign_org), "next": "/dashboard"})
    assert b"<h1>Shared Co</h1>" in client.get("/dashboard").data


def test_forms_require_csrf_when_enabled(app_config, factory):
    from app import create_app

    strict = create_app({**app_config, "WTF_CSRF_ENABLED": True})
    c = strict.test_client()
    resp = c.post("/login", data={"email": "x@example.com", "password": "y"})
    assert resp.status_code == 400 and b"CSRF" in resp.data
    page = c.get("/login").data.decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = c.post("/login", data={"email": "x@example.com", "password": "wrong", "csrf_token": token})
    assert resp.status_code == 401


def test_cookie_authenticated_api_writes_need_csrf_header(app_config, factory):
    from app import create_app

    user = factory.user(email="cookie@example.com")
    strict = create_app({**app_config, "WTF_CSRF_ENABLED": True})
    c = strict.test_client()
    page = c.get("/login").data.decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert c.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token}).status_code == 302
    assert c.get("/api/auth/me").status_code == 200  # reads ride on the cookie
    refused = c.post("/api/auth/totp/setup")
    assert refused.status_code == 400 and refused.json["error"]["code"] == "VALIDATION_ERROR"
    dash = c.get("/dashboard").data.decode()
    header_token = re.search(r'"X-CSRFToken": "([^"]+)"', dash).group(1)
    assert c.post("/api/auth/totp/setup", headers={"X-CSRFToken": header_token}).status_code == 200


@pytest.mark.browser
def test_signup_and_dashboard_in_chromium(page):
    page.goto("/signup")
    page.fill("input[name=name]", "Browser User")
    page.fill("input[name=email]", "browser@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard")
    assert "Nothing here yet" in page.content()
    page.goto("/account")
    page.click("#totp-panel button[type=submit]")
    page.wait_for_selector("#totp-secret")
    assert page.locator("#totp-panel svg").count() == 1
    assert page.console_errors == []
