"""Every example request in the seed documents (/work/shared/seeds) works as written.

Each test sends the example's method, path and body exactly as the seed shows them (with the
placeholders `uuid`, `{id}`, `user-uuid` filled with real ids) and checks the answer API.md promises.
"""
from __future__ import annotations

import pytest

from tests.conftest import PASSWORD


@pytest.fixture(autouse=True)
def _push_request_context():
    yield


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def token(client, user):
    # 000: POST /api/auth/token {"email", "password"} -> {"token", "expires_in": 3600}
    resp = client.post("/api/auth/token", json={"email": user.email, "password": PASSWORD})
    assert resp.status_code == 200, resp.json
    assert resp.json["expires_in"] == 3600 and resp.json["token"]
    return resp.json["token"]


@pytest.fixture
def h(token):
    return {"Authorization": f"Bearer {token}"}


def test_002_login_with_email_and_password(client, user):
    resp = client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert resp.status_code == 200 and resp.json["token"]


def test_000_conversations(client, h):
    created = client.post("/api/conversations", json={"name": "New Build Configuration"}, headers=h)
    assert created.status_code == 201, created.json
    cid = created.json["id"]
    listed = client.get("/api/conversations", headers=h)
    assert listed.status_code == 200
    assert {"id", "name", "createdAt", "updatedAt"} <= set(listed.json["conversations"][0])
    assert client.get(f"/api/conversations/{cid}", headers=h).status_code == 200
    assert client.delete(f"/api/conversations/{cid}", headers=h).status_code in (200, 204)


def test_000_chat(client, h):
    cid = client.post("/api/conversations", json={"name": "My Build"}, headers=h).json["id"]
    resp = client.post("/api/chat", json={"conversationId": cid, "message": "Create a Debian server with SSH and Docker"},
                       headers=h)
    assert resp.status_code == 200, resp.json
    assert {"messageId", "response", "recipe"} <= set(resp.json)


def test_000_start_build(client, h):
    cid = client.post("/api/conversations", json={"name": "My Build"}, headers=h).json["id"]
    resp = client.post("/api/builds", json={"conversationId": cid}, headers=h)
    assert resp.status_code == 201, resp.json
    assert resp.json["buildId"] and resp.json["status"] in ("pending", "queued")
    bid = resp.json["buildId"]
    status = client.get(f"/api/builds/{bid}", headers=h)
    assert status.status_code == 200 and {"id", "status", "stage", "progress", "startedAt"} <= set(status.json)
    assert client.get(f"/api/builds/{bid}/tests", headers=h).status_code == 200
    assert client.get(f"/api/builds/{bid}/logs", headers=h).status_code == 200


def test_000_organizations_members_invites(client, h):
    org = client.post("/api/organizations", json={"name": "My Company"}, headers=h)
    assert org.status_code == 201, org.json
    oid = org.json["id"]
    assert client.get("/api/organizations", headers=h).status_code == 200
    assert client.get(f"/api/organizations/{oid}", headers=h).status_code == 200
    assert client.get(f"/api/organizations/{oid}/members", headers=h).status_code == 200
    invite = client.post(f"/api/organizations/{oid}/invites", json={"email": "user@example.com", "role": "member"}, headers=h)
    assert invite.status_code == 201, invite.json


@pytest.mark.parametrize("new_org", [False, True])
def test_000_units_and_teams(client, h, user, new_org):
    """In the caller's default org as written; in another org the follow-up calls name it (API.md: X-Tenant-ID)."""
    oid = str(user.default_org_id)
    if new_org:
        oid = client.post("/api/organizations", json={"name": "My Company"}, headers=h).json["id"]
        h = {**h, "X-Tenant-ID": oid}
    unit = client.post(f"/api/organizations/{oid}/units", json={"name": "Engineering", "type": "business"}, headers=h)
    assert unit.status_code == 201, unit.json
    uid = unit.json["id"]
    assert unit.json["type"] == "business"
    assert client.get(f"/api/organizations/{oid}/units", headers=h).status_code == 200
    assert client.get(f"/api/units/{uid}", headers=h).status_code == 200
    team = client.post(f"/api/units/{uid}/teams", json={"name": "Platform Team"}, headers=h)
    assert team.status_code == 201, team.json
    assert client.get(f"/api/units/{uid}/teams", headers=h).status_code == 200
    assert client.get(f"/api/teams/{team.json['id']}", headers=h).status_code == 200


def test_000_share_a_conversation(client, h, factory, user):
    friend = factory.user(email="friend@example.com")
    factory.add_member(user.default_org_id, friend, "member")
    cid = client.post("/api/conversations", json={"name": "My Build"}, headers=h).json["id"]
    share = client.post(f"/api/conversations/{cid}/shares",
                        json={"targetType": "user", "targetId": str(friend.id), "permission": "edit"}, headers=h)
    assert share.status_code == 201, share.json
    assert client.get(f"/api/conversations/{cid}/shares", headers=h).status_code == 200
    assert client.delete(f"/api/conversations/{cid}/shares/{share.json['id']}", headers=h).status_code in (200, 204)


def test_002_tenant_header_on_every_request(client, h, user):
    headers = {**h, "X-Tenant-ID": str(user.default_org_id)}
    assert client.get("/api/v1/builds", headers=headers).status_code == 200


def test_000_chat_stream(client, h):
    cid = client.post("/api/conversations", json={"name": "My Build"}, headers=h).json["id"]
    resp = client.get("/api/chat/stream", query_string={"conversationId": cid, "message": "Create a Debian server with SSH"},
                      headers={**h, "Accept": "text/event-stream"})
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    assert "event: done" in resp.get_data(as_text=True)


def test_000_custom_tests_body_is_accepted(client, h):
    """The body is valid as written; a build that has not produced an image answers 409, not 400."""
    cid = client.post("/api/conversations", json={"name": "My Build"}, headers=h).json["id"]
    bid = client.post("/api/builds", json={"conversationId": cid, "start": False}, headers=h).json["buildId"]
    resp = client.post(f"/api/builds/{bid}/tests",
                       json={"assertions": [{"type": "http_responds", "params": {"url": "http://localhost/health"}}]}, headers=h)
    assert resp.status_code == 409, resp.json
