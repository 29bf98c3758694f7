"""Search: ranked, highlighted matches over what the caller may see, on SQLite FTS5 and PostgreSQL tsvector."""
from __future__ import annotations

from tests.orgs.conftest import session_login


def _conversation(app, org_id, owner_id, name, *, packages=(), hostname="web01", messages=()):
    from app.engine.recipe import recipe_hash, validate_recipe
    from app.extensions import db
    from app.models import Conversation, Message, RecipeVersion

    with app.app_context():
        recipe = validate_recipe({"name": "box", "release": "trixie", "format": "iso", "hostname": hostname,
                                  "packages": list(packages)})
        conv = Conversation(org_id=org_id, name=name, created_by_id=owner_id, current_version=1)
        db.session.add(conv)
        db.session.flush()
        db.session.add(RecipeVersion(conversation_id=conv.id, number=1, recipe=recipe,
                                     recipe_hash=recipe_hash(recipe), source="initial", author_id=owner_id))
        for text in messages:
            db.session.add(Message(conversation_id=conv.id, role="user", content=text, author_id=owner_id))
        db.session.commit()
        return str(conv.id)


def _search(client, headers, q, expect=200, **query):
    resp = client.get("/api/search", query_string={"q": q, **query}, headers=headers)
    assert resp.status_code == expect, resp.get_json()
    return resp.get_json()


def test_finds_a_conversation_by_a_package_in_its_recipe_never_another_orgs(client, app, user, auth_headers, factory):
    mine = _conversation(app, user.default_org_id, user.id, "Web server", packages=["nginx", "postgresql-16"])
    _conversation(app, user.default_org_id, user.id, "Mail relay", packages=["postfix"])
    mallory = factory.user(email="mallory@example.com")
    theirs = _conversation(app, mallory.default_org_id, mallory.id, "Their web server", packages=["nginx"])

    body = _search(client, auth_headers, "nginx")
    assert [(h["type"], h["conversationId"]) for h in body["results"]] == [("recipe", mine)]
    hit = body["results"][0]
    assert hit["url"] == f"/chat/{mine}" and "<mark>nginx</mark>" in hit["snippet"]
    assert _search(client, auth_headers, "postgresql")["results"][0]["conversationId"] == mine  # postgresql-16
    assert _search(client, auth_headers, "web01 postfix")["results"][0]["title"].startswith("Mail relay")
    assert [h["conversationId"] for h in _search(client, factory.headers(mallory), "nginx")["results"]] == [theirs]


def test_private_conversations_stay_private_and_members_are_for_admins(client, app, user, auth_headers, factory):
    org_id = user.default_org_id
    _conversation(app, org_id, user.id, "Secret kiosk", packages=["chromium"])
    bob = factory.user(email="bob@example.com", name="Bob Builder")
    factory.add_member(org_id, bob, "member")
    bob_headers = factory.headers(bob, org_id)
    assert _search(client, bob_headers, "kiosk")["results"] == []  # alice's, not shared with bob
    assert _search(client, auth_headers, "kiosk")["results"][0]["type"] == "conversation"
    assert _search(client, bob_headers, "builder")["results"] == []
    (member,) = _search(client, auth_headers, "builder", types="member")["results"]
    assert member["id"] == str(bob.id) and "<mark>Builder</mark>" in member["snippet"]


def test_messages_builds_ranking_and_escaping(client, app, user, auth_headers, builds):
    org_id = user.default_org_id
    named = _conversation(app, org_id, user.id, "Grafana dashboard")
    chatty = _conversation(app, org_id, user.id, "Monitoring", messages=[
        "We need metrics for the fleet.", "Maybe later add grafana next to prometheus.", "Is 2 < 3 when scripted & tested?"])
    hits = _search(client, auth_headers, "grafana", types="conversation")["results"]
    assert [h["id"] for h in hits] == [named, chatty]  # a match in the name outranks one in a message
    assert hits[0]["rank"] >= hits[1]["rank"]
    escaped = _search(client, auth_headers, "scripted")["results"][0]["snippet"]
    assert "<mark>scripted</mark>" in escaped and "&lt;" in escaped and "&amp;" in escaped
    assert "<" not in escaped.replace("<mark>", "").replace("</mark>", "")

    builds.create(org_id, status="failed")
    builds.create(org_id, status="succeeded")
    (failed,) = _search(client, auth_headers, "failed", types="build")["results"]
    assert failed["title"] == "Build #1 web (failed)" and failed["url"].startswith("/builds/")
    assert [h["title"] for h in _search(client, auth_headers, "2", types="build")["results"]] == ["Build #2 web (succeeded)"]


def test_bad_queries_and_the_page(client, app, user, auth_headers):
    assert "q" in _search(client, auth_headers, "", expect=400)["error"]["details"]
    assert "q" in _search(client, auth_headers, "'\"*:()", expect=400)["error"]["details"]
    assert _search(client, auth_headers, "x", expect=400, types="secrets")["error"]["details"]
    _conversation(app, user.default_org_id, user.id, "Edge router", packages=["nftables"])
    session_login(client, user, user.default_org_id)
    html = client.get("/search", query_string={"q": "nftables"}).data.decode()
    assert 'data-type="recipe"' in html and "<mark>nftables</mark>" in html and "1 result " in html
    assert 'role="search" class="header-search"' in client.get("/dashboard").data.decode()
