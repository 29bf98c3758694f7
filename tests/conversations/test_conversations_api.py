"""Conversation CRUD, recipe versions, direct edits and diffs, tenancy and access."""
from __future__ import annotations

import pytest

from app.engine.recipe import DEFAULT_RECIPE, validate_recipe


def test_create_get_rename_delete(client, auth_headers):
    resp = client.post("/api/conversations", json={"name": "  Edge   proxy "}, headers=auth_headers)
    assert resp.status_code == 201
    body = resp.json
    cid = body["id"]
    assert body["name"] == "Edge proxy" and body["messages"] == [] and body["recipeVersion"] == 1
    assert body["createdAt"].endswith("Z") and body["updatedAt"].endswith("Z")
    assert body["recipe"] == validate_recipe(DEFAULT_RECIPE)

    got = client.get(f"/api/conversations/{cid}", headers=auth_headers).json
    assert got["id"] == cid and got["recipe"] == body["recipe"]

    versions = client.get(f"/api/conversations/{cid}/recipe/versions", headers=auth_headers).json
    assert versions["current"] == 1
    (v1,) = versions["versions"]
    assert v1["number"] == 1 and v1["source"] == "initial" and v1["messageId"] is None and len(v1["recipeHash"]) == 64

    resp = client.patch(f"/api/conversations/{cid}", json={"name": "Gateway"}, headers=auth_headers)
    assert resp.status_code == 200 and resp.json["name"] == "Gateway"
    assert client.get(f"/api/conversations/{cid}", headers=auth_headers).json["name"] == "Gateway"

    resp = client.delete(f"/api/conversations/{cid}", headers=auth_headers)
    assert resp.status_code == 204
    resp = client.get(f"/api/conversations/{cid}", headers=auth_headers)
    assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND"
    assert client.get("/api/conversations", headers=auth_headers).json["totalCount"] == 0


@pytest.mark.parametrize("body, field", [({}, "name"), ({"name": ""}, "name"), ({"name": "x" * 201}, "name"),
                                         ({"name": "ok", "extra": 1}, "extra")])
def test_create_validation(client, auth_headers, body, field):
    resp = client.post("/api/conversations", json=body, headers=auth_headers)
    assert resp.status_code == 400 and field in resp.json["error"]["details"]


def test_blank_rename_is_refused(client, auth_headers, conversation):
    resp = client.patch(f"/api/conversations/{conversation['id']}", json={"name": "   "}, headers=auth_headers)
    assert resp.status_code == 400 and "name" in resp.json["error"]["details"]


def test_list_is_paginated_newest_first(client, auth_headers):
    ids = [client.post("/api/conversations", json={"name": f"c{i}"}, headers=auth_headers).json["id"] for i in range(5)]
    page1 = client.get("/api/conversations?limit=2", headers=auth_headers).json
    assert page1["totalCount"] == 5 and page1["page"] == 1 and page1["limit"] == 2 and page1["hasMore"] is True
    assert [c["id"] for c in page1["conversations"]] == ids[::-1][:2]
    assert set(page1["conversations"][0]) >= {"id", "name", "createdAt", "updatedAt"}
    page3 = client.get("/api/conversations?limit=2&page=3", headers=auth_headers).json
    assert [c["id"] for c in page3["conversations"]] == [ids[0]] and page3["hasMore"] is False
    resp = client.get("/api/conversations?limit=101", headers=auth_headers)
    assert resp.status_code == 400 and "limit" in resp.json["error"]["details"]


def test_put_recipe_makes_a_version_and_diffs(client, auth_headers, conversation):
    cid = conversation["id"]
    recipe = dict(conversation["recipe"], packages=["nginx", "curl"], hostname="web01", format="qcow2")
    resp = client.put(f"/api/conversations/{cid}/recipe", json=recipe, headers=auth_headers)
    assert resp.status_code == 200
    assert resp.json["recipeVersion"] == 2 and resp.json["changed"] is True
    assert resp.json["recipe"]["packages"] == ["nginx", "curl"] and "hostname: web01" in resp.json["yaml"]

    yaml_text = resp.json["yaml"].replace("hostname: web01", "hostname: web02")
    resp = client.put(f"/api/conversations/{cid}/recipe", json={"yaml": yaml_text}, headers=auth_headers)
    assert resp.status_code == 200 and resp.json["recipeVersion"] == 3 and resp.json["recipe"]["hostname"] == "web02"

    # The same recipe again is no change: no new version.
    resp = client.put(f"/api/conversations/{cid}/recipe", json={"yaml": yaml_text}, headers=auth_headers)
    assert resp.status_code == 200 and resp.json["recipeVersion"] == 3 and resp.json["changed"] is False

    versions = client.get(f"/api/conversations/{cid}/recipe/versions", headers=auth_headers).json["versions"]
    assert [(v["number"], v["source"]) for v in versions] == [(1, "initial"), (2, "edit"), (3, "edit")]
    v2 = client.get(f"/api/conversations/{cid}/recipe/versions/2", headers=auth_headers).json
    assert v2["number"] == 2 and v2["recipe"]["hostname"] == "web01" and "web01" in v2["yaml"]
    assert client.get(f"/api/conversations/{cid}/recipe", headers=auth_headers).json["recipe"]["hostname"] == "web02"

    diff = client.get(f"/api/conversations/{cid}/recipe/diff?from=1&to=3", headers=auth_headers).json
    assert diff["from"] == 1 and diff["to"] == 3
    assert "--- recipe v1" in diff["unified"] and "+++ recipe v3" in diff["unified"]
    assert "-hostname: debian" in diff["unified"] and "+hostname: web02" in diff["unified"]
    changes = {c["field"]: (c["before"], c["after"]) for c in diff["changes"]}
    assert changes["hostname"] == ("debian", "web02") and changes["format"] == ("iso", "qcow2")
    assert changes["packages"] == ([], ["nginx", "curl"]) and "release" not in changes
    back = client.get(f"/api/conversations/{cid}/recipe/diff?from=3&to=2", headers=auth_headers).json
    assert [c["field"] for c in back["changes"]] == ["hostname"]
    same = client.get(f"/api/conversations/{cid}/recipe/diff?from=2&to=2", headers=auth_headers).json
    assert same["unified"] == "" and same["changes"] == []


def test_diff_compares_services_and_firewall_per_field(client, auth_headers, conversation):
    cid = conversation["id"]
    recipe = dict(conversation["recipe"], services={"enable": ["ssh"], "disable": []},
                  firewall={"enabled": True, "allow": ["22/tcp"]}, packages=["openssh-server"])
    client.put(f"/api/conversations/{cid}/recipe", json=recipe, headers=auth_headers)
    diff = client.get(f"/api/conversations/{cid}/recipe/diff?from=1&to=2", headers=auth_headers).json
    fields = {c["field"] for c in diff["changes"]}
    assert fields == {"packages", "services.enable", "firewall.enabled", "firewall.allow"}


def test_diff_and_version_errors(client, auth_headers, conversation):
    cid = conversation["id"]
    resp = client.get(f"/api/conversations/{cid}/recipe/diff?from=1&to=9", headers=auth_headers)
    assert resp.status_code == 404 and "9" in resp.json["error"]["message"]
    resp = client.get(f"/api/conversations/{cid}/recipe/diff?from=1", headers=auth_headers)
    assert resp.status_code == 400 and "to" in resp.json["error"]["details"]
    resp = client.get(f"/api/conversations/{cid}/recipe/diff?from=zero&to=1", headers=auth_headers)
    assert resp.status_code == 400 and "from" in resp.json["error"]["details"]
    assert client.get(f"/api/conversations/{cid}/recipe/versions/7", headers=auth_headers).status_code == 404


def test_put_recipe_validation_names_every_field_and_changes_nothing(client, auth_headers, conversation):
    cid = conversation["id"]
    bad = dict(conversation["recipe"], release="jessie", packages=["ok-name", "Bad Name"], hostname="-bad-",
               users=[{"name": "Root!", "sshKeys": ["ssh-ed25519 nope"]}], surprise=True)
    resp = client.put(f"/api/conversations/{cid}/recipe", json=bad, headers=auth_headers)
    assert resp.status_code == 400 and resp.json["error"]["code"] == "VALIDATION_ERROR"
    details = resp.json["error"]["details"]
    for field in ("release", "packages[1]", "hostname", "users[0].name", "users[0].sshKeys[0]", "surprise"):
        assert field in details, (field, details)
    resp = client.put(f"/api/conversations/{cid}/recipe", json={"yaml": "release: [unclosed"}, headers=auth_headers)
    assert resp.status_code == 400 and "recipe" in resp.json["error"]["details"]
    resp = client.put(f"/api/conversations/{cid}/recipe", json={"yaml": "timezone: Mars/Olympus"}, headers=auth_headers)
    assert resp.status_code == 400 and "timezone" in resp.json["error"]["details"]
    resp = client.put(f"/api/conversations/{cid}/recipe", json=[1, 2], headers=auth_headers)
    assert resp.status_code == 400
    versions = client.get(f"/api/conversations/{cid}/recipe/versions", headers=auth_headers).json["versions"]
    assert len(versions) == 1
    assert client.get(f"/api/conversations/{cid}/recipe", headers=auth_headers).json["recipe"] == conversation["recipe"]


ROUTES = [
    ("get", "/api/conversations/{id}", None),
    ("patch", "/api/conversations/{id}", {"name": "x"}),
    ("delete", "/api/conversations/{id}", None),
    ("get", "/api/conversations/{id}/recipe", None),
    ("put", "/api/conversations/{id}/recipe", {"yaml": "hostname: x"}),
    ("get", "/api/conversations/{id}/recipe/versions", None),
    ("get", "/api/conversations/{id}/recipe/versions/1", None),
    ("get", "/api/conversations/{id}/recipe/diff?from=1&to=1", None),
]


@pytest.mark.parametrize("method, path, body", ROUTES)
def test_other_orgs_conversation_is_not_found_everywhere(client, factory, auth_headers, conversation, method, path, body):
    outsider = factory.user(email="eve@example.com")
    url = path.format(id=conversation["id"])
    resp = getattr(client, method)(url, json=body, headers=factory.headers(outsider))
    assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND"
    # The owner still sees it, untouched; and a malformed id is a 404 too.
    assert client.get(f"/api/conversations/{conversation['id']}", headers=auth_headers).json["name"] == "Web server"
    resp = getattr(client, method)(path.format(id="not-a-uuid"), json=body, headers=auth_headers)
    assert resp.status_code == 404


def test_members_see_only_their_own_unless_admin(client, factory, user):
    org = factory.org(user, "Acme")
    alice = factory.headers(user, org)
    bob = factory.user(email="bob@example.com")
    bob_h = factory.headers(bob, org)
    factory.add_member(org, bob, "member")
    admin = factory.user(email="ada@example.com")
    factory.add_member(org, admin, "admin")
    viewer = factory.user(email="vic@example.com")
    factory.add_member(org, viewer, "viewer")

    mine = client.post("/api/conversations", json={"name": "Alice's"}, headers=alice).json["id"]
    theirs = client.post("/api/conversations", json={"name": "Bob's"}, headers=bob_h).json["id"]
    assert client.get(f"/api/conversations/{mine}", headers=bob_h).status_code == 404
    assert client.put(f"/api/conversations/{mine}/recipe", json={"yaml": "hostname: x"}, headers=bob_h).status_code == 404
    assert [c["id"] for c in client.get("/api/conversations", headers=bob_h).json["conversations"]] == [theirs]
    admin_list = client.get("/api/conversations", headers=factory.headers(admin, org)).json
    assert admin_list["totalCount"] == 2
    assert client.get(f"/api/conversations/{mine}", headers=factory.headers(admin, org)).status_code == 200
    viewer_h = factory.headers(viewer, org)
    assert client.get("/api/conversations", headers=viewer_h).json["totalCount"] == 0
    resp = client.post("/api/conversations", json={"name": "nope"}, headers=viewer_h)
    assert resp.status_code == 403


def test_api_key_scopes(client, app, factory, user, auth_headers):
    from app.extensions import db
    from app.models import Organization, User
    from app.services import apikeys
    from app.services.audit import Actor

    with app.app_context():
        owner = db.session.get(User, user.id)
        org = db.session.get(Organization, owner.default_org_id)
        _, read_key = apikeys.create_key(Actor(user=owner), org, name="reader", scopes=["conversations:read"])
        _, write_key = apikeys.create_key(Actor(user=owner), org, name="writer", scopes=["conversations:write"])
        db.session.commit()
    cid = client.post("/api/conversations", json={"name": "K"}, headers=auth_headers).json["id"]
    assert client.get(f"/api/conversations/{cid}", headers={"X-API-Key": read_key}).status_code == 200
    resp = client.post("/api/conversations", json={"name": "x"}, headers={"X-API-Key": read_key})
    assert resp.status_code == 403
    resp = client.patch(f"/api/conversations/{cid}", json={"name": "By key"}, headers={"X-API-Key": write_key})
    assert resp.status_code == 200 and resp.json["name"] == "By key"


def test_shared_conversation_opens_to_the_member(client, factory, user):
    org = factory.org(user, "Acme")
    alice = factory.headers(user, org)
    bob = factory.user(email="bob@example.com")
    factory.add_member(org, bob, "member")
    bob_h = factory.headers(bob, org)
    cid = client.post("/api/conversations", json={"name": "Shared"}, headers=alice).json["id"]
    assert client.get(f"/api/conversations/{cid}", headers=bob_h).status_code == 404
    resp = client.post(f"/api/conversations/{cid}/shares", headers=alice,
                       json={"targetType": "user", "targetId": str(bob.id), "permission": "view"})
    assert resp.status_code == 201, resp.json
    assert client.get(f"/api/conversations/{cid}", headers=bob_h).status_code == 200
    assert [c["id"] for c in client.get("/api/conversations", headers=bob_h).json["conversations"]] == [cid]
    # View access does not let him change it.
    resp = client.put(f"/api/conversations/{cid}/recipe", json={"yaml": "hostname: bobs"}, headers=bob_h)
    assert resp.status_code == 403 and resp.json["error"]["code"] == "FORBIDDEN"
    resp = client.post("/api/chat", json={"conversationId": cid, "message": "install htop"}, headers=bob_h)
    assert resp.status_code == 403


def test_openapi_documents_the_routes(client):
    paths = client.get("/api/openapi.json").json["paths"]
    for path in ("/api/chat", "/api/chat/stream", "/api/conversations", "/api/conversations/{conversation_id}",
                 "/api/conversations/{conversation_id}/recipe", "/api/conversations/{conversation_id}/recipe/versions",
                 "/api/conversations/{conversation_id}/recipe/versions/{number}",
                 "/api/conversations/{conversation_id}/recipe/diff"):
        assert path in paths, path
    params = [p["name"] for p in paths["/api/conversations/{conversation_id}/recipe/diff"]["get"]["parameters"]]
    assert {"from", "to"} <= set(params)
