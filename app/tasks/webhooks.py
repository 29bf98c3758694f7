"""RQ jobs of the outbox consumers: fan events out, try one webhook delivery, mail notifications.

Ids in, database out, safe to run twice: events and tries are claimed with conditional UPDATEs, and the
sweeper (a thread in every worker) re-finds whatever a lost job or a Redis blip left behind, because the
database, not the queue, says what is due.
"""
from __future__ import annotations

import logging

from flask import current_app

from app.extensions import db
from app.models.base import parse_uuid
from app.models.notifications import Notification
from app.services import mail, notifications, outbox, webhooks
from app import queues

log = logging.getLogger("kiln.webhooks")


def _fresh_connections() -> None:
    # RQ forks a work horse per job: connections inherited from the parent must not be shared with it.
    db.engine.dispose(close=False)


def dispatch_outbox() -> int:
    """Fan out every unpublished event; enqueue the deliveries and e-mails it made. Returns events handled."""
    _fresh_connections()
    handled = 0
    for event_id in outbox.pending_event_ids():
        try:
            event = outbox.claim_event(event_id)
            if event is None:
                db.session.rollback()
                continue
            deliveries, made = outbox.fan_out(event)
            delivery_ids = [d.id for d in deliveries]
            mail_ids = [n.id for n in made if n.email_wanted]
            db.session.commit()
        except Exception:  # noqa: BLE001 - one bad event must not hold up the rest; the claim rolls back
            db.session.rollback()
            log.exception("could not dispatch outbox event %s", event_id)
            continue
        handled += 1
        for delivery_id in delivery_ids:
            queues.enqueue_delivery(delivery_id)
        queues.enqueue_emails(mail_ids)
    return handled


def run_delivery(delivery_id: str) -> str:
    """One try of a due delivery: claim, send outside any transaction, record. 'skipped' when not due/taken."""
    _fresh_connections()
    delivery = webhooks.claim_attempt(parse_uuid(delivery_id))
    if delivery is None:
        db.session.rollback()
        return "skipped"
    db.session.commit()
    endpoint = delivery.endpoint
    if delivery.automatic and not endpoint.active:
        webhooks.abandon(delivery, f"endpoint disabled: {endpoint.disabled_reason or 'switched off'}")
        db.session.commit()
        return "failed"
    headers, body = webhooks.signed_request(delivery, endpoint.secret)
    url = endpoint.url
    allow_private = bool(current_app.config["KILN_WEBHOOK_ALLOW_PRIVATE"])
    timeout = float(current_app.config["KILN_WEBHOOK_TIMEOUT"])
    db.session.commit()  # no transaction stays open across the network call
    outcome = webhooks.send(url, headers, body, allow_private=allow_private, timeout=timeout)
    delivery = db.session.get(type(delivery), delivery.id)
    webhooks.record_attempt(delivery, outcome)
    made = [row for row in db.session.new if isinstance(row, Notification)]  # an auto-disable tells the admins
    db.session.flush()
    mail_ids = [n.id for n in made if n.email_wanted]
    db.session.commit()
    queues.enqueue_emails(mail_ids)
    return delivery.status


def send_notification_emails(notification_ids: list[str]) -> int:
    _fresh_connections()
    sent = 0
    for raw in notification_ids:
        row = notifications.claim_email(parse_uuid(raw))
        if row is None:
            db.session.rollback()
            continue
        message = notifications.email_message(row, current_app.config["KILN_BASE_URL"])
        db.session.commit()
        if message is not None:
            mail.send_mail(current_app.config, *message)
            sent += 1
    return sent


def sweep() -> None:
    """What the queue may have lost: unpublished events, due retries, tries a dead worker held."""
    if outbox.pending_event_ids(limit=1):
        queues.enqueue_dispatch()
    due = webhooks.due_delivery_ids()
    db.session.commit()
    for delivery_id in due:
        queues.enqueue_delivery(delivery_id)


def sweeper_loop(app, stop) -> None:
    """Worker thread: sweep every KILN_WEBHOOK_SWEEP_INTERVAL seconds until `stop` is set."""
    with app.app_context():
        interval = float(current_app.config["KILN_WEBHOOK_SWEEP_INTERVAL"])
        while not stop.wait(interval):
            try:
                sweep()
            except Exception:  # noqa: BLE001 - a database or Redis blip must not end the thread
                db.session.rollback()
                log.exception("webhook sweeper")
            finally:
                db.session.remove()
