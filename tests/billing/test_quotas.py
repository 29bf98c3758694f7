"""Every limit at its edge: the last allowed action passes, the first one past the limit is 402
QUOTA_EXCEEDED naming the limit, the use and the tier that would allow it."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.billing.conftest import RECIPE

MB = 1024 * 1024


def start(client, headers):
    return client.post("/api/builds", json={"recipe": RECIPE}, headers=headers)


def assert_refused(resp, limit: str, current, allowed, upgrade: str, tier: str = "tight"):
    assert resp.status_code == 402, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == "QUOTA_EXCEEDED"
    details = error["details"]
    assert (details["limit"], details["current"], details["allowed"], details["tier"]) == (limit, current, allowed,
                                                                                            tier)
    # The cheapest tier that allows one more is named, in the details and in words.
    assert details["upgradeTier"] == upgrade
    assert f"{upgrade.title()} plan allows" in error["message"]


def test_concurrent_builds_last_allowed_then_refused(client, auth_headers, billing, org_id):
    billing.put_on(org_id, billing.tier(concurrent_builds=2))
    assert start(client, auth_headers).status_code == 201
    assert start(client, auth_headers).status_code == 201
    assert_refused(start(client, auth_headers), "concurrent_builds", 2, 2, "pro")


def test_finished_builds_free_their_slot(client, auth_headers, billing, org_id):
    billing.put_on(org_id, billing.tier(concurrent_builds=1))
    billing.build(org_id, status="succeeded", ran=timedelta(seconds=5))
    assert start(client, auth_headers).status_code == 201
    assert_refused(start(client, auth_headers), "concurrent_builds", 1, 1, "pro")


def test_starts_per_hour(client, auth_headers, billing, org_id):
    billing.put_on(org_id, billing.tier(builds_per_hour=2))
    billing.build(org_id, status="succeeded", queued_ago=timedelta(minutes=61))  # outside the hour
    billing.build(org_id, status="succeeded", queued_ago=timedelta(minutes=30))
    assert start(client, auth_headers).status_code == 201
    assert_refused(start(client, auth_headers), "builds_per_hour", 2, 2, "free")


def test_starts_per_month(client, auth_headers, billing, org_id):
    billing.put_on(org_id, billing.tier(builds_per_month=3))
    billing.build(org_id, status="succeeded")
    billing.build(org_id, status="failed")
    assert start(client, auth_headers).status_code == 201
    assert_refused(start(client, auth_headers), "builds_per_month", 3, 3, "free")


def test_a_pending_build_is_not_a_start(client, auth_headers, billing, org_id):
    billing.put_on(org_id, billing.tier(builds_per_month=1))
    created = client.post("/api/builds", json={"recipe": RECIPE, "start": False}, headers=auth_headers)
    assert created.status_code == 201 and created.get_json()["status"] == "pending"
    assert start(client, auth_headers).status_code == 201
    # The pending one cannot start now: the month's one start is used.
    resp = client.post(f"/api/builds/{created.get_json()['id']}/start", headers=auth_headers)
    assert_refused(resp, "builds_per_month", 1, 1, "free")


def test_build_minutes(client, auth_headers, billing, org_id):
    billing.put_on(org_id, billing.tier(build_minutes_per_month=2))
    billing.build(org_id, status="succeeded", ran=timedelta(seconds=114))  # 1.9 minutes: room left
    assert start(client, auth_headers).status_code == 201
    billing.build(org_id, status="succeeded", ran=timedelta(seconds=6))  # 2.0 minutes with the one above
    assert_refused(start(client, auth_headers), "build_minutes_per_month", 2.0, 2, "free")


def test_deleting_builds_gives_back_storage_not_starts_or_minutes(client, auth_headers, billing, org_id):
    billing.put_on(org_id, billing.tier(builds_per_month=2, build_minutes_per_month=2, storage_mb=1))
    spent = billing.build(org_id, status="succeeded", ran=timedelta(seconds=120), artifact_size=MB)
    assert_refused(start(client, auth_headers), "build_minutes_per_month", 2.0, 2, "free")
    assert client.delete(f"/api/builds/{spent}", headers=auth_headers).status_code == 204
    usage = client.get("/api/billing/usage", headers=auth_headers).get_json()["usage"]
    assert (usage["buildsPerMonth"], usage["buildMinutesPerMonth"], usage["storageMb"]) == (1, 2.0, 0.0)
    assert_refused(start(client, auth_headers), "build_minutes_per_month", 2.0, 2, "free")


def test_artifact_storage(client, auth_headers, billing, org_id):
    billing.put_on(org_id, billing.tier(storage_mb=1))
    billing.build(org_id, status="succeeded", artifact_size=MB - 200 * 1024)  # 0.8 MB
    assert start(client, auth_headers).status_code == 201
    billing.build(org_id, status="succeeded", artifact_size=200 * 1024)  # 1.0 MB together
    assert_refused(start(client, auth_headers), "storage_mb", 1.0, 1, "free")


def test_members(client, app, factory, user, auth_headers, billing, org_id):
    billing.put_on(org_id, billing.tier(members=2))
    bob, carol = factory.user(email="bob@example.com"), factory.user(email="carol@example.com")
    url = f"/api/organizations/{org_id}/members"
    assert client.post(url, json={"email": bob.email, "role": "member"}, headers=auth_headers).status_code == 201
    assert_refused(client.post(url, json={"email": carol.email, "role": "member"}, headers=auth_headers),
                   "members", 2, 2, "free")


def test_members_by_invitation(client, app, factory, billing, org_id, auth_headers):
    from app.extensions import db
    from app.services import orgs
    from app.services.audit import Actor
    from app.services.errors import QuotaExceeded

    billing.put_on(org_id, billing.tier(members=1))
    bob = factory.user(email="bob@example.com")
    with app.app_context():
        from app.models import Organization, User

        org = db.session.get(Organization, org_id)
        _, raw = orgs.invite(Actor(), org, bob.email, "member", actor_role="owner", config=app.config,
                            accept_url_for=lambda t: f"http://x/{t}")
        db.session.commit()
        with pytest.raises(QuotaExceeded):
            orgs.accept_invite(Actor(), raw, db.session.get(User, bob.id))


def test_api_keys(client, auth_headers, billing, org_id):
    billing.put_on(org_id, billing.tier(api_keys=1))
    url = f"/api/organizations/{org_id}/api-keys"
    first = client.post(url, json={"name": "ci", "scopes": ["builds:read"]}, headers=auth_headers)
    assert first.status_code == 201
    assert_refused(client.post(url, json={"name": "deploy", "scopes": ["builds:read"]}, headers=auth_headers), "api_keys", 1, 1, "free")
    # A revoked key no longer counts.
    assert client.post(f"{url}/{first.get_json()['id']}/revoke", headers=auth_headers).status_code == 200
    assert client.post(url, json={"name": "deploy", "scopes": ["builds:read"]}, headers=auth_headers).status_code == 201


def test_webhooks(client, app, auth_headers, billing, org_id, monkeypatch):
    monkeypatch.setitem(app.config, "KILN_WEBHOOK_ALLOW_PRIVATE", True)
    billing.put_on(org_id, billing.tier(webhooks=1))
    body = {"url": "http://127.0.0.1:9/hook", "events": ["build.completed"]}
    assert client.post("/api/webhooks", json=body, headers=auth_headers).status_code == 201
    assert_refused(client.post("/api/webhooks", json=body, headers=auth_headers), "webhooks", 1, 1, "free")


def test_organizations_owned_on_a_limited_tier(client, app, factory, billing, monkeypatch):
    """New orgs start on KILN_DEFAULT_TIER; a user owns at most that tier's owned_orgs of them."""
    monkeypatch.setitem(app.config, "KILN_DEFAULT_TIER", billing.tier(owned_orgs=2))
    dave = factory.user(email="dave@example.com")  # the personal org is the first
    headers = factory.headers(dave)
    assert client.post("/api/organizations", json={"name": "Second"}, headers=headers).status_code == 201
    resp = client.post("/api/organizations", json={"name": "Third"}, headers=headers)
    assert_refused(resp, "owned_orgs", 2, 2, "pro")


def test_api_rate_limit_follows_the_tier(client, auth_headers, billing, org_id):
    billing.put_on(org_id, billing.tier(api_requests_per_minute=3))
    for _ in range(3):
        resp = client.get("/api/billing/plan-summary", headers=auth_headers)
        assert resp.status_code == 200
        assert resp.headers["X-RateLimit-Limit"] == "3"
    resp = client.get("/api/billing/plan-summary", headers=auth_headers)
    assert resp.status_code == 429
    assert resp.get_json()["error"]["code"] == "RATE_LIMITED"


def test_unlimited_tier_has_the_instance_rate_limit(client, app, auth_headers, org_id):
    resp = client.get("/api/billing/plan-summary", headers=auth_headers)
    assert resp.headers["X-RateLimit-Limit"] == app.config["KILN_RATE_LIMIT"].split()[0]


def test_two_starts_racing_for_the_last_slot_one_wins(app, user, billing, org_id):
    """Two real threads, each with its own connection: A checks and queues, then holds its transaction open;
    B tries meanwhile. The lock on the org row makes B wait for A's commit and then see A's build, so B is
    refused. Without the lock B would count only committed builds (none) and pass too."""
    import threading
    import time

    from app.extensions import db
    from app.models import Build, Organization
    from app.services.audit import Actor
    from app.services.builds import lifecycle
    from app.services.errors import QuotaExceeded

    billing.put_on(org_id, billing.tier(concurrent_builds=1))
    first, second = billing.build(org_id, status="pending"), billing.build(org_id, status="pending")
    a_checked = threading.Event()
    outcome = {}

    def start(build_id, name, hold: bool):
        with app.app_context():
            try:
                org = db.session.get(Organization, org_id)
                lifecycle.start_build(Actor.system(), org, db.session.get(Build, build_id))
                if hold:
                    a_checked.set()
                    time.sleep(0.8)  # B runs now, while A's transaction (and lock) is open
                db.session.commit()
                outcome[name] = "queued"
            except QuotaExceeded:
                db.session.rollback()
                outcome[name] = "refused"
            finally:
                a_checked.set()
                db.session.remove()

    a = threading.Thread(target=start, args=(first, "a", True))
    a.start()
    assert a_checked.wait(10)
    b = threading.Thread(target=start, args=(second, "b", False))
    b.start()
    a.join(20), b.join(20)
    assert outcome == {"a": "queued", "b": "refused"}
    with app.app_context():
        from sqlalchemy import func, select

        assert db.session.scalar(select(func.count(Build.id)).where(Build.org_id == org_id,
                                                                    Build.status == "queued")) == 1


def test_pages_say_the_refusal_in_words_with_the_way_to_the_plans(client, logged_in_client, billing, org_id):
    billing.put_on(org_id, billing.tier(concurrent_builds=1))
    billing.build(org_id, status="queued")
    pending = billing.build(org_id, status="pending")
    resp = logged_in_client.post(f"/builds/{pending}/start", headers={"HX-Request": "true"})
    assert resp.status_code == 402
    html = resp.get_data(as_text=True)
    assert "Your Tight plan allows 1 concurrent builds; this organization is at 1." in html
    assert 'href="/billing"' in html
    resp = logged_in_client.post(f"/builds/{pending}/start", follow_redirects=True)
    html = resp.get_data(as_text=True)
    assert "The Pro plan allows 3 concurrent builds." in html and 'href="/billing"' in html
