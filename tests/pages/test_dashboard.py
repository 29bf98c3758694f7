"""The dashboard's numbers are true for the person looking, and what they may not see stays out."""
from __future__ import annotations

import re

from tests.conftest import PASSWORD


def _login(client, email):
    resp = client.post("/login", data={"email": email, "password": PASSWORD})
    assert resp.status_code == 302


def _stat(html: str, words: str) -> int:
    match = re.search(r"<strong>(\d+)</strong> <span>" + words, html)
    assert match, f"no '{words}' count on the dashboard"
    return int(match.group(1))


def test_counts_attention_activity_and_chart_for_the_owner(client, workspace):
    _login(client, "alice@example.com")
    html = client.get("/dashboard").get_data(as_text=True)
    assert _stat(html, "conversations") == 5
    # This week: builds 0..6 days old: succeeded (0, 2, 3, 4, 6 days), failed (1, 3), running (0).
    assert _stat(html, "builds this week") == 8
    assert "5 succeeded" in html and "2 failed" in html and "1 in progress" in html
    assert _stat(html, "images ready to download") == 2  # the builds with an image artifact
    attention = html[html.index('id="dashboard-attention"'):html.index('id="dashboard-activity"')]
    assert attention.count("status-failed") == 2 and "status-building" in attention
    activity = html[html.index('id="dashboard-activity"'):html.index('id="dashboard-chart"')]
    assert "Alice Lindqvist" in activity and "started the conversation" in activity
    assert "saved recipe version 1" not in activity  # implied by "started the conversation"
    assert 'aria-label="Builds per day over the last 30 days: 12 in all' in html
    assert "Rebuild debian (build #1)" in html
    assert "<title>Dashboard · Acme Platform Engineering · Kiln</title>" in html


def test_a_member_sees_only_what_is_shared_with_them(client, workspace):
    # Carol (member) has no access to Alice's private conversations, nor to the builds made from them.
    _login(client, "carol@example.com")
    client.post("/orgs/switch", data={"org_id": str(workspace.org_id), "next": "/dashboard"})
    html = client.get("/dashboard").get_data(as_text=True)
    assert "Acme Platform Engineering</h1>" in html
    assert "Nothing here yet" in html
    assert "Create a Debian server" not in html and "ci-deploy" not in html


def test_activity_about_the_org_itself_is_for_those_who_manage_it(app, workspace):
    from app.extensions import db
    from app.models import Organization, User
    from app.services import dashboard
    from app.services.audit import Actor

    with app.app_context():
        org = db.session.get(Organization, workspace.org_id)
        actor = Actor(user=db.session.get(User, workspace.user.id))
        as_owner = [item["text"] for item in dashboard.activity(org, actor=actor, role="owner", limit=100)]
        as_member = [item["text"] for item in dashboard.activity(org, actor=actor, role="member", limit=100)]
    assert "created the API key “ci-deploy”" in as_owner and "created the unit “Infrastructure”" in as_owner
    assert not [text for text in as_member if "API key" in text or "unit" in text]
    assert "wrote in “Create a Debian server with SSH and Docker”" in as_member  # her own conversation
