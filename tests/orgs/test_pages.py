"""Organization pages: full renders and htmx fragments for settings, structure, API keys, invites, share dialog."""
from __future__ import annotations

import re
from pathlib import Path

from tests.orgs.conftest import audit_actions, fast_user, make_conversation, session_login

HX = {"HX-Request": "true"}


def test_pages_need_login(client, acme):
    for path in ("/organization", "/organization/structure", "/api-keys"):
        resp = client.get(path)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], path


def test_settings_full_page_and_member_fragments(client, acme):
    session_login(client, acme.admin, acme.org_id)
    page = client.get("/organization")
    html = page.data.decode()
    assert page.status_code == 200 and "<html" in html
    assert 'id="org-members"' in html and 'id="org-invites"' in html and "member@example.com" in html
    assert "Delete this organization" not in html  # owners only
    # add an existing user (fragment)
    resp = client.post("/organization/members", data={"email": "outsider@example.com", "role": "viewer"}, headers=HX)
    frag = resp.data.decode()
    assert resp.status_code == 200 and "<html" not in frag and frag.lstrip().startswith('<article id="org-members"')
    assert "outsider@example.com" in frag and "Member added." in frag
    # change role (fragment), refusal shown inside the fragment
    resp = client.post(f"/organization/members/{acme.outsider.id}/role", data={"role": "member"}, headers=HX)
    assert "Role changed." in resp.data.decode()
    resp = client.post(f"/organization/members/{acme.owner.id}/role", data={"role": "viewer"}, headers=HX)
    assert "Only an owner" in resp.data.decode()
    # remove, plain form: redirect + flash
    resp = client.post(f"/organization/members/{acme.outsider.id}/remove")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/organization")
    assert "outsider@example.com" not in client.get("/organization").data.decode()
    assert {"member.added", "member.role_changed", "member.removed"} <= set(audit_actions(client.application, acme.org_id))


def test_viewer_sees_read_only_settings_and_is_refused_changes(client, acme):
    session_login(client, acme.viewer, acme.org_id)
    html = client.get("/organization").data.decode()
    assert "Add member" not in html and 'id="org-invites"' not in html and "Leave" in html
    assert client.post("/organization/members", data={"email": "x@example.com"}).status_code == 403
    assert client.get("/api-keys").status_code == 403


def test_invite_from_settings_then_accept_page_signup(client, acme):
    session_login(client, acme.admin, acme.org_id)
    resp = client.post("/organization/invites", data={"email": "fresh@example.com", "role": "member"}, headers=HX)
    frag = resp.data.decode()
    assert frag.lstrip().startswith('<article id="org-invites"') and "fresh@example.com" in frag
    mail = next(p for p in Path(client.application.config["KILN_OUTBOX_DIR"]).glob("*.eml")
                if "fresh@example.com" in p.read_text())
    token = re.search(r"/invites/([A-Za-z0-9_\-]+)", mail.read_text()).group(1)
    # a stranger's browser: the page offers log in or sign up
    client.post("/logout")
    page = client.get(f"/invites/{token}")
    assert page.status_code == 200 and "Join Acme" in page.data.decode() and "Sign up and join" in page.data.decode()
    resp = client.post(f"/invites/{token}", data={"action": "signup", "name": "Fresh", "password": "short"})
    assert resp.status_code == 400 and "at least 8" in resp.data.decode()
    resp = client.post(f"/invites/{token}", data={"action": "signup", "name": "Fresh", "password": "long enough pw"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/organization")
    html = client.get("/organization").data.decode()
    assert "<h1>Acme</h1>" in html and "fresh@example.com" in html
    # used: the page says so
    assert "accepted" in client.get(f"/invites/{token}").data.decode()
    assert client.get("/invites/not-a-token").status_code == 404


def test_invite_page_accept_when_logged_in_and_revoke(client, acme):
    session_login(client, acme.admin, acme.org_id)
    client.post("/organization/invites", data={"email": "outsider@example.com", "role": "viewer"})
    from app.extensions import db
    from app.models import Invitation

    with client.application.app_context():
        invite_id = db.session.query(Invitation).one().id
    resp = client.post(f"/organization/invites/{invite_id}/revoke", headers=HX)
    assert "Invitation revoked." in resp.data.decode() and "No pending invitations." in resp.data.decode()
    client.post("/organization/invites", data={"email": "outsider@example.com", "role": "viewer"})
    mails = sorted(Path(client.application.config["KILN_OUTBOX_DIR"]).glob("*.eml"), key=lambda p: p.stat().st_mtime)
    token = re.search(r"/invites/([A-Za-z0-9_\-]+)", mails[-1].read_text()).group(1)
    session_login(client, acme.outsider)
    assert "Accept and join" in client.get(f"/invites/{token}").data.decode()
    resp = client.post(f"/invites/{token}", data={"action": "accept"})
    assert resp.status_code == 302
    assert "This invitation is <strong>accepted</strong>" in client.get(f"/invites/{token}").data.decode()
    # someone else's pending invitation tells a logged-in stranger to switch accounts
    session_login(client, acme.admin, acme.org_id)
    client.post("/organization/invites", data={"email": "someone@example.com", "role": "viewer"})
    mails = sorted(Path(client.application.config["KILN_OUTBOX_DIR"]).glob("*.eml"), key=lambda p: p.stat().st_mtime)
    token = re.search(r"/invites/([A-Za-z0-9_\-]+)", mails[-1].read_text()).group(1)
    session_login(client, acme.member)
    assert "You are logged in as member@example.com" in client.get(f"/invites/{token}").data.decode()
    assert client.post(f"/invites/{token}", data={"action": "accept"}).status_code == 400


def test_rename_create_and_delete_org_pages(client, acme):
    session_login(client, acme.owner, acme.org_id)
    resp = client.post("/organization/rename", data={"name": "Acme Inc"}, headers=HX)
    assert resp.data.decode().lstrip().startswith('<div id="org-name"') and "Acme Inc" in resp.data.decode()
    html = client.get("/organization").data.decode()
    assert "Delete this organization" in html
    resp = client.post("/organization/delete", data={"confirm_name": "wrong"})
    assert resp.status_code == 302 and "exact name" in client.get("/organization").data.decode()
    resp = client.post("/organization/delete", data={"confirm_name": "Acme Inc"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/dashboard")
    resp = client.post("/organizations/new", data={"name": "Fresh Start"})
    assert resp.status_code == 302
    assert "<h1>Fresh Start</h1>" in client.get("/organization").data.decode()


def test_structure_page_and_fragment(client, acme):
    session_login(client, acme.admin, acme.org_id)
    page = client.get("/organization/structure")
    assert page.status_code == 200 and 'id="org-structure"' in page.data.decode()
    resp = client.post("/organization/structure", data={"action": "create_unit", "name": "Sales", "type": "division"},
                       headers=HX)
    frag = resp.data.decode()
    assert frag.lstrip().startswith('<div id="org-structure"') and 'data-unit="Sales"' in frag and "division" in frag
    from app.extensions import db
    from app.models import Unit

    with client.application.app_context():
        unit_id = db.session.query(Unit).one().id
    frag = client.post("/organization/structure", data={"action": "create_team", "unit_id": unit_id, "name": "EMEA"},
                       headers=HX).data.decode()
    assert 'data-team="EMEA"' in frag
    frag = client.post("/organization/structure", data={"action": "add_member", "kind": "unit", "id": unit_id,
                                                        "user_id": acme.member.id}, headers=HX).data.decode()
    assert "Mia Member &lt;member@example.com&gt;</li>" in frag.replace("\n", "").replace("    ", "") or \
        "Mia Member &lt;member@example.com&gt;" in frag
    frag = client.post("/organization/structure", data={"action": "create_group", "name": "Leads"}, headers=HX).data.decode()
    assert 'data-group="Leads"' in frag
    frag = client.post("/organization/structure", data={"action": "explode"}, headers=HX).data.decode()
    assert "Unknown structure action" in frag
    frag = client.post("/organization/structure", data={"action": "delete", "kind": "unit", "id": unit_id},
                       headers=HX).data.decode()
    assert 'data-unit="Sales"' not in frag
    session_login(client, acme.viewer, acme.org_id)
    html = client.get("/organization/structure").data.decode()
    assert "Create unit" not in html
    assert client.post("/organization/structure", data={"action": "create_group", "name": "x"}).status_code == 403


def test_api_keys_page_shows_key_once_and_actions(client, acme):
    session_login(client, acme.admin, acme.org_id)
    page = client.get("/api-keys")
    assert page.status_code == 200 and 'id="api-keys"' in page.data.decode()
    resp = client.post("/api-keys", data={"name": "ci", "scopes": ["builds:read", "builds:write"]}, headers=HX)
    frag = resp.data.decode()
    assert frag.lstrip().startswith('<div id="api-keys"')
    raw = re.search(r'id="new-key-value" value="(kiln_[^"]+)"', frag).group(1)
    assert 'data-copy="new-key-value"' in frag
    assert client.get(f"/api/organizations/{acme.org_id}", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    # the secret is not on the page afterwards
    assert raw not in client.get("/api-keys").data.decode()
    from app.extensions import db
    from app.models import ApiKey

    with client.application.app_context():
        key_id = db.session.query(ApiKey).one().id
    # plain-form create renders the page once with the key (no redirect that would lose it)
    resp = client.post("/api-keys", data={"name": "second", "scopes": ["admin"]})
    assert resp.status_code == 200 and 'id="new-key-value"' in resp.data.decode()
    # rotate shows the replacement once; confirmations are present on destructive actions
    frag = client.post(f"/api-keys/{key_id}/rotate", data={"grace_hours": "2"}, headers=HX).data.decode()
    assert 'id="new-key-value"' in frag and "2 hours" in frag and 'data-status="rotating"' in frag
    assert 'hx-confirm="Revoke' in frag and 'hx-confirm="Roll' in frag
    frag = client.post(f"/api-keys/{key_id}/revoke", headers=HX).data.decode()
    assert "Key revoked." in frag
    frag = client.post("/api-keys", data={"name": "bad", "scopes": []}, headers=HX).data.decode()
    assert "at least one scope" in frag
    # usage page + fragment
    usage = client.get(f"/api-keys/{key_id}/usage")
    assert usage.status_code == 200 and f"/api/organizations/{acme.org_id}" in usage.data.decode()
    frag = client.get(f"/api-keys/{key_id}/usage", headers=HX).data.decode()
    assert frag.lstrip().startswith('<div id="key-usage"') and "<html" not in frag
    assert client.get("/api-keys/00000000-0000-0000-0000-000000000000/usage").status_code == 404


def test_share_dialog_page_and_fragment(client, acme):
    convo = make_conversation(client.application, acme.org_id, acme.member)
    session_login(client, acme.member, acme.org_id)
    page = client.get(f"/conversations/{convo}/share")
    assert page.status_code == 200 and 'id="share-dialog"' in page.data.decode() and "<html" in page.data.decode()
    frag = client.get(f"/conversations/{convo}/share", headers=HX).data.decode()
    assert frag.lstrip().startswith('<article id="share-dialog"') and "Private" in frag
    frag = client.post(f"/conversations/{convo}/share", data={"action": "add", "target": f"user:{acme.viewer.id}",
                                                              "permission": "view"}, headers=HX).data.decode()
    assert "Vic Viewer" in frag and "Sharing updated." in frag
    # the viewer now sees the dialog but cannot change it
    session_login(client, acme.viewer, acme.org_id)
    frag = client.get(f"/conversations/{convo}/share", headers=HX).data.decode()
    assert "Vic Viewer" in frag and 'name="target"' not in frag
    assert client.post(f"/conversations/{convo}/share", data={"action": "add",
                                                              "target": f"organization:{acme.org_id}"}).status_code == 403
    # the creator removes it; the viewer loses access at once
    session_login(client, acme.member, acme.org_id)
    from app.extensions import db
    from app.models import ConversationShare

    with client.application.app_context():
        share_id = db.session.query(ConversationShare).one().id
    frag = client.post(f"/conversations/{convo}/share", data={"action": "remove", "share_id": share_id},
                       headers=HX).data.decode()
    assert "Private" in frag
    session_login(client, acme.viewer, acme.org_id)
    assert client.get(f"/conversations/{convo}/share").status_code == 404
    outsider_convo = make_conversation(client.application, acme.outsider.default_org_id, acme.outsider)
    assert client.get(f"/conversations/{outsider_convo}/share").status_code == 404


def test_share_dialog_loader_partial_renders(app, acme):
    from flask import render_template

    class Convo:
        id = "0f0f0f0f-0000-0000-0000-000000000000"

    with app.test_request_context("/"):
        html = render_template("orgs/_share_dialog_loader.html", conversation=Convo())
    assert 'hx-get="/conversations/0f0f0f0f-0000-0000-0000-000000000000/share"' in html


def test_new_user_is_not_a_member(client, acme):
    stray = fast_user(client.application, "stray@example.com", "Stray")
    session_login(client, stray, acme.org_id)
    # the switcher pointed at a foreign org: the session falls back to the personal org
    html = client.get("/organization").data.decode()
    assert "Stray&#39;s workspace" in html or "Stray's workspace" in html
