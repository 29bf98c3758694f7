"""The outbox's consumer: every event is handed to webhooks and notifications exactly once.

An event is claimed by setting `published_at` with a conditional UPDATE in the same transaction that
writes its deliveries and notifications, so two dispatchers (or a job that runs twice) never fan an event
out twice, and a failure rolls the claim back with everything else for the next pass.
"""
from __future__ import annotations

from sqlalchemy import select, update

from app.extensions import db
from app.models import OutboxEvent
from app.models.base import utcnow
from app.services import notifications, webhooks


def pending_event_ids(limit: int = 200) -> list:
    return list(db.session.scalars(select(OutboxEvent.id).where(OutboxEvent.published_at.is_(None))
                                   .order_by(OutboxEvent.created_at, OutboxEvent.id).limit(limit)))


def claim_event(event_id) -> OutboxEvent | None:
    result = db.session.execute(update(OutboxEvent)
                                .where(OutboxEvent.id == event_id, OutboxEvent.published_at.is_(None))
                                .values(published_at=utcnow(), attempts=OutboxEvent.attempts + 1)
                                .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return None
    event = db.session.get(OutboxEvent, event_id)
    db.session.refresh(event)
    return event


def fan_out(event: OutboxEvent) -> tuple[list, list]:
    """(deliveries, notifications) made for one claimed event; the caller commits."""
    deliveries = webhooks.plan_deliveries(event)
    made = notifications.notify_event(event)
    db.session.flush()
    return deliveries, made
