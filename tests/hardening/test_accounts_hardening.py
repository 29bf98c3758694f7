"""Login redirects stay on the site; a password change ends other sessions and tokens; TOTP codes work once."""
from __future__ import annotations

import time

import pyotp
import pytest

from tests.conftest import PASSWORD

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(autouse=True)
def _push_request_context():
    """One test client request at a time with its own `g` (pytest-flask would share one for the test)."""
    yield


@pytest.fixture
def client(app):
    # pytest-flask's client keeps its last request context pushed (`with client:`), so flask-login's
    # cached user in `g` would leak into the next client's request; these tests use several browsers.
    return app.test_client()


def _login(client, user, next_url=None, remember=False, **extra):
    query = {"next": next_url} if next_url is not None else None
    data = {"email": user.email, "password": user.password, **extra}
    if remember:
        data["remember"] = "on"
    return client.post("/login", query_string=query, data=data)


OFFSITE = [
    "//evil.com", "///evil.com", "/\\evil.com", "\\\\evil.com", "/\t/evil.com", "/\n/evil.com", "/\r/evil.com",
    "/ /evil.com", "https:evil.com", "https://evil.com", "http:/evil.com", "javascript:alert(1)",
    "/\x00/evil.com", " //evil.com", "/%09/evil.com".replace("%09", "\t"), "evil.com", "",
]


@pytest.mark.parametrize("target", OFFSITE)
def test_login_never_redirects_off_site(client, user, target):
    resp = _login(client, user, target)
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/dashboard"


@pytest.mark.parametrize("target", OFFSITE)
def test_a_logged_in_visit_to_login_never_redirects_off_site(client, user, target):
    _login(client, user)
    resp = client.get("/login", query_string={"next": target})
    assert resp.status_code == 302 and resp.headers["Location"] == "/dashboard"


def test_the_raw_tab_query_of_the_issue_stays_on_site(client, user):
    resp = client.post("/login?next=/%09/evil.com", data={"email": user.email, "password": user.password})
    assert resp.status_code == 302 and resp.headers["Location"] == "/dashboard"


def test_a_same_site_next_is_followed(client, user):
    resp = _login(client, user, "/builds?status=failed")
    assert resp.headers["Location"] == "/builds?status=failed"


def _change_password(client, current=PASSWORD, new=NEW_PASSWORD):
    return client.post("/account", data={"action": "password", "current_password": current, "new_password": new})


def test_a_password_change_signs_out_other_sessions_and_tokens(app, client, user, factory):
    other = app.test_client()
    remembered = app.test_client()
    assert _login(other, user).status_code == 302
    assert _login(remembered, user, remember=True).status_code == 302
    remember_cookie = remembered.get_cookie("remember_token")
    assert remember_cookie is not None
    token = factory.token(user)
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    _login(client, user)
    assert _change_password(client).status_code == 302

    # This session continues.
    assert client.get("/account").status_code == 200
    # The other browser session is gone, and so is the remember-me cookie on its own.
    assert other.get("/account").status_code == 302
    fresh = app.test_client()
    fresh.set_cookie("remember_token", remember_cookie.value)
    assert fresh.get("/account").status_code == 302
    # The bearer token from before the change is refused; a new one works.
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {factory.token(user)}"}).status_code == 200
    # The new password logs in, the old one does not.
    assert _login(app.test_client(), user).status_code == 401
    user.password = NEW_PASSWORD
    assert _login(app.test_client(), user).status_code == 302


def test_a_remembered_session_stays_remembered_after_its_own_password_change(app, user):
    browser = app.test_client()
    _login(browser, user, remember=True)
    assert _change_password(browser).status_code == 302
    cookie = browser.get_cookie("remember_token")
    fresh = app.test_client()
    fresh.set_cookie("remember_token", cookie.value)
    assert fresh.get("/account").status_code == 200


def test_a_wrong_current_password_changes_nothing(app, client, user, factory):
    token = factory.token(user)
    _login(client, user)
    assert _change_password(client, current="not my password").status_code == 400
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def _enable_totp(client, headers) -> str:
    secret = client.post("/api/auth/totp/setup", headers=headers).json["secret"]
    # Enable with the previous step's code, so the current one is still unused for the login below.
    previous = pyotp.TOTP(secret).at(time.time() - 30)
    assert client.post("/api/auth/totp/enable", json={"code": previous}, headers=headers).status_code == 200
    return secret


def test_a_totp_code_works_only_once(client, user, auth_headers):
    secret = _enable_totp(client, auth_headers)
    code = pyotp.TOTP(secret).now()
    body = {"email": user.email, "password": PASSWORD, "totpCode": code}
    assert client.post("/api/auth/login", json=body).status_code == 200
    again = client.post("/api/auth/login", json=body)
    assert again.status_code == 401 and "totpCode" in again.json["error"]["details"]


def test_an_older_code_is_refused_after_a_newer_one(client, user, auth_headers):
    secret = _enable_totp(client, auth_headers)
    # The enabling code (previous step) was used; the one before it is older still, inside the window no more.
    body = {"email": user.email, "password": PASSWORD, "totpCode": pyotp.TOTP(secret).at(time.time() - 30)}
    assert client.post("/api/auth/login", json=body).status_code == 401


def test_the_login_page_refuses_a_replayed_code(app, user, auth_headers, client):
    secret = _enable_totp(client, auth_headers)
    code = pyotp.TOTP(secret).now()
    first = _login(app.test_client(), user, totp_code=code)
    assert first.status_code == 302
    assert _login(app.test_client(), user, totp_code=code).status_code == 401

