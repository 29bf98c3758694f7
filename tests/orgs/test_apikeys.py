"""API key lifecycle: shown once, stored hashed, revoke/rotate/roll, scopes, usage log, who manages keys."""
from __future__ import annotations

from datetime import timedelta

from freezegun import freeze_time
from sqlalchemy import String, Text, select

from tests.orgs.conftest import audit_actions, key_headers, make_key


def _all_text_values(app) -> list[str]:
    """Every string stored in every text-like column of every table."""
    from app.extensions import db

    values = []
    with app.app_context():
        for table in db.metadata.sorted_tables:
            cols = [c for c in table.columns if isinstance(c.type, (String, Text)) or c.type.__class__.__name__ == "JSON"]
            if not cols:
                continue
            for row in db.session.execute(select(*cols)):
                values.extend(str(v) for v in row if v is not None)
    return values


def test_create_shows_the_key_once_and_stores_only_a_hash(client, acme):
    created = make_key(client, acme, ["builds:read", "conversations:write"], name="deploy")
    raw = created["key"]
    assert raw.startswith("kiln_") and len(raw) >= 45
    assert created["prefix"] == raw[:17] and created["lastFour"] == raw[-4:]
    assert created["scopes"] == ["builds:read", "conversations:write"] and created["status"] == "active"
    rotated = client.post(acme.url(f"/api-keys/{created['id']}/rotate"), json={}, headers=acme.h(acme.admin)).json
    rolled = client.post(acme.url(f"/api-keys/{rotated['id']}/roll"), headers=acme.h(acme.admin)).json
    # the secret is never shown again
    got = client.get(acme.url(f"/api-keys/{created['id']}"), headers=acme.h(acme.admin)).json
    listed = client.get(acme.url("/api-keys"), headers=acme.h(acme.admin)).json
    assert "key" not in got and all("key" not in k for k in listed["apiKeys"]) and listed["totalCount"] == 3
    # and never stored: scan every text column of every table (the hash, prefix and last four are all that is kept)
    stored = _all_text_values(client.application)
    for secret in (raw, rotated["key"], rolled["key"]):
        assert not [v for v in stored if secret in v], "a plain API key reached the database"
        assert not [v for v in stored if secret[5:] in v]


def test_key_authenticates_and_scopes_are_enforced(client, acme):
    reader = make_key(client, acme, ["builds:read"])["key"]
    assert client.get(acme.url(), headers=key_headers(reader)).status_code == 200
    # X-API-Key works too
    assert client.get(acme.url(), headers={"X-API-Key": reader}).status_code == 200
    # builds:read does not cover members, writing conversations, or managing keys
    resp = client.get(acme.url("/members"), headers=key_headers(reader))
    assert resp.status_code == 403 and resp.json["error"]["details"]["requiredScope"] == "members:read"
    assert client.get(acme.url("/api-keys"), headers=key_headers(reader)).status_code == 403
    resp = client.post(acme.url("/units"), json={"name": "X"}, headers=key_headers(reader))
    assert resp.status_code == 403
    # an admin-scoped key manages its own org's keys, not another org's
    admin_key = make_key(client, acme, ["admin"], name="root")["key"]
    assert client.get(acme.url("/api-keys"), headers=key_headers(admin_key)).status_code == 200
    made = client.post(acme.url("/api-keys"), json={"name": "by-key", "scopes": ["builds:write"]},
                       headers=key_headers(admin_key))
    assert made.status_code == 201
    other = acme.owner.default_org_id
    assert client.get(f"/api/organizations/{other}/api-keys", headers=key_headers(admin_key)).status_code == 403
    # keys never delete orgs (owner only) and never act as a user
    assert client.delete(acme.url(), headers=key_headers(admin_key)).status_code == 403
    assert client.get("/api/auth/me", headers=key_headers(admin_key)).status_code == 403
    # a garbage key is 401 with the envelope
    resp = client.get(acme.url(), headers=key_headers("kiln_" + "x" * 40))
    assert resp.status_code == 401 and resp.json["error"]["code"] == "UNAUTHORIZED"


def test_unknown_scope_is_named(client, acme):
    resp = client.post(acme.url("/api-keys"), json={"name": "x", "scopes": ["builds:read", "root"]},
                       headers=acme.h(acme.admin))
    assert resp.status_code == 400 and "root" in resp.json["error"]["message"] and "scopes" in resp.json["error"]["details"]
    resp = client.post(acme.url("/api-keys"), json={"name": "x", "scopes": []}, headers=acme.h(acme.admin))
    assert resp.status_code == 400 and "scopes" in resp.json["error"]["details"]
    key = make_key(client, acme, ["builds:read"])
    resp = client.patch(acme.url(f"/api-keys/{key['id']}"), json={"scopes": ["nope"]}, headers=acme.h(acme.admin))
    assert resp.status_code == 400 and "nope" in resp.json["error"]["message"]
    resp = client.post(acme.url("/api-keys"), json={"name": "x", "scopes": ["admin"], "expiresAt": "2001-01-01T00:00:00Z"},
                       headers=acme.h(acme.admin))
    assert resp.status_code == 400 and "expiresAt" in resp.json["error"]["details"]


def test_only_admins_manage_keys(client, acme):
    for user in (acme.viewer, acme.member):
        assert client.get(acme.url("/api-keys"), headers=acme.h(user)).status_code == 403
        resp = client.post(acme.url("/api-keys"), json={"name": "x", "scopes": ["builds:read"]}, headers=acme.h(user))
        assert resp.status_code == 403
    assert client.get(acme.url("/api-keys"), headers=acme.h(acme.owner)).status_code == 200
    assert client.get(acme.url("/api-keys"), headers=acme.h(acme.outsider)).status_code == 403


def test_revoked_key_is_refused_on_its_next_request(client, acme):
    key = make_key(client, acme, ["builds:read"])
    assert client.get(acme.url(), headers=key_headers(key["key"])).status_code == 200
    resp = client.post(acme.url(f"/api-keys/{key['id']}/revoke"), headers=acme.h(acme.admin))
    assert resp.status_code == 200 and resp.json["status"] == "revoked"
    resp = client.get(acme.url(), headers=key_headers(key["key"]))
    assert resp.status_code == 401 and resp.json["error"]["code"] == "UNAUTHORIZED"
    assert client.post(acme.url(f"/api-keys/{key['id']}/revoke"), headers=acme.h(acme.admin)).status_code == 409
    assert client.post(acme.url(f"/api-keys/{key['id']}/rotate"), headers=acme.h(acme.admin)).status_code == 409


def test_rotated_key_works_until_grace_ends(client, acme):
    from app.models.base import utcnow

    start = utcnow()
    with freeze_time(start) as frozen:
        key = make_key(client, acme, ["builds:read"])
        resp = client.post(acme.url(f"/api-keys/{key['id']}/rotate"), json={"graceHours": 24}, headers=acme.h(acme.admin))
        assert resp.status_code == 201
        new = resp.json
        assert new["key"] != key["key"] and new["scopes"] == ["builds:read"] and new["name"] == key["name"]
        assert new["previous"]["status"] == "rotating" and new["previous"]["replacedById"] == new["id"]
        frozen.tick(timedelta(hours=23, minutes=59))
        assert client.get(acme.url(), headers=key_headers(key["key"])).status_code == 200
        assert client.get(acme.url(), headers=key_headers(new["key"])).status_code == 200
        frozen.tick(timedelta(minutes=2))
        assert client.get(acme.url(), headers=key_headers(key["key"])).status_code == 401
        assert client.get(acme.url(), headers=key_headers(new["key"])).status_code == 200
    # default grace is 24h when the body is left out
    resp = client.post(acme.url(f"/api-keys/{new['id']}/rotate"), headers=acme.h(acme.admin))
    assert resp.status_code == 201 and resp.json["previous"]["graceUntil"]
    resp = client.post(acme.url(f"/api-keys/{resp.json['id']}/rotate"), json={"graceHours": -1}, headers=acme.h(acme.admin))
    assert resp.status_code == 400 and "graceHours" in resp.json["error"]["details"]


def test_rolled_key_dies_at_once(client, acme):
    key = make_key(client, acme, ["builds:read"])
    resp = client.post(acme.url(f"/api-keys/{key['id']}/roll"), headers=acme.h(acme.admin))
    assert resp.status_code == 201 and resp.json["previous"]["status"] == "revoked"
    assert client.get(acme.url(), headers=key_headers(key["key"])).status_code == 401
    assert client.get(acme.url(), headers=key_headers(resp.json["key"])).status_code == 200


def test_patch_active_expiry_and_delete(client, acme):
    key = make_key(client, acme, ["builds:read"])
    admin = acme.h(acme.admin)
    resp = client.patch(acme.url(f"/api-keys/{key['id']}"), json={"name": "renamed", "description": "CI runner",
                                                                   "active": False}, headers=admin)
    assert resp.status_code == 200 and resp.json["name"] == "renamed" and resp.json["status"] == "inactive"
    assert client.get(acme.url(), headers=key_headers(key["key"])).status_code == 401
    client.patch(acme.url(f"/api-keys/{key['id']}"), json={"active": True, "scopes": ["admin"]}, headers=admin)
    assert client.get(acme.url("/api-keys"), headers=key_headers(key["key"])).status_code == 200
    from app.models.base import utcnow

    soon = (utcnow() + timedelta(hours=1)).isoformat()
    assert client.patch(acme.url(f"/api-keys/{key['id']}"), json={"expiresAt": soon}, headers=admin).status_code == 200
    with freeze_time(utcnow() + timedelta(hours=2)):
        assert client.get(acme.url(), headers=key_headers(key["key"])).status_code == 401
    assert client.delete(acme.url(f"/api-keys/{key['id']}"), headers=admin).status_code == 204
    assert client.get(acme.url(f"/api-keys/{key['id']}"), headers=admin).status_code == 404
    actions = set(audit_actions(client.application, acme.org_id))
    assert {"api_key.created", "api_key.updated", "api_key.deleted"} <= actions
    # who, what, which object, when, from which address
    from sqlalchemy import select as sa_select

    from app.extensions import db
    from app.models import AuditRecord

    with client.application.app_context():
        row = db.session.scalar(sa_select(AuditRecord).where(AuditRecord.action == "api_key.deleted"))
        assert row.actor_user_id == acme.admin.id and row.entity_id == key["id"] and row.entity_type == "api_key"
        assert row.ip_address == "127.0.0.1" and row.created_at is not None


def test_usage_log_and_last_used(client, acme):
    key = make_key(client, acme, ["builds:read"])
    admin = acme.h(acme.admin)
    assert client.get(acme.url(f"/api-keys/{key['id']}"), headers=admin).json["lastUsedAt"] is None
    client.get(acme.url(), headers=key_headers(key["key"]))
    client.get(acme.url("/members"), headers=key_headers(key["key"]))  # 403, still logged
    usage = client.get(acme.url(f"/api-keys/{key['id']}/usage"), headers=admin).json
    assert usage["totalCount"] == 2 and usage["lastUsedAt"]
    first, second = usage["usage"][1], usage["usage"][0]  # newest first
    assert (first["method"], first["path"], first["status"]) == ("GET", f"/api/organizations/{acme.org_id}", 200)
    assert second["status"] == 403 and second["time"].endswith("Z")
    paged = client.get(acme.url(f"/api-keys/{key['id']}/usage?limit=1&page=2"), headers=admin).json
    assert len(paged["usage"]) == 1 and paged["hasMore"] is False
    # another org's key is not found
    other = acme.owner.default_org_id
    assert client.get(f"/api/organizations/{other}/api-keys/{key['id']}/usage",
                      headers=acme.factory.headers(acme.owner, other)).status_code == 404


def test_deleted_org_kills_its_keys(client, acme):
    key = make_key(client, acme, ["admin"])
    assert client.delete(acme.url(), headers=acme.h(acme.owner)).status_code == 204
    assert client.get("/api/organizations", headers=key_headers(key["key"])).status_code == 401


def test_a_failed_key_request_commits_nothing_but_its_usage_row(app, app_config, client, acme):
    """The usage row is written after the answer; a request that failed half-way must not be committed with it.
    The invitation row is flushed before the mail goes out; the mail server refuses the connection."""
    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.models import ApiKeyUsage, Invitation
    from tests.fixtures.services import free_port

    key = make_key(client, acme, ["admin"])
    no_mail = create_app({**app_config, "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": free_port()})
    resp = no_mail.test_client().post(acme.url("/invites"), json={"email": "late@example.com"},
                                      headers=key_headers(key["key"]))
    assert resp.status_code == 500 and resp.json["error"]["code"] == "SERVER_ERROR"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Invitation)) == 0
        usage = db.session.scalars(select(ApiKeyUsage)).all()
        assert [(u.method, u.status) for u in usage] == [("POST", 500)]
