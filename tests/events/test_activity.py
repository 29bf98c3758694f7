"""Activity log: the org's audit records filtered, counted, exported; admins only; never another org's."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

from tests.orgs.conftest import session_login

HX = {"HX-Request": "true"}


def _record(app, org_id, action, entity_type="build", *, actor_id=None, at=None, **details):
    from app.extensions import db
    from app.models import AuditRecord

    with app.app_context():
        db.session.add(AuditRecord(org_id=org_id, actor_user_id=actor_id, action=action, entity_type=entity_type,
                                   entity_id="x", details=details,
                                   created_at=at or datetime.now(timezone.utc)))
        db.session.commit()


def test_filters_pagination_and_tenancy(client, app, user, auth_headers, factory):
    org_id = user.default_org_id
    bob = factory.user(email="bob@example.com")
    factory.add_member(org_id, bob, "member")
    day = datetime(2026, 11, 3, 12, tzinfo=timezone.utc)
    for i in range(3):
        _record(app, org_id, "build.created", actor_id=user.id, at=day + timedelta(minutes=i), number=i)
    _record(app, org_id, "build.cancelled", actor_id=bob.id, at=day + timedelta(days=1))
    _record(app, org_id, "conversation.created", "conversation", actor_id=bob.id, at=day - timedelta(days=1))
    other = factory.user(email="other@example.com")
    _record(app, other.default_org_id, "build.created", actor_id=other.id, at=day)

    def get(**query):
        resp = client.get("/api/activity-log", query_string=query, headers=auth_headers)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()

    everything = get()
    # alice's sign-up records are there too; the other org's record never is
    assert any(r["action"] == "user.registered" for r in everything["records"])
    assert "other@example.com" not in str(everything)
    assert get(action="build.created")["totalCount"] == 3
    assert get(action="build.created,build.cancelled")["totalCount"] == 4
    by_bob = get(actorId=str(bob.id))
    assert {r["action"] for r in by_bob["records"]} == {"build.cancelled", "conversation.created"}
    assert by_bob["records"][0]["actorEmail"] == "bob@example.com"
    assert get(entityType="conversation")["totalCount"] == 1
    assert get(**{"from": "2026-11-03", "to": "2026-11-03"})["totalCount"] == 3
    assert get(**{"from": "2026-11-03T12:01:00Z", "to": "2026-11-04"})["totalCount"] == 3
    paged = get(action="build.created", limit=2, page=2)
    assert len(paged["records"]) == 1 and paged["hasMore"] is False
    assert get(action="build.created", limit=2)["records"][0]["details"] == {"number": 2}  # newest first

    bad = client.get("/api/activity-log", query_string={"from": "yesterday"}, headers=auth_headers)
    assert bad.status_code == 400 and "from" in bad.get_json()["error"]["details"]
    assert client.get("/api/activity-log", headers=factory.headers(bob, org_id)).status_code == 403


def test_stats_count_per_action_and_day(client, app, user, auth_headers):
    org_id = user.default_org_id
    day = datetime(2026, 11, 3, 23, 30, tzinfo=timezone.utc)
    _record(app, org_id, "build.created", at=day)
    _record(app, org_id, "build.created", at=day + timedelta(hours=1))  # the next UTC day
    _record(app, org_id, "build.failed", at=day + timedelta(hours=1))
    stats = client.get("/api/activity-log/stats", query_string={"from": "2026-11-01", "to": "2026-11-30"},
                       headers=auth_headers).get_json()
    assert stats["total"] == 3
    assert stats["byAction"] == [{"action": "build.created", "count": 2}, {"action": "build.failed", "count": 1}]
    assert stats["byDay"] == [{"day": "2026-11-03", "count": 1}, {"day": "2026-11-04", "count": 2}]
    assert stats["since"] == "2026-11-01T00:00:00Z" and stats["until"] == "2026-12-01T00:00:00Z"


def test_csv_export_api_and_page(client, app, user, auth_headers):
    org_id = user.default_org_id
    _record(app, org_id, "conversation.renamed", "conversation", actor_id=user.id, new="=HYPERLINK(\"x\")")
    resp = client.get("/api/activity-log", query_string={"format": "csv", "action": "conversation.renamed"},
                      headers=auth_headers)
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.data.decode())))
    assert len(rows) == 1 and rows[0]["actor_email"] == "alice@example.com"
    assert rows[0]["action"] == "conversation.renamed" and '"new": "=HYPERLINK' in rows[0]["details"]

    session_login(client, user, org_id)
    page = client.get("/activity", query_string={"action": "conversation.renamed", "actorId": ""})
    html = page.data.decode()
    assert page.status_code == 200 and "<html" in html and 'id="activity-table"' in html
    assert 'data-action="conversation.renamed"' in html and "1 record " in html
    frag = client.get("/activity", query_string={"entityType": "user"}, headers=HX).data.decode()
    assert frag.lstrip().startswith('<section id="activity-table"') and 'data-action="user.registered"' in frag
    exported = client.get("/activity/export.csv", query_string={"action": "conversation.renamed"})
    assert exported.mimetype == "text/csv" and len(exported.data.decode().strip().splitlines()) == 2
    assert client.get("/activity", query_string={"from": "soon"}).status_code == 400

