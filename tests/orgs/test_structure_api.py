"""Units (typed), teams in units, groups; members drawn from the org; another org's objects are 404."""
from __future__ import annotations

from tests.orgs.conftest import audit_actions, fast_user


def test_units_teams_groups_crud(client, acme):
    admin = acme.h(acme.admin)
    resp = client.post(acme.url("/units"), json={"name": "Engineering", "type": "division"}, headers=admin)
    assert resp.status_code == 201 and resp.json["type"] == "division"
    unit_id = resp.json["id"]
    resp = client.post(acme.url("/units"), json={"name": "Bad", "type": "tribe"}, headers=admin)
    assert resp.status_code == 400 and "type" in resp.json["error"]["details"]
    listed = client.get(acme.url("/units"), headers=acme.h(acme.viewer)).json
    assert listed["totalCount"] == 1 and listed["units"][0]["name"] == "Engineering"

    resp = client.patch(f"/api/units/{unit_id}", json={"name": "Eng", "type": "department"}, headers=admin)
    assert resp.json["name"] == "Eng" and resp.json["type"] == "department"
    team = client.post(f"/api/units/{unit_id}/teams", json={"name": "Platform"}, headers=admin)
    assert team.status_code == 201 and team.json["unitId"] == unit_id
    team_id = team.json["id"]
    assert client.get(f"/api/units/{unit_id}/teams", headers=acme.h(acme.viewer)).json["teams"][0]["id"] == team_id
    assert client.patch(f"/api/teams/{team_id}", json={"name": "Infra"}, headers=admin).json["name"] == "Infra"
    resp = client.patch(f"/api/teams/{team_id}", json={"type": "division"}, headers=admin)
    assert resp.status_code == 400  # teams have no type: an unknown field is named

    group = client.post(acme.url("/groups"), json={"name": "Reviewers"}, headers=admin)
    assert group.status_code == 201
    group_id = group.json["id"]
    assert client.get(acme.url("/groups"), headers=acme.h(acme.viewer)).json["groups"][0]["name"] == "Reviewers"
    assert client.get(f"/api/groups/{group_id}", headers=acme.h(acme.viewer)).json["memberCount"] == 0

    # deleting the unit takes its teams along
    assert client.delete(f"/api/units/{unit_id}", headers=admin).status_code == 204
    assert client.get(f"/api/teams/{team_id}", headers=admin).status_code == 404
    assert client.delete(f"/api/groups/{group_id}", headers=admin).status_code == 204
    actions = set(audit_actions(client.application, acme.org_id))
    assert {"unit.created", "unit.updated", "team.created", "team.updated", "group.created", "unit.deleted",
            "group.deleted"} <= actions


def test_members_of_structure_are_org_members(client, acme):
    admin = acme.h(acme.admin)
    unit_id = client.post(acme.url("/units"), json={"name": "Ops"}, headers=admin).json["id"]
    team_id = client.post(f"/api/units/{unit_id}/teams", json={"name": "SRE"}, headers=admin).json["id"]
    group_id = client.post(acme.url("/groups"), json={"name": "G"}, headers=admin).json["id"]
    for path in (f"/api/units/{unit_id}", f"/api/teams/{team_id}", f"/api/groups/{group_id}"):
        resp = client.post(f"{path}/members", json={"userId": str(acme.member.id)}, headers=admin)
        assert resp.status_code == 201 and resp.json["email"] == "member@example.com"
        assert client.post(f"{path}/members", json={"userId": str(acme.member.id)}, headers=admin).status_code == 409
        resp = client.post(f"{path}/members", json={"userId": str(acme.outsider.id)}, headers=admin)
        assert resp.status_code == 400 and "userId" in resp.json["error"]["details"]
        resp = client.post(f"{path}/members", json={"userId": "nope"}, headers=admin)
        assert resp.status_code == 400 and "userId" in resp.json["error"]["details"]
        listed = client.get(f"{path}/members", headers=acme.h(acme.viewer)).json
        assert [m["email"] for m in listed["members"]] == ["member@example.com"]
        assert client.post(f"{path}/members", json={"userId": str(acme.viewer.id)},
                           headers=acme.h(acme.member)).status_code == 403
        assert client.delete(f"{path}/members/{acme.member.id}", headers=admin).status_code == 204
        assert client.delete(f"{path}/members/{acme.member.id}", headers=admin).status_code == 404


def test_leaving_the_org_leaves_its_structure(client, acme):
    admin = acme.h(acme.admin)
    group_id = client.post(acme.url("/groups"), json={"name": "G"}, headers=admin).json["id"]
    client.post(f"/api/groups/{group_id}/members", json={"userId": str(acme.member.id)}, headers=admin)
    assert client.delete(acme.url(f"/members/{acme.member.id}"), headers=admin).status_code == 204
    assert client.get(f"/api/groups/{group_id}/members", headers=admin).json["members"] == []


def test_other_orgs_objects_are_not_found(client, factory, acme):
    rival_owner = fast_user(client.application, "rival@example.com", "Rita")
    rival_org = factory.org(rival_owner, "Rival")
    rival = factory.headers(rival_owner, rival_org)
    unit_id = client.post(f"/api/organizations/{rival_org}/units", json={"name": "Secret"}, headers=rival).json["id"]
    group_id = client.post(f"/api/organizations/{rival_org}/groups", json={"name": "Hidden"}, headers=rival).json["id"]
    admin = acme.h(acme.admin)
    for path in (f"/api/units/{unit_id}", f"/api/groups/{group_id}", f"/api/units/{unit_id}/teams",
                 f"/api/groups/{group_id}/members"):
        resp = client.get(path, headers=admin)
        assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND", path
    assert client.delete(f"/api/units/{unit_id}", headers=admin).status_code == 404
    # creating in an org one does not belong to is forbidden
    assert client.post(f"/api/organizations/{rival_org}/units", json={"name": "X"}, headers=admin).status_code == 403
    assert client.get("/api/units/not-a-uuid", headers=admin).status_code == 404
