"""Event pages: webhooks (list, create with the secret once, delivery log, ping, redeliver)."""
from __future__ import annotations

import re

from tests.orgs.conftest import session_login

HX = {"HX-Request": "true"}


def test_webhook_pages_need_an_admin(client, factory, user):
    assert "/login" in client.get("/webhooks").headers["Location"]
    bob = factory.user(email="bob@example.com")
    factory.add_member(user.default_org_id, bob, "member")
    session_login(client, bob, user.default_org_id)
    assert client.get("/webhooks").status_code == 403


def test_webhook_pages_full_and_fragments(client, user, receiver, allow_private, run_webhook_jobs):
    session_login(client, user, user.default_org_id)
    page = client.get("/webhooks")
    html = page.data.decode()
    assert page.status_code == 200 and "<html" in html and 'id="webhooks"' in html and "No endpoints yet" in html

    resp = client.post("/webhooks", data={"url": receiver.url(), "events": ["build.completed"], "description": "CI"},
                       headers=HX)
    frag = resp.data.decode()
    assert resp.status_code == 200 and "<html" not in frag and frag.lstrip().startswith('<div id="webhooks"')
    secret = re.search(r'value="(whsec_[^"]+)"', frag).group(1)
    assert receiver.url() in frag
    assert secret not in client.get("/webhooks").data.decode()  # shown once

    # A refused htmx form answers its real status with the partial that owns the form, the error inside.
    bad = client.post("/webhooks", data={"url": "gopher://x", "events": ["build.completed"]}, headers=HX)
    assert bad.status_code == 400 and bad.data.decode().lstrip().startswith('<div id="webhooks"')
    assert "url: must be an http" in bad.data.decode()

    webhook_id = re.search(r'data-webhook="([0-9a-f-]+)"', frag).group(1)
    unknown = client.post(f"/webhooks/{webhook_id}/frobnicate", headers=HX)
    assert unknown.status_code == 400 and "Unknown webhook action" in unknown.data.decode()
    assert unknown.data.decode().lstrip().startswith('<div id="webhooks"')
    resp = client.post(f"/webhooks/{webhook_id}/ping", headers=HX)
    assert "Ping queued." in resp.data.decode()
    run_webhook_jobs()
    assert receiver.payloads()[0]["type"] == "webhook.ping"

    detail = client.get(f"/webhooks/{webhook_id}")
    html = detail.data.decode()
    assert detail.status_code == 200 and "<html" in html and 'id="deliveries"' in html
    assert "webhook.ping" in html and "HTTP 200" in html and "webhook-signature: v1," in html
    assert "HX-Request" in detail.headers["Vary"]
    frag = client.get(f"/webhooks/{webhook_id}", headers=HX).data.decode()
    assert frag.lstrip().startswith('<div id="deliveries"')

    delivery_id = re.search(r'data-delivery="([0-9a-f-]+)"', frag).group(1)
    resp = client.post(f"/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", headers=HX)
    assert "Redelivery queued." in resp.data.decode()
    run_webhook_jobs()
    assert len(receiver.requests) == 2

    resp = client.post(f"/webhooks/{webhook_id}/disable")
    assert resp.status_code == 302
    assert "disabled" in client.get("/webhooks").data.decode()
    resp = client.post(f"/webhooks/{webhook_id}/delete", headers=HX)
    assert "No endpoints yet" in resp.data.decode()
