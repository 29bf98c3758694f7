"""Notifications: build outcomes reach their creator in the app and by e-mail (per preference), exactly once."""
from __future__ import annotations

import email
from pathlib import Path

from tests.events.test_webhooks import _run_build
from tests.orgs.conftest import session_login

HX = {"HX-Request": "true"}


def _mails(app) -> list:
    outbox = Path(app.config["KILN_OUTBOX_DIR"])
    return [email.message_from_bytes(p.read_bytes()) for p in sorted(outbox.glob("*.eml"))] if outbox.is_dir() else []


def _count(client, headers) -> int:
    resp = client.get("/api/notifications/unread-count", headers=headers)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["unreadCount"]


def test_failed_build_gives_its_creator_one_notification_and_one_mail(client, app, user, auth_headers, builds,
                                                                        org_id, run_webhook_jobs):
    build_id, _ = _run_build(app, builds, org_id, user.id, finish="failed")
    run_webhook_jobs()
    # However often the outbox is dispatched again, nothing is notified or mailed twice.
    from app.tasks.webhooks import dispatch_outbox

    with app.app_context():
        assert dispatch_outbox() == 0
    run_webhook_jobs()

    assert _count(client, auth_headers) == 1
    body = client.get("/api/notifications", headers=auth_headers).get_json()
    (note,) = body["notifications"]
    assert note["kind"] == "build.failed" and note["title"] == "Build #1 web failed" and note["read"] is False
    assert "nosuch" in note["body"] and note["link"] == f"/builds/{build_id}" and note["emailedAt"]
    (mail,) = _mails(app)
    assert mail["To"] == "alice@example.com" and mail["Subject"] == "[Kiln] Build #1 web failed"
    assert f"/builds/{build_id}" in mail.get_payload()

    resp = client.patch("/api/notifications/read-all", headers=auth_headers)
    assert resp.status_code == 200 and resp.get_json() == {"marked": 1, "unreadCount": 0}
    assert _count(client, auth_headers) == 0
    resp = client.patch(f"/api/notifications/{note['id']}", json={"read": False}, headers=auth_headers)
    assert resp.status_code == 200 and resp.get_json()["read"] is False
    assert _count(client, auth_headers) == 1


def test_started_and_succeeded_builds_notify_in_app_without_mail_by_default(client, app, user, auth_headers, builds,
                                                                              org_id, run_webhook_jobs):
    _run_build(app, builds, org_id, user.id)
    run_webhook_jobs()
    titles = [n["title"] for n in client.get("/api/notifications", headers=auth_headers).get_json()["notifications"]]
    assert titles == ["Build #1 web succeeded"]
    assert _mails(app) == []


def test_preferences_decide_the_mail(client, app, user, auth_headers, builds, org_id, run_webhook_jobs):
    prefs = client.get("/api/notifications/preferences", headers=auth_headers).get_json()["email"]
    assert prefs["build.failed"] is True and prefs["build.completed"] is False
    resp = client.patch("/api/notifications/preferences", json={"email": {"build.failed": False}}, headers=auth_headers)
    assert resp.status_code == 200 and resp.get_json()["email"]["build.failed"] is False
    bad = client.patch("/api/notifications/preferences", json={"email": {"build.exploded": True}}, headers=auth_headers)
    assert bad.status_code == 400 and "build.exploded" in bad.get_json()["error"]["message"]

    _run_build(app, builds, org_id, user.id, finish="failed")
    run_webhook_jobs()
    assert _count(client, auth_headers) == 1 and _mails(app) == []


def test_notifications_are_personal(client, app, user, auth_headers, factory, builds, org_id, run_webhook_jobs):
    _run_build(app, builds, org_id, user.id, finish="failed")
    run_webhook_jobs()
    note_id = client.get("/api/notifications", headers=auth_headers).get_json()["notifications"][0]["id"]
    bob = factory.user(email="bob@example.com")
    factory.add_member(org_id, bob, "admin")
    bob_headers = factory.headers(bob, org_id)
    assert _count(client, bob_headers) == 0
    assert client.patch(f"/api/notifications/{note_id}", json={"read": True}, headers=bob_headers).status_code == 404
    assert client.patch(f"/api/notifications/{note_id}", json={"read": "maybe"}, headers=auth_headers).status_code == 400


def test_invited_user_is_notified_in_the_app(client, app, user, auth_headers, factory, run_webhook_jobs):
    bob = factory.user(email="bob@example.com")
    resp = client.post(f"/api/organizations/{user.default_org_id}/invites", json={"email": "bob@example.com",
                                                                                 "role": "member"}, headers=auth_headers)
    assert resp.status_code == 201, resp.get_json()
    run_webhook_jobs()
    (note,) = client.get("/api/notifications", headers=factory.headers(bob)).get_json()["notifications"]
    assert note["kind"] == "invitation.created" and "invited" in note["title"] and note["emailedAt"] is None
    assert len(_mails(app)) == 1  # the invitation mail itself, not a second one


def test_inbox_bell_and_preferences_pages(client, app, user, builds, org_id, run_webhook_jobs):
    _run_build(app, builds, org_id, user.id, finish="failed")
    run_webhook_jobs()
    session_login(client, user, org_id)
    html = client.get("/dashboard").data.decode()
    assert 'id="notification-bell"' in html and 'data-unread="1"' in html

    page = client.get("/notifications")
    html = page.data.decode()
    assert page.status_code == 200 and "<html" in html and "Build #1 web failed" in html
    assert 'id="notification-list"' in html and 'id="notification-preferences"' in html
    frag = client.get("/notifications", headers=HX).data.decode()
    assert frag.lstrip().startswith('<section id="notification-list"')
    bell = client.get("/notifications/bell").data.decode()
    assert bell.lstrip().startswith('<a id="notification-bell"') and 'class="bell-count">1<' in bell

    resp = client.post("/notifications/read-all", headers=HX)
    assert resp.headers["HX-Trigger"] == "kiln:notifications" and 'data-read="yes"' in resp.data.decode()
    assert 'data-unread="0"' in client.get("/notifications/bell").data.decode()

    account = client.get("/account").data.decode()
    assert 'id="notification-preferences"' in account and 'value="build.failed" checked' in account
    resp = client.post("/notifications/preferences", data={"email": ["build.completed"]}, headers=HX)
    assert "Preferences saved." in resp.data.decode()
    assert 'value="build.failed" checked' not in client.get("/account").data.decode()
