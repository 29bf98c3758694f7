"""The billing API (API.md, Billing and usage): tiers, subscription, usage, plan summary, plan changes."""
from __future__ import annotations

from datetime import timedelta

from tests.billing.conftest import RECIPE

MB = 1024 * 1024
LIMIT_KEYS = {"buildsPerHour", "buildsPerMonth", "concurrentBuilds", "buildMinutesPerMonth", "storageMb",
              "retentionDays", "members", "apiKeys", "webhooks", "llmTokensPerMonth", "apiRequestsPerMinute",
              "ownedOrgs"}


def test_tiers_are_public_with_every_limit(client):
    resp = client.get("/api/billing/tiers")
    assert resp.status_code == 200
    tiers = resp.get_json()["tiers"]
    assert [t["name"] for t in tiers] == ["free", "pro", "team", "enterprise"]
    for tier in tiers:
        assert LIMIT_KEYS <= set(tier)
    free, enterprise = tiers[0], tiers[-1]
    assert free["concurrentBuilds"] == 1 and free["retentionDays"] == 7
    assert all(enterprise[k] is None for k in LIMIT_KEYS)


def test_site_admins_edit_tiers_and_others_may_not(app, client, factory, user, site_admin):
    body = {"concurrentBuilds": 4, "storageMb": None}
    refused = client.patch("/api/billing/tiers/free", json=body, headers=factory.headers(user))
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "FORBIDDEN"
    resp = client.patch("/api/billing/tiers/free", json=body, headers=factory.headers(site_admin))
    assert resp.status_code == 200, resp.get_json()
    assert (resp.get_json()["concurrentBuilds"], resp.get_json()["storageMb"]) == (4, None)
    free = client.get("/api/billing/tiers").get_json()["tiers"][0]
    assert (free["concurrentBuilds"], free["storageMb"], free["members"]) == (4, None, 3)
    with app.app_context():
        from sqlalchemy import select

        from app.extensions import db
        from app.models import AuditRecord

        audit = db.session.scalar(select(AuditRecord).where(AuditRecord.action == "billing.tier_updated"))
        assert audit.actor_user_id == site_admin.id
        assert audit.details["changes"]["concurrent_builds"] == {"from": 1, "to": 4}


def test_tier_edits_are_validated(client, factory, site_admin):
    headers = factory.headers(site_admin)
    resp = client.patch("/api/billing/tiers/free", json={"concurrentBuilds": -1}, headers=headers)
    assert resp.status_code == 400 and "concurrentBuilds" in resp.get_json()["error"]["details"]
    resp = client.patch("/api/billing/tiers/free", json={"bogus": 1}, headers=headers)
    assert resp.status_code == 400 and "bogus" in resp.get_json()["error"]["details"]
    assert client.patch("/api/billing/tiers/platinum", json={}, headers=headers).status_code == 404


def test_plan_summary_usage_and_subscription(client, auth_headers, billing, org_id):
    billing.put_on(org_id, billing.tier(concurrent_builds=4, storage_mb=10, builds_per_month=None,
                                        llm_tokens_per_month=500))
    assert client.post("/api/builds", json={"recipe": RECIPE}, headers=auth_headers).status_code == 201
    billing.build(org_id, status="succeeded", ran=timedelta(seconds=90), artifact_size=8 * MB)
    summary = client.get("/api/billing/plan-summary", headers=auth_headers).get_json()
    assert summary["tier"]["name"] == "tight" and summary["tokenBalance"] == 500
    limits = {row["key"]: row for row in summary["limits"]}
    assert limits["concurrent_builds"] == {"key": "concurrent_builds", "label": "concurrent builds",
                                           "unit": "builds", "limit": 4, "used": 1.0, "percentage": 25.0,
                                           "state": "ok"}
    assert (limits["storage_mb"]["used"], limits["storage_mb"]["percentage"], limits["storage_mb"]["state"]) == \
        (8.0, 80.0, "warning")
    assert limits["builds_per_month"]["limit"] is None and limits["builds_per_month"]["percentage"] is None
    assert limits["build_minutes_per_month"]["used"] == 1.5
    usage = client.get("/api/billing/usage", headers=auth_headers).get_json()
    assert usage["usage"]["storageMb"] == 8.0 and usage["limits"]["storageMb"] == 10
    assert usage["usage"]["buildsPerMonth"] == 2 and usage["limits"]["buildsPerMonth"] is None
    sub = client.get("/api/billing/subscription", headers=auth_headers).get_json()
    assert sub["tier"]["name"] == "tight" and sub["status"] == "active"
    assert sub["currentPeriodStart"] < sub["currentPeriodEnd"]


def test_validate_downgrade_lists_what_exceeds(client, factory, user, auth_headers, billing, org_id):
    for email in ("b@example.com", "c@example.com", "d@example.com"):
        factory.add_member(org_id, factory.user(email=email))
    billing.build(org_id, status="succeeded", artifact_size=3000 * MB)
    resp = client.post("/api/billing/validate-downgrade", json={"tier": "free"}, headers=auth_headers)
    body = resp.get_json()
    assert resp.status_code == 200 and body["allowed"] is False
    assert {(v["limit"], v["current"], v["allowed"]) for v in body["violations"]} == {
        ("members", 4, 3), ("storage_mb", 3000.0, 2048)}
    assert client.post("/api/billing/validate-downgrade", json={"tier": "pro"},
                       headers=auth_headers).get_json() == {"tier": "pro", "allowed": True, "violations": []}
    resp = client.post("/api/billing/validate-downgrade", json={"tier": "gold"}, headers=auth_headers)
    assert resp.status_code == 400 and "tier" in resp.get_json()["error"]["details"]


def test_owners_cannot_change_plans_without_a_payment_provider(client, auth_headers):
    resp = client.post("/api/billing/change-plan", json={"tier": "pro"}, headers=auth_headers)
    assert resp.status_code == 403
    assert "site administrators" in resp.get_json()["error"]["message"]


def test_site_admin_changes_a_plan_audited_and_downgrade_refused_while_it_exceeds(app, client, factory, user,
                                                                                  site_admin, billing, org_id):
    headers = factory.headers(site_admin)
    resp = client.post("/api/billing/change-plan", json={"tier": "pro", "orgId": str(org_id)}, headers=headers)
    assert resp.status_code == 200 and resp.get_json()["tier"]["name"] == "pro"
    owner = factory.headers(user)
    assert client.get("/api/billing/subscription", headers=owner).get_json()["tier"]["name"] == "pro"
    for email in ("b@example.com", "c@example.com", "d@example.com"):
        factory.add_member(org_id, factory.user(email=email))
    resp = client.post("/api/billing/change-plan", json={"tier": "free", "orgId": str(org_id)}, headers=headers)
    assert resp.status_code == 409
    assert resp.get_json()["error"]["details"]["violations"][0]["limit"] == "members"
    assert client.get("/api/billing/subscription", headers=owner).get_json()["tier"]["name"] == "pro"
    with app.app_context():
        from sqlalchemy import select

        from app.extensions import db
        from app.models import AuditRecord

        rows = db.session.scalars(select(AuditRecord).where(AuditRecord.action == "billing.plan_changed")).all()
        assert [(r.details["previous"], r.details["tier"]) for r in rows] == [("enterprise", "pro")]
    # Another org's plan is a site admin's business only.
    other = factory.user(email="z@example.com")
    resp = client.post("/api/billing/change-plan", json={"tier": "pro", "orgId": str(other.default_org_id)},
                       headers=owner)
    assert resp.status_code == 403


def test_upgrading_mid_month_tops_up_the_token_grant(client, factory, user, site_admin, billing, org_id):
    billing.put_on(org_id, "free")
    owner = factory.headers(user)
    assert client.get("/api/tokens/balance", headers=owner).get_json()["balance"] == 50_000
    resp = client.post("/api/billing/change-plan", json={"tier": "pro", "orgId": str(org_id)},
                       headers=factory.headers(site_admin))
    assert resp.status_code == 200
    assert client.get("/api/tokens/balance", headers=owner).get_json()["balance"] == 1_000_000
