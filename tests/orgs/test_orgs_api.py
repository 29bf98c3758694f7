"""Organizations API: create/list/get/rename/delete, members and roles, invitations."""
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from freezegun import freeze_time

from tests.orgs.conftest import audit_actions, fast_user


def test_create_list_get_rename(client, factory, acme):
    headers = factory.headers(acme.member)
    resp = client.post("/api/organizations", json={"name": "Side project"}, headers=headers)
    assert resp.status_code == 201 and resp.json["role"] == "owner" and resp.json["name"] == "Side project"
    new_id = resp.json["id"]
    listed = client.get("/api/organizations", headers=headers).json
    names = {o["name"]: o["role"] for o in listed["organizations"]}
    assert names["Side project"] == "owner" and names["Acme"] == "member" and listed["totalCount"] == 3
    got = client.get(f"/api/organizations/{new_id}", headers=headers).json
    assert got["memberCount"] == 1 and got["personal"] is False
    assert client.patch(f"/api/organizations/{new_id}", json={"name": "Renamed"}, headers=headers).json["name"] == "Renamed"
    assert "organization.renamed" in audit_actions(client.application, new_id)


def test_validation_errors_name_fields(client, acme):
    resp = client.post("/api/organizations", json={"name": ""}, headers=acme.h(acme.owner))
    assert resp.status_code == 400 and "name" in resp.json["error"]["details"]
    resp = client.post("/api/organizations", json={"title": "x"}, headers=acme.h(acme.owner))
    assert resp.status_code == 400 and "title" in resp.json["error"]["details"]
    resp = client.patch(acme.url(f"/members/{acme.member.id}"), json={"role": "boss"}, headers=acme.h(acme.owner))
    assert resp.status_code == 400 and "role" in resp.json["error"]["details"]


def test_roles_on_org_routes(client, acme):
    assert client.get(acme.url(), headers=acme.h(acme.viewer)).status_code == 200
    assert client.patch(acme.url(), json={"name": "X"}, headers=acme.h(acme.member)).status_code == 403
    assert client.patch(acme.url(), json={"name": "X"}, headers=acme.h(acme.admin)).status_code == 200
    assert client.delete(acme.url(), headers=acme.h(acme.admin)).status_code == 403
    # An outsider is refused (403, as for X-Tenant-ID); an unknown org is 404.
    resp = client.get(acme.url(), headers=acme.h(acme.outsider))
    assert resp.status_code == 403 and resp.json["error"]["code"] == "FORBIDDEN"
    assert client.get("/api/organizations/00000000-0000-0000-0000-000000000000",
                      headers=acme.h(acme.owner)).status_code == 404
    assert client.get("/api/organizations/not-a-uuid", headers=acme.h(acme.owner)).status_code == 404


def test_soft_delete_by_owner_only_and_not_personal(client, factory, acme):
    personal = acme.owner.default_org_id
    resp = client.delete(f"/api/organizations/{personal}", headers=factory.headers(acme.owner))
    assert resp.status_code == 409 and "personal" in resp.json["error"]["message"]
    assert client.delete(acme.url(), headers=acme.h(acme.owner)).status_code == 204
    # gone for everyone: its path 404s and it leaves the members' lists
    assert client.get(acme.url(), headers=factory.headers(acme.owner)).status_code == 404
    names = [o["name"] for o in client.get("/api/organizations", headers=factory.headers(acme.member)).json["organizations"]]
    assert "Acme" not in names
    from app.extensions import db
    from app.models import Organization

    with client.application.app_context():
        assert db.session.get(Organization, acme.org_id).deleted_at is not None  # kept for the audit trail
    assert "organization.deleted" in audit_actions(client.application, acme.org_id)


def test_members_list_add_change_remove(client, factory, acme):
    listed = client.get(acme.url("/members"), headers=acme.h(acme.viewer)).json
    assert {m["email"]: m["role"] for m in listed["members"]} == {
        "owner@example.com": "owner", "admin@example.com": "admin", "member@example.com": "member",
        "viewer@example.com": "viewer"}
    # members cannot add; admins can, by e-mail of an existing account
    body = {"email": "outsider@example.com", "role": "member"}
    assert client.post(acme.url("/members"), json=body, headers=acme.h(acme.member)).status_code == 403
    resp = client.post(acme.url("/members"), json=body, headers=acme.h(acme.admin))
    assert resp.status_code == 201 and resp.json["role"] == "member"
    assert client.post(acme.url("/members"), json=body, headers=acme.h(acme.admin)).status_code == 409
    resp = client.post(acme.url("/members"), json={"email": "nobody@example.com"}, headers=acme.h(acme.admin))
    assert resp.status_code == 400 and "email" in resp.json["error"]["details"]
    # role change and removal
    resp = client.patch(acme.url(f"/members/{acme.outsider.id}"), json={"role": "viewer"}, headers=acme.h(acme.admin))
    assert resp.status_code == 200 and resp.json["role"] == "viewer"
    assert client.delete(acme.url(f"/members/{acme.outsider.id}"), headers=acme.h(acme.admin)).status_code == 204
    assert client.get(acme.url(), headers=acme.h(acme.outsider)).status_code == 403
    assert client.delete(acme.url(f"/members/{acme.outsider.id}"), headers=acme.h(acme.admin)).status_code == 404
    actions = audit_actions(client.application, acme.org_id)
    assert {"member.added", "member.role_changed", "member.removed"} <= set(actions)


def test_admin_cannot_touch_owners_or_promote_to_owner(client, acme):
    resp = client.patch(acme.url(f"/members/{acme.member.id}"), json={"role": "owner"}, headers=acme.h(acme.admin))
    assert resp.status_code == 403
    resp = client.patch(acme.url(f"/members/{acme.owner.id}"), json={"role": "admin"}, headers=acme.h(acme.admin))
    assert resp.status_code == 403
    assert client.delete(acme.url(f"/members/{acme.owner.id}"), headers=acme.h(acme.admin)).status_code == 403
    resp = client.post(acme.url("/members"), json={"email": "outsider@example.com", "role": "owner"},
                       headers=acme.h(acme.admin))
    assert resp.status_code == 403
    # a member cannot remove someone else, but may leave
    assert client.delete(acme.url(f"/members/{acme.viewer.id}"), headers=acme.h(acme.member)).status_code == 403
    assert client.delete(acme.url(f"/members/{acme.member.id}"), headers=acme.h(acme.member)).status_code == 204


def test_last_owner_cannot_leave_or_be_demoted_and_transfer(client, acme):
    resp = client.patch(acme.url(f"/members/{acme.owner.id}"), json={"role": "admin"}, headers=acme.h(acme.owner))
    assert resp.status_code == 409 and "last owner" in resp.json["error"]["message"]
    assert client.delete(acme.url(f"/members/{acme.owner.id}"), headers=acme.h(acme.owner)).status_code == 409
    # transfer: promote the admin to owner, then the old owner may step down and leave
    resp = client.patch(acme.url(f"/members/{acme.admin.id}"), json={"role": "owner"}, headers=acme.h(acme.owner))
    assert resp.status_code == 200 and resp.json["role"] == "owner"
    assert client.patch(acme.url(f"/members/{acme.owner.id}"), json={"role": "member"},
                        headers=acme.h(acme.owner)).json["role"] == "member"
    assert client.delete(acme.url(f"/members/{acme.owner.id}"), headers=acme.h(acme.owner)).status_code == 204
    assert client.delete(acme.url(), headers=acme.h(acme.admin)).status_code == 204  # the new owner may delete


def _outbox_token(app, email: str) -> str:
    mails = sorted(Path(app.config["KILN_OUTBOX_DIR"]).glob("*.eml"), key=lambda p: p.stat().st_mtime)
    for path in reversed(mails):
        text = path.read_text()
        if f"To: {email}" in text:
            return re.search(r"/invites/([A-Za-z0-9_\-]+)", text).group(1)
    raise AssertionError(f"no invitation mail to {email}")


def test_invite_accept_flow(client, factory, acme):
    resp = client.post(acme.url("/invites"), json={"email": "New.Person@Example.com", "role": "viewer"},
                       headers=acme.h(acme.admin))
    assert resp.status_code == 201 and resp.json["status"] == "pending" and "token" not in resp.json
    assert resp.json["email"] == "new.person@example.com"
    pending = client.get(acme.url("/invites"), headers=acme.h(acme.admin)).json
    assert [i["email"] for i in pending["invites"]] == ["new.person@example.com"]
    assert client.get(acme.url("/invites"), headers=acme.h(acme.member)).status_code == 403
    token = _outbox_token(client.application, "new.person@example.com")
    # the token is stored only as a hash
    from app.extensions import db
    from app.models import Invitation

    with client.application.app_context():
        assert all(token not in (i.token_hash or "") for i in db.session.query(Invitation).all())
    # someone else cannot use it
    resp = client.post(f"/api/organizations/invites/{token}/accept", headers=factory.headers(acme.outsider))
    assert resp.status_code == 403
    newcomer = fast_user(client.application, "new.person@example.com", "Nina")
    resp = client.post(f"/api/organizations/invites/{token}/accept", headers=factory.headers(newcomer))
    assert resp.status_code == 200 and resp.json["role"] == "viewer"
    assert client.get(acme.url(), headers=acme.h(newcomer)).json["role"] == "viewer"
    # single use
    resp = client.post(f"/api/organizations/invites/{token}/accept", headers=factory.headers(newcomer))
    assert resp.status_code == 409
    assert client.get(acme.url("/invites"), headers=acme.h(acme.admin)).json["invites"] == []
    assert client.post("/api/organizations/invites/bogus/accept", headers=factory.headers(newcomer)).status_code == 404
    assert {"invitation.created", "invitation.accepted"} <= set(audit_actions(client.application, acme.org_id))


def test_invite_expires_after_seven_days_and_revoke(client, factory, acme):
    client.post(acme.url("/invites"), json={"email": "late@example.com"}, headers=acme.h(acme.admin))
    token = _outbox_token(client.application, "late@example.com")
    late = fast_user(client.application, "late@example.com")
    from app.models.base import utcnow

    with freeze_time(utcnow() + timedelta(days=7, minutes=1)):
        resp = client.post(f"/api/organizations/invites/{token}/accept", headers=factory.headers(late))
        assert resp.status_code == 400 and "expired" in resp.json["error"]["message"]
    # revoke
    invite = client.post(acme.url("/invites"), json={"email": "late@example.com"}, headers=acme.h(acme.admin)).json
    token = _outbox_token(client.application, "late@example.com")
    assert client.delete(acme.url(f"/invites/{invite['id']}"), headers=acme.h(acme.admin)).status_code == 204
    assert client.delete(acme.url(f"/invites/{invite['id']}"), headers=acme.h(acme.admin)).status_code == 409
    resp = client.post(f"/api/organizations/invites/{token}/accept", headers=factory.headers(late))
    assert resp.status_code == 400 and "revoked" in resp.json["error"]["message"]


def test_invite_rules(client, acme):
    resp = client.post(acme.url("/invites"), json={"email": "member@example.com"}, headers=acme.h(acme.admin))
    assert resp.status_code == 409
    resp = client.post(acme.url("/invites"), json={"email": "x@example.com", "role": "owner"}, headers=acme.h(acme.admin))
    assert resp.status_code == 403
    resp = client.post(acme.url("/invites"), json={"email": "not an email"}, headers=acme.h(acme.admin))
    assert resp.status_code == 400 and "email" in resp.json["error"]["details"]


def test_api_key_sees_only_its_org(client, acme):
    from tests.orgs.conftest import key_headers, make_key

    key = make_key(client, acme, ["builds:read"])
    listed = client.get("/api/organizations", headers=key_headers(key["key"])).json
    assert [o["name"] for o in listed["organizations"]] == ["Acme"]
    assert client.get(acme.url(), headers=key_headers(key["key"])).status_code == 200
    other = acme.owner.default_org_id
    assert client.get(f"/api/organizations/{other}", headers=key_headers(key["key"])).status_code == 403
    # keys cannot create organizations (a person owns them)
    assert client.post("/api/organizations", json={"name": "K"}, headers=key_headers(key["key"])).status_code == 403
