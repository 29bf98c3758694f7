"""Webhooks: endpoints of an organization, deliveries planned from the outbox, signed HTTP tries, retries.

A delivery is one message (an outbox event, or a ping) to one endpoint; it is planned once per
(event, endpoint) and tried until it succeeds or runs out of tries. Each try is an attempt row with what
was sent and what came back. The network part (`send`) runs outside any transaction; `claim_attempt`
before it and `record_attempt` after it are short writes, so a job that runs twice sends once.

Where a URL may point is checked when it is saved and again, on the resolved addresses, right before
every try: a name that resolves to a private address today may not have yesterday. The connection then
goes to the address that was checked (no second lookup to rebind), redirects are never followed, and
every socket operation has a short timeout.
"""
from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import random
import secrets
import socket
import ssl
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook

from app import __version__
from app.extensions import db
from app.models import Build, Conversation, Membership, OutboxEvent, TestRun
from app.models.base import isoformat, parse_uuid, utcnow
from app.models.webhooks import PING_EVENT, WEBHOOK_EVENTS, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.services import audit
from app.services.audit import Actor
from app.services.billing import quotas
from app.services.errors import Conflict, NotFound, ValidationFailed
from app import queues

# About eight tries over a day: the first at once, then 1 min, 3 min, 9 min, 27 min, 81 min, 4 h, 12 h
# (each ±20 % so endpoints that failed together do not retry together).
MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 60
BACKOFF_FACTOR = 3
JITTER = 0.2
RESPONSE_EXCERPT_BYTES = 2048
SENDING_STALE_AFTER = timedelta(minutes=5)  # a worker died between claiming and recording a try


# Endpoints ------------------------------------------------------------------------------------------

def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def check_url(url: str, *, allow_private: bool) -> str:
    """The URL if it may be saved: http(s), a host, and no literal address in a refused range."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("url: must be an http:// or https:// URL with a host", {"url": ["Must be http(s) with a host."]})
    if parts.username or parts.password:
        raise ValidationFailed("url: must not carry a user name or password", {"url": ["No credentials in the URL."]})
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValidationFailed("url: the port is not a number between 0 and 65535", {"url": ["Bad port."]}) from None
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None and not allow_private and refused_reason(literal):
        raise ValidationFailed(f"url: {parts.hostname} is a {refused_reason(literal)} address; webhooks go to public "
                               "addresses unless KILN_WEBHOOK_ALLOW_PRIVATE is on", {"url": ["Not a public address."]})
    return url


def _events(events) -> list[str]:
    items = list(dict.fromkeys(events or []))
    bad = [e for e in items if e not in WEBHOOK_EVENTS]
    if bad or not items:
        raise ValidationFailed(f"events: unknown event(s) {', '.join(bad) or '(none given)'}; "
                               f"choose from {', '.join(WEBHOOK_EVENTS)}",
                               {"events": [f"Must be one or more of: {', '.join(WEBHOOK_EVENTS)}."]})
    return items


def create_endpoint(actor: Actor, org, *, url: str, events: list[str], description: str = "") -> WebhookEndpoint:
    allow = bool(current_app.config["KILN_WEBHOOK_ALLOW_PRIVATE"])
    quotas.check_webhook_add(org)
    endpoint = WebhookEndpoint(org_id=org.id, url=check_url(url, allow_private=allow), events=_events(events),
                               description=description or "", secret=new_secret(), active=True,
                               created_by_id=actor.user_id)
    db.session.add(endpoint)
    db.session.flush()
    audit.record(actor, "webhook.created", "webhook", endpoint.id, org_id=org.id, url=endpoint.url, events=endpoint.events)
    return endpoint


def endpoints_of(org):
    return WebhookEndpoint.for_org(org.id).order_by(WebhookEndpoint.created_at.desc(), WebhookEndpoint.id)


def get_endpoint(org, endpoint_id) -> WebhookEndpoint:
    return WebhookEndpoint.get_for_org(org.id, endpoint_id)


def update_endpoint(actor: Actor, endpoint: WebhookEndpoint, changes: dict) -> WebhookEndpoint:
    """url, events, description, active. Switching an endpoint back on forgets its failure streak."""
    changed = []
    if "url" in changes:
        endpoint.url = check_url(changes["url"], allow_private=bool(current_app.config["KILN_WEBHOOK_ALLOW_PRIVATE"]))
        changed.append("url")
    if "events" in changes:
        endpoint.events = _events(changes["events"])
        changed.append("events")
    if "description" in changes:
        endpoint.description = changes["description"] or ""
        changed.append("description")
    if "active" in changes and bool(changes["active"]) != endpoint.active:
        endpoint.active = bool(changes["active"])
        if endpoint.active:
            endpoint.disabled_at = endpoint.disabled_reason = endpoint.failing_since = None
            endpoint.consecutive_failures = 0
        else:
            endpoint.disabled_at, endpoint.disabled_reason = utcnow(), "Switched off by a person"
        changed.append("active")
    audit.record(actor, "webhook.updated", "webhook", endpoint.id, org_id=endpoint.org_id, changed=changed)
    return endpoint


def delete_endpoint(actor: Actor, endpoint: WebhookEndpoint) -> None:
    audit.record(actor, "webhook.deleted", "webhook", endpoint.id, org_id=endpoint.org_id, url=endpoint.url)
    db.session.delete(endpoint)
    db.session.flush()


# Deliveries -----------------------------------------------------------------------------------------

def deliveries_of(endpoint: WebhookEndpoint, status: str | None = None):
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    return query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)


def get_delivery(endpoint: WebhookEndpoint, delivery_id) -> WebhookDelivery:
    key = parse_uuid(delivery_id)
    row = db.session.get(WebhookDelivery, key) if key else None
    if row is None or row.endpoint_id != endpoint.id:
        raise NotFound.of("Delivery", delivery_id)
    return row


def _new_delivery(endpoint: WebhookEndpoint, event_type: str, payload: dict, *, event_id=None,
                  automatic: bool = True) -> WebhookDelivery:
    row = WebhookDelivery(endpoint_id=endpoint.id, event_id=event_id, event_type=event_type,
                          message_id=f"msg_{uuid.uuid4().hex}", payload=payload, status="pending",
                          automatic=automatic, attempt_count=0, next_attempt_at=utcnow())
    db.session.add(row)
    return row


def plan_deliveries(event: OutboxEvent) -> list[WebhookDelivery]:
    """One delivery per active endpoint of the event's org that subscribed to its type (the outbox fan-out)."""
    if event.type not in WEBHOOK_EVENTS or event.org_id is None:
        return []
    endpoints = db.session.scalars(WebhookEndpoint.for_org(event.org_id).where(WebhookEndpoint.active.is_(True))).all()
    wanted = [e for e in endpoints if event.type in (e.events or [])]
    if not wanted:
        return []
    payload = event_payload(event)
    return [_new_delivery(endpoint, event.type, payload, event_id=event.id) for endpoint in wanted]


def ping(actor: Actor, endpoint: WebhookEndpoint) -> WebhookDelivery:
    payload = {"type": PING_EVENT, "timestamp": isoformat(utcnow()),
               "data": {"webhookId": str(endpoint.id), "url": endpoint.url, "events": list(endpoint.events)}}
    row = _new_delivery(endpoint, PING_EVENT, payload, automatic=False)
    db.session.flush()
    row_id = row.id
    queues.after_commit(lambda: queues.enqueue_delivery(row_id))
    audit.record(actor, "webhook.pinged", "webhook", endpoint.id, org_id=endpoint.org_id, delivery_id=row.id)
    return row


def redeliver(actor: Actor, delivery: WebhookDelivery) -> WebhookDelivery:
    """The same message (same webhook-id and payload) once more, as one manual try."""
    if delivery.status not in ("succeeded", "failed"):
        raise Conflict(f"Delivery '{delivery.id}' is {delivery.status}; redeliver it once it has finished",
                       {"status": [delivery.status]})
    delivery.status, delivery.automatic, delivery.next_attempt_at = "pending", False, utcnow()
    delivery_id = delivery.id
    queues.after_commit(lambda: queues.enqueue_delivery(delivery_id))
    audit.record(actor, "webhook.redelivered", "webhook", delivery.endpoint_id, org_id=delivery.endpoint.org_id,
                 delivery_id=delivery.id, attempt=delivery.attempt_count + 1)
    return delivery


# Payloads -------------------------------------------------------------------------------------------

def _artifact(build: Build, artifact, base_url: str) -> dict:
    return {"id": str(artifact.id), "kind": artifact.kind, "filename": artifact.filename, "size": artifact.size,
            "sha256": artifact.sha256,
            "downloadUrl": f"{base_url}/api/builds/{build.id}/artifacts/{artifact.id}/download"}


def build_data(build: Build, status: str | None = None) -> dict:
    base_url = current_app.config["KILN_BASE_URL"].rstrip("/")
    conversation = db.session.get(Conversation, build.conversation_id) if build.conversation_id else None
    return {"id": str(build.id), "number": build.number, "name": build.name, "status": status or build.status,
            "attempt": build.attempt, "formats": list(build.formats or []),
            "conversation": ({"id": str(conversation.id), "name": conversation.name} if conversation else None),
            "artifacts": [_artifact(build, a, base_url) for a in build.artifacts],
            "failureReason": build.failure_reason, "failureClass": build.failure_class,
            "failureCode": build.failure_code, "url": f"{base_url}/builds/{build.id}",
            "createdAt": isoformat(build.created_at), "startedAt": isoformat(build.started_at),
            "finishedAt": isoformat(build.finished_at)}


def event_payload(event: OutboxEvent) -> dict:
    """The Standard Webhooks envelope {type, timestamp, data}; frozen on the delivery so every try sends the same."""
    data: dict = {}
    build = None
    if event.entity_type == "build":
        key = parse_uuid(event.entity_id)
        build = db.session.get(Build, key) if key is not None else None
    if event.type.startswith("build.") and build is not None:
        data["build"] = build_data(build, status=event.payload.get("status"))
    elif event.type == "test.completed":
        if build is not None:
            data["build"] = build_data(build)
        run_key = parse_uuid(event.payload.get("testRunId"))
        run = db.session.get(TestRun, run_key) if run_key is not None else None
        data["testRun"] = {"id": event.payload.get("testRunId"), "kind": event.payload.get("kind"),
                           "status": event.payload.get("status"), "failed": list(event.payload.get("failed") or []),
                           "finishedAt": isoformat(run.finished_at) if run is not None else None}
    else:
        data = dict(event.payload)
    return {"type": event.type, "timestamp": isoformat(event.created_at), "data": data}


# Tries ----------------------------------------------------------------------------------------------

def retry_delay(failed_tries: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after the `failed_tries`-th failed try (1-based), with ±20 % jitter."""
    base = BACKOFF_BASE_SECONDS * BACKOFF_FACTOR ** (failed_tries - 1)
    return base * (1 + (rng or random).uniform(-JITTER, JITTER))


def claim_attempt(delivery_id) -> WebhookDelivery | None:
    """Take the next try of a due delivery for this worker, or None (someone else has it, or nothing is due)."""
    key = parse_uuid(delivery_id)
    row = db.session.get(WebhookDelivery, key) if key else None
    if row is None or row.status not in ("pending", "retrying"):
        return None
    now = utcnow()
    if row.next_attempt_at is not None and row.next_attempt_at > now:
        return None
    result = db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == row.id, WebhookDelivery.status == row.status,
               WebhookDelivery.attempt_count == row.attempt_count)
        .values(status="sending", attempt_count=row.attempt_count + 1, last_attempt_at=now, next_attempt_at=None)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return None
    db.session.refresh(row)
    return row


@dataclass
class Outcome:
    """What one HTTP try did; built without touching the database."""

    url: str
    request_headers: dict
    request_body: str
    status: int | None = None
    response_headers: dict = field(default_factory=dict)
    excerpt: str | None = None
    error: str | None = None
    duration_ms: int = 0

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def signed_request(delivery: WebhookDelivery, secret: str, now: datetime | None = None) -> tuple[dict, str]:
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)
    now = now or utcnow()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"Kiln-Webhooks/{__version__}",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(delivery.message_id, now, body),
    }
    return headers, body


def refused_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is no place for a webhook (loopback, private, link-local/metadata, ...), or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for attr, reason in (("is_loopback", "loopback"), ("is_link_local", "link-local (cloud metadata)"),
                         ("is_private", "private"), ("is_multicast", "multicast"), ("is_unspecified", "unspecified"),
                         ("is_reserved", "reserved")):
        if getattr(address, attr):
            return reason
    if not address.is_global:
        return "non-public"
    return None


def resolve(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to; raises PermissionError naming the refused address."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        for text in addresses:
            reason = refused_reason(ipaddress.ip_address(text.split("%")[0]))
            if reason:
                raise PermissionError(f"refused: {host} resolves to {text}, a {reason} address "
                                      "(set KILN_WEBHOOK_ALLOW_PRIVATE to deliver inside your own network)")
    if not addresses:
        raise OSError(f"{host} has no address")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def send(url: str, headers: dict, body: str, *, allow_private: bool, timeout: float) -> Outcome:
    """POST once: guard the resolved address, connect to exactly it, never follow a redirect."""
    outcome = Outcome(url=url, request_headers=dict(headers), request_body=body)
    parts = urlsplit(url)
    started = time.monotonic()
    try:
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PermissionError("refused: not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = resolve(parts.hostname, port, allow_private=allow_private)
        cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        conn = cls(parts.hostname, port, address, timeout)
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request("POST", path, body=body.encode(), headers=headers)
            response = conn.getresponse()
            outcome.status = response.status
            outcome.response_headers = {k: v for k, v in response.getheaders()}
            outcome.excerpt = response.read(RESPONSE_EXCERPT_BYTES).decode("utf-8", "replace")
            if 300 <= response.status < 400:
                outcome.error = f"redirect to {response.getheader('Location') or '?'} not followed"
        finally:
            conn.close()
    except PermissionError as exc:
        outcome.error = str(exc)
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"[:500]
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    return outcome


def record_attempt(delivery: WebhookDelivery, outcome: Outcome) -> WebhookAttempt:
    """Log the try; settle the delivery (done, retry later, or out of tries) and the endpoint's failure streak."""
    now = utcnow()
    attempt = WebhookAttempt(delivery_id=delivery.id, number=delivery.attempt_count, url=outcome.url,
                             request_headers=outcome.request_headers, request_body=outcome.request_body,
                             response_status=outcome.status, response_headers=outcome.response_headers,
                             response_excerpt=outcome.excerpt, error=(outcome.error or None),
                             succeeded=outcome.succeeded, duration_ms=outcome.duration_ms, created_at=now)
    db.session.add(attempt)
    endpoint = delivery.endpoint
    if outcome.succeeded:
        delivery.status, delivery.next_attempt_at = "succeeded", None
        if delivery.automatic:
            endpoint.failing_since, endpoint.consecutive_failures = None, 0
        return attempt
    if not delivery.automatic:
        delivery.status, delivery.next_attempt_at = "failed", None
        return attempt
    endpoint.consecutive_failures += 1
    if endpoint.failing_since is None:
        endpoint.failing_since = now
    if delivery.attempt_count < MAX_ATTEMPTS and endpoint.active:
        delivery.status = "retrying"
        delivery.next_attempt_at = now + timedelta(seconds=retry_delay(delivery.attempt_count))
        return attempt
    delivery.status, delivery.next_attempt_at = "failed", None
    # Sustained failure: this message used up all its tries and the endpoint has not answered any try
    # with a 2xx since before its first one (about a day of nothing but failures).
    if endpoint.active and endpoint.failing_since <= delivery.created_at:
        disable_endpoint(endpoint, f"Disabled after {MAX_ATTEMPTS} failed tries of delivery {delivery.id} "
                                   f"({outcome.error or f'HTTP {outcome.status}'})")
    return attempt


def abandon(delivery: WebhookDelivery, reason: str) -> None:
    """An automatic delivery whose endpoint was switched off meanwhile: failed, with the reason as its log."""
    db.session.add(WebhookAttempt(delivery_id=delivery.id, number=delivery.attempt_count, url=delivery.endpoint.url,
                                  request_headers={}, request_body="", error=reason, succeeded=False))
    delivery.status, delivery.next_attempt_at = "failed", None


def disable_endpoint(endpoint: WebhookEndpoint, reason: str) -> None:
    from app.services import notifications

    endpoint.active, endpoint.disabled_at, endpoint.disabled_reason = False, utcnow(), reason[:255]
    audit.record(None, "webhook.disabled", "webhook", endpoint.id, org_id=endpoint.org_id, reason=reason)
    admins = db.session.scalars(select(Membership).where(Membership.org_id == endpoint.org_id,
                                                         Membership.role.in_(("admin", "owner")))).all()
    for membership in admins:
        notifications.notify(membership.user_id, "webhook.disabled", org_id=endpoint.org_id,
                             title=f"Webhook to {endpoint.url} was disabled",
                             body=f"{reason}. Fix the receiver, then switch the endpoint back on.",
                             link="/webhooks", entity_type="webhook", entity_id=endpoint.id)


def due_delivery_ids(now: datetime | None = None, limit: int = 200) -> list:
    """Deliveries whose next try is due, and tries a dead worker claimed but never recorded."""
    now = now or utcnow()
    stale = now - SENDING_STALE_AFTER
    db.session.execute(update(WebhookDelivery)
                       .where(WebhookDelivery.status == "sending", WebhookDelivery.last_attempt_at < stale)
                       .values(status="retrying", next_attempt_at=now).execution_options(synchronize_session=False))
    return list(db.session.scalars(select(WebhookDelivery.id)
                                   .where(WebhookDelivery.status.in_(("pending", "retrying")),
                                          WebhookDelivery.next_attempt_at <= now)
                                   .order_by(WebhookDelivery.next_attempt_at).limit(limit)))
