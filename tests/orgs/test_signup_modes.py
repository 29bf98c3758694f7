"""KILN_SIGNUP: open (default) | invite | closed, honoured by the API, the sign-up page and invitations."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import load_config
from tests.conftest import PASSWORD
from tests.orgs.conftest import session_login


@pytest.fixture
def signup(app, monkeypatch):
    def set_mode(mode: str) -> None:
        monkeypatch.setitem(app.config, "KILN_SIGNUP", mode)
    return set_mode


def _register(client, email="new@example.com"):
    return client.post("/api/auth/register", json={"email": email, "password": PASSWORD, "name": "New"})


def _invite_token(client, acme, email: str) -> str:
    session_login(client, acme.admin, acme.org_id)
    client.post("/organization/invites", data={"email": email, "role": "member"})
    mail = next(p for p in Path(client.application.config["KILN_OUTBOX_DIR"]).glob("*.eml") if email in p.read_text())
    client.post("/logout")
    return re.search(r"/invites/([A-Za-z0-9_\-]+)", mail.read_text()).group(1)


def test_setting_defaults_to_open_and_rejects_unknown_values(tmp_path):
    assert load_config(tmp_path, {"SECRET_KEY": "x"})["KILN_SIGNUP"] == "open"
    assert load_config(tmp_path, {"SECRET_KEY": "x", "KILN_SIGNUP": " Invite "})["KILN_SIGNUP"] == "invite"
    with pytest.raises(ValueError, match="KILN_SIGNUP must be one of open, invite, closed, got 'nobody'"):
        load_config(tmp_path, {"SECRET_KEY": "x", "KILN_SIGNUP": "nobody"})


def test_open_lets_anyone_register(client, signup):
    signup("open")
    assert _register(client).status_code == 201
    page = client.get("/signup").data.decode()
    assert 'name="password"' in page and "signup-refusal" not in page
    assert 'href="/signup"' in client.get("/login").data.decode()


@pytest.mark.parametrize("mode, words", [("invite", "by invitation only"), ("closed", "Sign-up is closed")])
def test_invite_and_closed_refuse_registration_in_api_and_pages(client, signup, mode, words):
    signup(mode)
    resp = _register(client)
    assert resp.status_code == 403
    assert resp.json["error"]["code"] == "FORBIDDEN" and words in resp.json["error"]["message"]
    page = client.get("/signup")
    html = page.data.decode()
    assert page.status_code == 200 and words in html and 'name="password"' not in html
    resp = client.post("/signup", data={"email": "new@example.com", "name": "New", "password": PASSWORD})
    assert resp.status_code == 403 and words in resp.data.decode()
    assert 'href="/signup"' not in client.get("/login").data.decode()
    # nobody was created: logging in as them fails
    login = client.post("/api/auth/login", json={"email": "new@example.com", "password": PASSWORD})
    assert login.status_code == 401


def test_invite_mode_still_signs_up_through_an_invitation(client, acme, signup):
    signup("invite")
    token = _invite_token(client, acme, "invited@example.com")
    resp = client.post(f"/invites/{token}", data={"action": "signup", "name": "Invited", "password": "long enough pw"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/organization")
    assert "invited@example.com" in client.get("/organization").data.decode()


def test_closed_mode_refuses_even_an_invitation_signup(client, acme, signup):
    signup("closed")
    token = _invite_token(client, acme, "late@example.com")
    resp = client.post(f"/invites/{token}", data={"action": "signup", "name": "Late", "password": "long enough pw"})
    assert resp.status_code == 400 and "Sign-up is closed" in resp.data.decode()
    assert client.post("/api/auth/login", json={"email": "late@example.com", "password": "long enough pw"}
                       ).status_code == 401
