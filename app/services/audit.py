"""Audit records and outbox events. Services call these inside their own transaction."""
from __future__ import annotations

from dataclasses import dataclass, field

from app.extensions import db
from app.models.audit import AuditRecord, OutboxEvent
from app.models.base import isoformat
from app import queues


@dataclass
class Actor:
    """Who is acting: a user, an API key (with the user who made it), or the system. Passed explicitly."""

    user: object | None = None
    api_key: object | None = None
    ip: str | None = None
    user_agent: str | None = None
    scopes: list[str] | None = field(default=None)

    @property
    def user_id(self):
        return getattr(self.user, "id", None)

    @classmethod
    def system(cls) -> "Actor":
        return cls()


def record(actor: Actor | None, action: str, entity_type: str, entity_id=None, *, org_id=None, **details) -> AuditRecord:
    actor = actor or Actor.system()
    row = AuditRecord(
        org_id=org_id,
        actor_user_id=actor.user_id,
        actor_api_key_id=getattr(actor.api_key, "id", None),
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id) if entity_id is not None else None,
        details=_jsonable(details),
        ip_address=actor.ip,
        user_agent=(actor.user_agent or "")[:255] or None,
    )
    db.session.add(row)
    return row


def emit(event_type: str, *, org_id, entity_type: str | None = None, entity_id=None, payload: dict | None = None) -> OutboxEvent:
    row = OutboxEvent(
        org_id=org_id,
        type=event_type,
        entity_type=entity_type,
        entity_id=str(entity_id) if entity_id is not None else None,
        payload=_jsonable(payload or {}),
    )
    db.session.add(row)
    # Webhooks and notifications consume the outbox; the sweeper catches a dispatch lost with Redis.
    queues.after_commit(queues.enqueue_dispatch)
    return row


def _jsonable(value):
    import uuid
    from datetime import datetime

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return isoformat(value)
    return value
