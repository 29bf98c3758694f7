"""Conversation shares: targets, effective permission (highest wins), immediate removal, who may share."""
from __future__ import annotations

import pytest

from tests.orgs.conftest import audit_actions, fast_user, make_conversation


def _level(app, conversation_id, user, role):
    """The access level the conversation's access rules give this user (None = invisible)."""
    from app.extensions import db
    from app.models import Conversation, User
    from app.services.access import conversation_access

    with app.app_context():
        conversation = db.session.get(Conversation, conversation_id)
        return conversation_access(conversation, user=db.session.get(User, user.id), role=role)


def _visible(app, org_id, user, role) -> set[str]:
    from app.extensions import db
    from app.models import Organization, User
    from app.services.access import visible_conversations

    with app.app_context():
        org = db.session.get(Organization, org_id)
        rows = db.session.scalars(visible_conversations(org, user=db.session.get(User, user.id), role=role)).all()
        return {str(r.id) for r in rows}


@pytest.fixture
def convo(client, acme):
    import uuid

    return uuid.UUID(make_conversation(client.application, acme.org_id, acme.member))


def _share(client, acme, convo, by, target_type, target_id, permission="view"):
    return client.post(f"/api/conversations/{convo}/shares",
                       json={"targetType": target_type, "targetId": str(target_id) if target_id else None,
                             "permission": permission}, headers=acme.h(by))


def test_private_until_shared_then_direct_user_share(client, acme, convo):
    app = client.application
    assert _level(app, convo, acme.viewer, "viewer") is None
    assert str(convo) not in _visible(app, acme.org_id, acme.viewer, "viewer")
    # the viewer cannot even see the shares of an invisible conversation
    assert client.get(f"/api/conversations/{convo}/shares", headers=acme.h(acme.viewer)).status_code == 404
    resp = _share(client, acme, convo, acme.member, "user", acme.viewer.id, "view")
    assert resp.status_code == 201 and resp.json["targetName"].startswith("Vic Viewer")
    assert _level(app, convo, acme.viewer, "viewer") == "view"
    assert str(convo) in _visible(app, acme.org_id, acme.viewer, "viewer")
    listed = client.get(f"/api/conversations/{convo}/shares", headers=acme.h(acme.viewer))
    assert listed.status_code == 200 and len(listed.json["shares"]) == 1
    # a viewer's role caps an edit share at view
    resp = _share(client, acme, convo, acme.member, "user", acme.viewer.id, "edit")
    assert resp.status_code == 200 and resp.json["permission"] == "edit"
    assert _level(app, convo, acme.viewer, "viewer") == "view"
    assert "conversation.shared" in audit_actions(app, acme.org_id)


def test_group_team_unit_org_shares_and_highest_wins(client, acme, convo):
    app, admin = client.application, acme.h(acme.admin)
    third = fast_user(app, "third@example.com", "Theo")
    acme.factory.add_member(acme.org_id, third, "member")
    group = client.post(acme.url("/groups"), json={"name": "G"}, headers=admin).json["id"]
    unit = client.post(acme.url("/units"), json={"name": "U"}, headers=admin).json["id"]
    team = client.post(f"/api/units/{unit}/teams", json={"name": "T"}, headers=admin).json["id"]
    client.post(f"/api/groups/{group}/members", json={"userId": str(third.id)}, headers=admin)
    client.post(f"/api/teams/{team}/members", json={"userId": str(third.id)}, headers=admin)

    assert _level(app, convo, third, "member") is None
    # via the group
    g_share = _share(client, acme, convo, acme.member, "group", group, "view").json["id"]
    assert _level(app, convo, third, "member") == "view"
    # a unit reaches the members of its teams; edit beats view
    u_share = _share(client, acme, convo, acme.member, "unit", unit, "edit").json["id"]
    assert _level(app, convo, third, "member") == "edit"
    # removing a share takes effect at once
    assert client.delete(f"/api/conversations/{convo}/shares/{u_share}", headers=acme.h(acme.member)).status_code == 204
    assert _level(app, convo, third, "member") == "view"
    client.delete(f"/api/conversations/{convo}/shares/{g_share}", headers=acme.h(acme.member))
    assert _level(app, convo, third, "member") is None
    # the team itself
    _share(client, acme, convo, acme.member, "team", team, "edit")
    assert _level(app, convo, third, "member") == "edit"
    # the whole organization (targetId optional)
    resp = _share(client, acme, convo, acme.member, "organization", None, "view")
    assert resp.status_code == 201 and resp.json["targetId"] == str(acme.org_id)
    assert _level(app, convo, acme.viewer, "viewer") == "view"
    assert str(convo) in _visible(app, acme.org_id, third, "member")
    # leaving the team ends what it granted; the org share still applies
    client.delete(f"/api/teams/{team}/members/{third.id}", headers=admin)
    assert _level(app, convo, third, "member") == "view"
    # deleting a group removes shares aimed at it
    _share(client, acme, convo, acme.member, "group", group, "edit")
    client.delete(f"/api/groups/{group}", headers=admin)
    shares = client.get(f"/api/conversations/{convo}/shares", headers=acme.h(acme.member)).json["shares"]
    assert {s["targetType"] for s in shares} == {"team", "organization"}


def test_only_editors_share_and_targets_must_be_in_the_org(client, factory, acme, convo):
    # the creator (member) may share; an admin may too; a view-share recipient may not
    _share(client, acme, convo, acme.member, "user", acme.viewer.id, "view")
    resp = _share(client, acme, convo, acme.viewer, "user", acme.viewer.id, "edit")
    assert resp.status_code == 403
    assert _share(client, acme, convo, acme.admin, "user", acme.owner.id, "view").status_code == 201
    # a user outside the org, another org's group, junk
    resp = _share(client, acme, convo, acme.member, "user", acme.outsider.id)
    assert resp.status_code == 400 and "targetId" in resp.json["error"]["details"]
    rival_org = factory.org(acme.outsider, "Rival")
    rival_group = client.post(f"/api/organizations/{rival_org}/groups", json={"name": "R"},
                              headers=factory.headers(acme.outsider, rival_org)).json["id"]
    resp = _share(client, acme, convo, acme.member, "group", rival_group)
    assert resp.status_code == 400 and "targetId" in resp.json["error"]["details"]
    resp = _share(client, acme, convo, acme.member, "organization", rival_org)
    assert resp.status_code == 400
    resp = _share(client, acme, convo, acme.member, "planet", acme.viewer.id)
    assert resp.status_code == 400 and "targetType" in resp.json["error"]["details"]
    resp = _share(client, acme, convo, acme.member, "user", acme.viewer.id, "own")
    assert resp.status_code == 400 and "permission" in resp.json["error"]["details"]
    # a conversation of another org is not found
    other = make_conversation(client.application, rival_org, acme.outsider)
    assert _share(client, acme, other, acme.admin, "user", acme.viewer.id).status_code == 404
    assert client.delete(f"/api/conversations/{convo}/shares/00000000-0000-0000-0000-000000000000",
                         headers=acme.h(acme.member)).status_code == 404


def test_edit_share_lets_a_member_share_and_api_keys_act_org_wide(client, acme, convo):
    from tests.orgs.conftest import key_headers, make_key

    _share(client, acme, convo, acme.member, "user", acme.admin.id, "view")
    third = fast_user(client.application, "third@example.com", "Theo")
    acme.factory.add_member(acme.org_id, third, "member")
    _share(client, acme, convo, acme.member, "user", third.id, "edit")
    # an edit share is edit access, and edit access may share (as the issue says)
    assert _share(client, acme, convo, third, "organization", None, "view").status_code == 201
    reader = make_key(client, acme, ["conversations:read"])
    writer = make_key(client, acme, ["conversations:write"], name="w")
    assert client.get(f"/api/conversations/{convo}/shares", headers=key_headers(reader["key"])).status_code == 200
    resp = client.post(f"/api/conversations/{convo}/shares", json={"targetType": "user", "targetId": str(acme.viewer.id)},
                       headers=key_headers(reader["key"]))
    assert resp.status_code == 403 and resp.json["error"]["details"]["requiredScope"] == "conversations:write"
    resp = client.post(f"/api/conversations/{convo}/shares", json={"targetType": "user", "targetId": str(acme.viewer.id)},
                       headers=key_headers(writer["key"]))
    assert resp.status_code == 201
