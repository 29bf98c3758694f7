"""Stripe (issue 15): checkout and portal through the official library against a local fake Stripe server
(localstripe, tests/billing/fake_stripe.py, on loopback), and webhook events signed here with the webhook
secret exactly as Stripe signs them (v1: HMAC-SHA256 of "<timestamp>.<payload>")."""
from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import stripe

WEBHOOK_SECRET = "whsec_test_" + uuid.uuid4().hex
SECRET_KEY = "sk_test_" + uuid.uuid4().hex


@pytest.fixture(scope="session")
def fake_stripe(tmp_path_factory):
    """localstripe on a free loopback port for the whole session; yields its base URL."""
    script = Path(__file__).with_name("fake_stripe.py")
    log = tmp_path_factory.mktemp("localstripe") / "stderr.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=err, text=True)
    line = proc.stdout.readline().strip()
    if not line.isdigit():
        proc.kill()
        raise RuntimeError(f"localstripe did not start: {line!r} {log.read_text()[-2000:]}")
    yield f"http://127.0.0.1:{line}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def stripe_plans(fake_stripe):
    """Two recurring prices in the fake (localstripe plans; Stripe accepts plan ids wherever prices go)."""
    client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": fake_stripe})
    made = {}
    for tier, cents in (("pro", 2900), ("tight", 100)):
        plan = client.v1.plans.create(params={"id": f"kiln-{tier}-{uuid.uuid4().hex[:6]}", "amount": cents,
                                              "currency": "usd", "interval": "month",
                                              "product": {"name": f"Kiln {tier}"}})
        made[tier] = plan.id
    return made


@pytest.fixture
def stripe_on(app, monkeypatch, fake_stripe, stripe_plans, billing):
    billing.tier("tight", members=1)
    for key, value in {"STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                       "KILN_STRIPE_API_BASE": fake_stripe, "KILN_STRIPE_PRICES": dict(stripe_plans),
                       "KILN_DEFAULT_TIER": "free"}.items():
        monkeypatch.setitem(app.config, key, value)
    return stripe_plans


def signed(event: dict, secret: str = WEBHOOK_SECRET, *, at: int | None = None) -> tuple[bytes, dict]:
    payload = json.dumps(event).encode()
    stamp = at if at is not None else int(time.time())
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, {"Stripe-Signature": f"t={stamp},v1={mac}", "Content-Type": "application/json"}


def event(kind: str, obj: dict, event_id: str | None = None) -> dict:
    return {"id": event_id or f"evt_{uuid.uuid4().hex}", "object": "event", "type": kind,
            "api_version": "2024-06-20", "created": int(time.time()), "livemode": False,
            "data": {"object": obj}}


def subscription(customer: str, price: str, status: str = "active", sub_id: str = "sub_test_1") -> dict:
    end = int(time.time()) + 30 * 86400
    return {"id": sub_id, "object": "subscription", "customer": customer, "status": status,
            "current_period_end": end,
            "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": price, "object": "price"}}]}}


def post_event(client, body: dict, **kw):
    payload, headers = signed(body, **kw)
    return client.post("/api/billing/webhook", data=payload, headers=headers)


@pytest.fixture
def owner(factory, billing):
    user = factory.user()
    billing.put_on(user.default_org_id, "free")
    return user


def _plan(app, org_id) -> str:
    from app.extensions import db
    from app.models import Organization

    with app.app_context():
        return db.session.get(Organization, org_id).plan


def _account(app, org_id):
    from app.extensions import db
    from app.models import BillingAccount

    with app.app_context():
        return db.session.get(BillingAccount, org_id)


def _checked_out(client, factory, owner, app) -> str:
    resp = client.post("/api/billing/checkout", json={"tier": "pro"}, headers=factory.headers(owner))
    assert resp.status_code == 200, resp.get_json()
    return _account(app, owner.default_org_id).stripe_customer_id


def test_without_settings_the_stripe_endpoints_answer_not_configured(client, factory, owner):
    for path in ("/api/billing/checkout", "/api/billing/portal"):
        resp = client.post(path, json={"tier": "pro"}, headers=factory.headers(owner))
        assert resp.status_code == 503, path
        assert resp.get_json()["error"]["code"] == "NOT_CONFIGURED"
    payload, headers = signed(event("invoice.paid", {"id": "in_1", "customer": "cus_x"}))
    resp = client.post("/api/billing/webhook", data=payload, headers=headers)
    assert resp.status_code == 503 and resp.get_json()["error"]["code"] == "NOT_CONFIGURED"


def test_checkout_creates_the_customer_once_and_a_subscription_session(app, client, factory, owner, stripe_on,
                                                                       fake_stripe):
    org_id = owner.default_org_id
    resp = client.post("/api/billing/checkout", json={"tier": "pro"}, headers=factory.headers(owner))
    assert resp.status_code == 200, resp.get_json()
    url = resp.get_json()["url"]
    assert url.startswith("https://checkout.stripe.test/c/pay/cs_test_")
    customer_id = _account(app, org_id).stripe_customer_id
    api = stripe.StripeClient(SECRET_KEY, base_addresses={"api": fake_stripe})
    customer = api.v1.customers.retrieve(customer_id)
    assert customer.metadata["kiln_org_id"] == str(org_id) and customer.email == owner.email
    session = api.v1.checkout.sessions.retrieve(url.rsplit("/", 1)[1])
    assert session.customer == customer_id and session.client_reference_id == str(org_id)
    assert session["line_items"][0]["price"] == stripe_on["pro"]
    assert session["subscription_data"]["metadata"]["kiln_org_id"] == str(org_id)
    # Checkout alone changes no plan: the webhook does, once Stripe reports the subscription.
    assert _plan(app, org_id) == "free"
    again = client.post("/api/billing/checkout", json={"tier": "tight"}, headers=factory.headers(owner))
    assert again.status_code == 200
    assert _account(app, org_id).stripe_customer_id == customer_id


def test_checkout_refuses_members_and_tiers_not_sold(app, client, factory, owner, stripe_on):
    member = factory.user()
    factory.add_member(owner.default_org_id, member, "member")
    resp = client.post("/api/billing/checkout", json={"tier": "pro"},
                       headers=factory.headers(member, owner.default_org_id))
    assert resp.status_code == 403
    resp = client.post("/api/billing/checkout", json={"tier": "team"}, headers=factory.headers(owner))
    assert resp.status_code == 400 and "not sold through Stripe" in resp.get_json()["error"]["message"]
    assert _account(app, owner.default_org_id) is None


def test_portal_needs_a_customer_first(app, client, factory, owner, stripe_on):
    resp = client.post("/api/billing/portal", headers=factory.headers(owner))
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "CONFLICT"
    _checked_out(client, factory, owner, app)
    resp = client.post("/api/billing/portal", headers=factory.headers(owner))
    assert resp.status_code == 200 and resp.get_json()["url"].startswith("https://billing.stripe.test/p/session/")


def test_subscription_events_move_the_org_and_a_replay_changes_nothing(app, client, factory, owner, stripe_on):
    org_id = owner.default_org_id
    customer = _checked_out(client, factory, owner, app)
    before = client.get("/api/tokens/balance", headers=factory.headers(owner)).get_json()["balance"]
    created = event("customer.subscription.created", subscription(customer, stripe_on["pro"]))
    resp = post_event(client, created)
    assert resp.status_code == 200 and resp.get_json() == {"received": True, "duplicate": False, "applied": True}
    assert _plan(app, org_id) == "pro"
    sub = client.get("/api/billing/subscription", headers=factory.headers(owner)).get_json()
    assert (sub["managedBy"], sub["status"], sub["tier"]["name"]) == ("stripe", "active", "pro")
    # Upgrading tops the month's token grant up from Free's (50,000) to Pro's (1,000,000).
    after = client.get("/api/tokens/balance", headers=factory.headers(owner)).get_json()["balance"]
    assert after - before == 950_000

    deleted = event("customer.subscription.deleted", subscription(customer, stripe_on["pro"], status="canceled"))
    assert post_event(client, deleted).status_code == 200
    assert _plan(app, org_id) == "free"
    replay = post_event(client, created)
    assert replay.status_code == 200 and replay.get_json()["duplicate"] is True
    assert _plan(app, org_id) == "free"
    assert _account(app, org_id).subscription_status == "canceled"
    with app.app_context():
        from sqlalchemy import select

        from app.extensions import db
        from app.models import AuditRecord

        changes = db.session.scalars(select(AuditRecord).where(AuditRecord.org_id == org_id,
                                                               AuditRecord.action == "billing.plan_changed")).all()
        assert sorted(r.details["tier"] for r in changes) == ["free", "pro"]
        assert {r.details["source"] for r in changes} == {"stripe"}


def test_a_downgrade_over_the_limits_is_applied_recorded_and_notified(app, client, factory, owner, billing,
                                                                      stripe_on):
    org_id = owner.default_org_id
    billing.put_on(org_id, "pro")
    factory.add_member(org_id, factory.user(), "member")  # two members; Tight allows one
    customer = _checked_out(client, factory, owner, app)
    resp = post_event(client, event("customer.subscription.updated", subscription(customer, stripe_on["tight"])))
    assert resp.status_code == 200 and resp.get_json()["applied"] is True
    assert _plan(app, org_id) == "tight"
    with app.app_context():
        from sqlalchemy import select

        from app.extensions import db
        from app.models import AuditRecord, Notification

        change = db.session.scalar(select(AuditRecord).where(AuditRecord.org_id == org_id,
                                                             AuditRecord.action == "billing.plan_changed"))
        assert change.details["violations"][0]["limit"] == "members"
        note = db.session.scalar(select(Notification).where(Notification.user_id == owner.id,
                                                            Notification.kind == "billing.payment"))
        assert note is not None and "over its limits" in note.title


def test_invoice_events_record_their_outcome(app, client, factory, owner, stripe_on):
    org_id = owner.default_org_id
    customer = _checked_out(client, factory, owner, app)
    failed = event("invoice.payment_failed", {"id": "in_1", "object": "invoice", "customer": customer,
                                              "amount_due": 2900})
    assert post_event(client, failed).status_code == 200
    account = _account(app, org_id)
    assert (account.last_invoice_id, account.last_invoice_status) == ("in_1", "failed")
    paid = event("invoice.paid", {"id": "in_2", "object": "invoice", "customer": customer, "amount_paid": 2900})
    assert post_event(client, paid).get_json()["applied"] is True
    assert _account(app, org_id).last_invoice_status == "paid"
    with app.app_context():
        from sqlalchemy import select

        from app.extensions import db
        from app.models import AuditRecord

        actions = set(db.session.scalars(select(AuditRecord.action).where(AuditRecord.org_id == org_id)))
        assert {"billing.invoice_failed", "billing.invoice_paid"} <= actions


def test_webhook_signatures_are_checked(app, client, owner, stripe_on):
    body = event("customer.subscription.created", subscription("cus_nobody", stripe_on["pro"]))
    wrong = post_event(client, body, secret="whsec_someone_else")
    assert wrong.status_code == 400 and "Stripe-Signature" in wrong.get_json()["error"]["message"]
    stale = post_event(client, body, at=int(time.time()) - 3600)
    assert stale.status_code == 400
    missing = client.post("/api/billing/webhook", data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert missing.status_code == 400 and "missing" in missing.get_json()["error"]["message"]
    payload, headers = signed(body)
    tampered = client.post("/api/billing/webhook", data=payload.replace(b"active", b"trialing"), headers=headers)
    assert tampered.status_code == 400
    # Verified but for no customer of ours: acknowledged (Stripe would retry forever), nothing changes.
    ok = post_event(client, body)
    assert ok.status_code == 200 and ok.get_json()["applied"] is False


def test_the_billing_page_offers_checkout_then_manage_billing(app, client, factory, site_admin, owner, stripe_on):
    """The owner (not a site admin: that is the first account) pays through Stripe."""
    from tests.conftest import PASSWORD

    assert client.post("/login", data={"email": owner.email, "password": PASSWORD}).status_code in (302, 303)
    page = client.get("/billing").get_data(as_text=True)
    assert "Checkout Pro" in page and "Checkout Tight" in page and "Checkout Team" not in page
    assert "Manage billing" not in page and "Move to" not in page
    resp = client.post("/billing/checkout", data={"tier": "pro"})
    assert resp.status_code == 303 and resp.headers["Location"].startswith("https://checkout.stripe.test/")
    assert "Manage billing" in client.get("/billing").get_data(as_text=True)
    resp = client.post("/billing/portal")
    assert resp.status_code == 303 and resp.headers["Location"].startswith("https://billing.stripe.test/")


def test_without_stripe_the_page_keeps_the_site_admin_path(app, client, factory, site_admin, owner):
    from tests.conftest import PASSWORD

    client.post("/login", data={"email": owner.email, "password": PASSWORD})
    page = client.get("/billing").get_data(as_text=True)
    assert "Checkout" not in page and "Manage billing" not in page
    assert "site administrators change plans" in page


def test_the_end_of_a_replaced_subscription_leaves_the_plan(app, client, factory, owner, stripe_on):
    org_id = owner.default_org_id
    customer = _checked_out(client, factory, owner, app)
    current = subscription(customer, stripe_on["pro"], sub_id="sub_new")
    assert post_event(client, event("customer.subscription.created", current)).status_code == 200
    late = event("customer.subscription.deleted",
                 subscription(customer, stripe_on["tight"], status="canceled", sub_id="sub_old"))
    resp = post_event(client, late)
    assert resp.status_code == 200 and resp.get_json()["applied"] is False
    assert _plan(app, org_id) == "pro"
    assert _account(app, org_id).stripe_subscription_id == "sub_new"


def test_stripe_unreachable_is_a_provider_error_and_leaves_nothing(app, client, factory, owner, stripe_on,
                                                                   monkeypatch):
    monkeypatch.setitem(app.config, "KILN_STRIPE_API_BASE", "http://127.0.0.1:9")  # nothing listens there
    resp = client.post("/api/billing/checkout", json={"tier": "pro"}, headers=factory.headers(owner))
    assert resp.status_code == 502 and resp.get_json()["error"]["code"] == "PAYMENT_PROVIDER_ERROR"
    assert "Stripe could not create a customer" in resp.get_json()["error"]["message"]
    assert _account(app, owner.default_org_id) is None
