"""Webhooks: signed deliveries of real build events to a real receiver, retries, auto-disable, SSRF guard."""
from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from app.services.webhooks import BACKOFF_BASE_SECONDS, BACKOFF_FACTOR, JITTER, MAX_ATTEMPTS


def _create(client, headers, url, events=("build.started", "build.completed"), expect=201):
    resp = client.post("/api/webhooks", json={"url": url, "events": list(events), "description": "CI"},
                       headers=headers)
    assert resp.status_code == expect, resp.get_json()
    return resp.get_json()


def _run_build(app, builds, org_id, user_id, *, finish="succeeded"):
    """A build moved through the builds service as a worker moves it (no image is built)."""
    from app.extensions import db
    from app.models import Build
    from app.services.builds import run as buildrun

    conversation_id = builds.conversation(org_id, user_id)
    build_id = builds.create(org_id, status="queued", conversation_id=conversation_id, created_by=user_id,
                             image=b"an image")
    with app.app_context():
        build = db.session.get(Build, build_id)
        assert buildrun.begin_attempt(build, build.attempt, "test-worker")
        if finish == "succeeded":
            assert buildrun.succeed(build, build.attempt) == "succeeded"
        else:
            buildrun.fail_attempt(build, build.attempt, "apt could not find package nosuch", failure_class="user_error",
                                  code="user_error", stage="packages")
            db.session.commit()
    return build_id, conversation_id


def _deliveries(client, headers, webhook_id, **query):
    resp = client.get(f"/api/webhooks/{webhook_id}/deliveries", query_string=query, headers=headers)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["deliveries"]


def test_endpoint_crud_shows_the_secret_once_and_refuses_bad_input(client, auth_headers, app):
    created = _create(client, auth_headers, "https://ci.example.com/kiln")
    assert created["secret"].startswith("whsec_") and created["active"] is True
    assert created["events"] == ["build.started", "build.completed"]
    shown = client.get(f"/api/webhooks/{created['id']}", headers=auth_headers).get_json()
    assert "secret" not in shown and shown["url"] == "https://ci.example.com/kiln"
    listed = client.get("/api/webhooks", headers=auth_headers).get_json()
    assert listed["totalCount"] == 1 and "secret" not in listed["webhooks"][0]

    bad = client.post("/api/webhooks", json={"url": "ftp://x.example.com/", "events": ["build.failed"]},
                      headers=auth_headers)
    assert bad.status_code == 400 and "url" in bad.get_json()["error"]["message"]
    bad = client.post("/api/webhooks", json={"url": "https://x.example.com/", "events": ["build.exploded"]},
                      headers=auth_headers)
    assert bad.status_code == 400 and "events[0]" in bad.get_json()["error"]["details"]
    bad = client.post("/api/webhooks", json={"url": "http://169.254.169.254/latest/meta-data", "events": ["build.failed"]},
                      headers=auth_headers)
    assert bad.status_code == 400 and "169.254.169.254" in bad.get_json()["error"]["message"]

    patched = client.patch(f"/api/webhooks/{created['id']}", json={"events": ["build.failed"], "active": False},
                           headers=auth_headers).get_json()
    assert patched["events"] == ["build.failed"] and patched["active"] is False and patched["disabledAt"]
    assert client.delete(f"/api/webhooks/{created['id']}", headers=auth_headers).status_code == 204
    assert client.get(f"/api/webhooks/{created['id']}", headers=auth_headers).status_code == 404


def test_another_orgs_webhook_is_not_found(client, auth_headers, factory):
    created = _create(client, auth_headers, "https://ci.example.com/kiln")
    mallory = factory.user(email="mallory@example.com")
    headers = factory.headers(mallory)
    assert client.get(f"/api/webhooks/{created['id']}", headers=headers).status_code == 404
    assert client.post(f"/api/webhooks/{created['id']}/ping", headers=headers).status_code == 404


def test_real_build_is_delivered_signed_once_per_event(client, auth_headers, app, user, builds, org_id, receiver,
                                                        allow_private, run_webhook_jobs):
    hook = _create(client, auth_headers, receiver.url())
    build_id, conversation_id = _run_build(app, builds, org_id, user.id)
    run_webhook_jobs()

    assert [p["type"] for p in receiver.payloads()] == ["build.started", "build.completed"]
    for request in receiver.requests:
        assert Webhook(hook["secret"]).verify(request["body"], request["headers"])  # raises when it does not verify
        assert request["headers"]["webhook-signature"].startswith("v1,")
    completed = receiver.payloads()[1]["data"]["build"]
    assert completed["id"] == str(build_id) and completed["status"] == "succeeded" and completed["number"] == 1
    assert completed["conversation"] == {"id": str(conversation_id), "name": "Web server"}
    image = next(a for a in completed["artifacts"] if a["kind"] == "iso")
    assert image["sha256"] == hashlib.sha256(b"an image").hexdigest()
    assert image["downloadUrl"].endswith(f"/api/builds/{build_id}/artifacts/{image['id']}/download")
    assert receiver.payloads()[0]["data"]["build"]["status"] == "building"

    # The sweeper (or a job run twice) finds nothing more to do: one delivery per event and endpoint.
    from app.tasks.webhooks import dispatch_outbox, sweep

    with app.app_context():
        assert dispatch_outbox() == 0
        sweep()
    run_webhook_jobs()
    assert len(receiver.requests) == 2
    log = _deliveries(client, auth_headers, hook["id"])
    assert sorted(d["eventType"] for d in log) == ["build.completed", "build.started"]
    for delivery in log:
        assert delivery["status"] == "succeeded" and delivery["attemptCount"] == 1
        attempt = delivery["attempts"][0]
        assert attempt["responseStatus"] == 200 and attempt["responseExcerpt"] == "ok" and attempt["succeeded"]
        assert attempt["requestHeaders"]["webhook-id"] == delivery["messageId"]
        assert attempt["durationMs"] >= 0 and attempt["requestBody"]


def test_redeliver_sends_the_same_message_as_a_new_attempt(client, auth_headers, app, user, builds, org_id,
                                                           receiver, allow_private, run_webhook_jobs):
    hook = _create(client, auth_headers, receiver.url(), events=["build.completed"])
    _run_build(app, builds, org_id, user.id)
    run_webhook_jobs()
    (delivery,) = _deliveries(client, auth_headers, hook["id"])

    resp = client.post(f"/api/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver", headers=auth_headers)
    assert resp.status_code == 202 and resp.get_json()["status"] == "pending"
    again = client.post(f"/api/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver", headers=auth_headers)
    assert again.status_code == 409  # still queued: one redelivery at a time
    run_webhook_jobs()

    first, second = receiver.requests
    assert second["body"] == first["body"]
    assert second["headers"]["webhook-id"] == first["headers"]["webhook-id"]
    Webhook(hook["secret"]).verify(second["body"], second["headers"])
    (after,) = _deliveries(client, auth_headers, hook["id"])
    assert after["status"] == "succeeded" and [a["number"] for a in after["attempts"]] == [1, 2]


def test_failing_receiver_is_retried_on_the_backoff_schedule_then_disabled(client, auth_headers, app, user, builds,
                                                                          org_id, receiver, allow_private):
    from freezegun import freeze_time

    from app.extensions import db
    from app.models import AuditRecord, Notification, WebhookDelivery, WebhookEndpoint
    from app.models.base import utcnow
    from app.tasks.webhooks import dispatch_outbox, run_delivery

    receiver.status, receiver.body = 500, b"boom" * 1000
    hook = _create(client, auth_headers, receiver.url(), events=["build.failed"])
    with freeze_time(utcnow(), tick=False) as frozen:
        _run_build(app, builds, org_id, user.id, finish="failed")
        with app.app_context():
            assert dispatch_outbox() == 2  # build.started (no subscriber) and build.failed
            (delivery_id,) = db.session.scalars(db.select(WebhookDelivery.id)).all()
            start = utcnow()
            for tries in range(1, MAX_ATTEMPTS + 1):
                assert run_delivery(str(delivery_id)) in ("retrying", "failed")
                assert len(receiver.requests) == tries
                delivery = db.session.get(WebhookDelivery, delivery_id)
                if tries == MAX_ATTEMPTS:
                    break
                assert delivery.status == "retrying"
                wait = (delivery.next_attempt_at - utcnow()).total_seconds()
                base = BACKOFF_BASE_SECONDS * BACKOFF_FACTOR ** (tries - 1)
                assert base * (1 - JITTER) <= wait <= base * (1 + JITTER), (tries, wait)
                # Not due yet: a job that runs early does nothing.
                frozen.tick(timedelta(seconds=wait - 1))
                assert run_delivery(str(delivery_id)) == "skipped"
                assert len(receiver.requests) == tries
                frozen.tick(timedelta(seconds=1))
            spent = utcnow() - start
            assert timedelta(hours=12) < spent < timedelta(hours=26)
            db.session.expire_all()
            delivery = db.session.get(WebhookDelivery, delivery_id)
            assert delivery.status == "failed" and len(delivery.attempts) == MAX_ATTEMPTS
            assert delivery.attempts[-1].response_status == 500
            assert len(delivery.attempts[-1].response_excerpt) == 2048  # bounded
            endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
            assert endpoint.active is False and "8 failed tries" in endpoint.disabled_reason
            (note,) = db.session.scalars(db.select(Notification).where(Notification.kind == "webhook.disabled")).all()
            assert note.user_id == user.id and receiver.url() in note.title
            assert db.session.scalar(db.select(AuditRecord).where(AuditRecord.action == "webhook.disabled"))
    assert client.get(f"/api/webhooks/{hook['id']}", headers=auth_headers).get_json()["active"] is False


def test_loopback_is_refused_at_delivery_time_unless_allowed(client, auth_headers, app, receiver, run_webhook_jobs,
                                                             monkeypatch):
    # A host name passes the check when saved; where it resolves is only known when delivering.
    hook = _create(client, auth_headers, receiver.url(host="localhost"))
    resp = client.post(f"/api/webhooks/{hook['id']}/ping", headers=auth_headers)
    assert resp.status_code == 202
    run_webhook_jobs()
    assert receiver.requests == []
    (delivery,) = _deliveries(client, auth_headers, hook["id"])
    assert delivery["status"] == "failed"
    assert "refused" in delivery["attempts"][0]["error"] and "loopback" in delivery["attempts"][0]["error"]

    monkeypatch.setitem(app.config, "KILN_WEBHOOK_ALLOW_PRIVATE", True)
    client.post(f"/api/webhooks/{hook['id']}/ping", headers=auth_headers)
    run_webhook_jobs()
    (ping,) = receiver.payloads()
    assert ping["type"] == "webhook.ping" and ping["data"]["webhookId"] == hook["id"]
    Webhook(hook["secret"]).verify(receiver.requests[0]["body"], receiver.requests[0]["headers"])


def test_redirects_are_not_followed(client, auth_headers, receiver, allow_private, run_webhook_jobs):
    receiver.status, receiver.headers = 302, {"Location": receiver.url("/elsewhere")}
    hook = _create(client, auth_headers, receiver.url())
    client.post(f"/api/webhooks/{hook['id']}/ping", headers=auth_headers)
    run_webhook_jobs()
    assert [r["path"] for r in receiver.requests] == ["/hook"]
    (delivery,) = _deliveries(client, auth_headers, hook["id"])
    assert delivery["status"] == "failed" and "not followed" in delivery["attempts"][0]["error"]


@pytest.mark.parametrize("address,refused", [
    ("127.0.0.1", True), ("::1", True), ("10.1.2.3", True), ("192.168.0.10", True), ("172.16.5.5", True),
    ("169.254.169.254", True), ("fe80::1", True), ("::ffff:127.0.0.1", True), ("100.64.0.1", True),
    ("0.0.0.0", True), ("fd00::1", True), ("93.184.216.34", False), ("2606:4700::1111", False),
])
def test_address_ranges(address, refused):
    import ipaddress

    from app.services.webhooks import refused_reason

    assert bool(refused_reason(ipaddress.ip_address(address))) is refused


def test_a_due_retry_is_found_by_the_sweeper_and_delivered(client, auth_headers, app, user, builds, org_id,
                                                          receiver, allow_private, run_webhook_jobs):
    """Retries live in the database: the worker's sweeper enqueues what is due, even if no job is queued."""
    from app.extensions import db
    from app.models import WebhookDelivery
    from app.models.base import utcnow
    from app.tasks.webhooks import sweep

    receiver.status = 503
    hook = _create(client, auth_headers, receiver.url(), events=["build.completed"])
    _run_build(app, builds, org_id, user.id)
    run_webhook_jobs()
    (delivery,) = _deliveries(client, auth_headers, hook["id"])
    assert delivery["status"] == "retrying" and delivery["nextAttemptAt"]

    receiver.status = 204
    with app.app_context():
        sweep()  # not due yet: nothing is queued
    run_webhook_jobs()
    assert len(receiver.requests) == 1
    with app.app_context():
        row = db.session.get(WebhookDelivery, uuid.UUID(delivery["id"]))
        row.next_attempt_at = utcnow()  # as if the backoff had passed
        db.session.commit()
        sweep()
    run_webhook_jobs()
    assert len(receiver.requests) == 2
    (delivery,) = _deliveries(client, auth_headers, hook["id"])
    assert delivery["status"] == "succeeded" and [a["responseStatus"] for a in delivery["attempts"]] == [503, 204]
    assert client.get(f"/api/webhooks/{hook['id']}", headers=auth_headers).get_json()["consecutiveFailures"] == 0
