"""Webhooks: an organization's endpoints, one delivery per (outbox event, endpoint), and every attempt's log."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import IdMixin, OrgOwnedMixin, TimestampMixin, UTCDateTime, utcnow

WEBHOOK_EVENTS = ("build.started", "build.completed", "build.failed", "build.cancelled", "test.completed")
PING_EVENT = "webhook.ping"
# pending: waiting for its first try · sending: a worker holds it · retrying: next_attempt_at is set
# succeeded / failed: final (failed = out of tries, or a single manual try that failed)
DELIVERY_STATUSES = ("pending", "sending", "retrying", "succeeded", "failed")


class WebhookEndpoint(IdMixin, TimestampMixin, OrgOwnedMixin, db.Model):
    __tablename__ = "webhook_endpoints"
    __kind__ = "Webhook"

    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    description: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    events: Mapped[list] = mapped_column(JSON, nullable=False)
    # Standard Webhooks secret ("whsec_" + base64); needed in clear to sign, shown to people only once.
    secret: Mapped[str] = mapped_column(String(128), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Since when every automatic try has failed (None after a success); the auto-disable rule reads it.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))


class WebhookDelivery(IdMixin, db.Model):
    """One message to one endpoint. Unique per (endpoint, event): the outbox is delivered once per endpoint."""

    __tablename__ = "webhook_deliveries"
    __kind__ = "Delivery"
    __table_args__ = (UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),)

    endpoint_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
                                                   index=True, nullable=False)
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("outbox_events.id", ondelete="SET NULL"))
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    # The Standard Webhooks `webhook-id`: the same on every try and redelivery, so receivers can deduplicate.
    message_id: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True, nullable=False)
    automatic: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)  # False: ping / redeliver, one try
    attempt_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True, nullable=False)

    endpoint: Mapped[WebhookEndpoint] = relationship()
    attempts: Mapped[list["WebhookAttempt"]] = relationship(back_populates="delivery", cascade="all, delete-orphan",
                                                            order_by="WebhookAttempt.number")


class WebhookAttempt(IdMixin, db.Model):
    """What was sent and what came back, for the delivery log."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number", name="uq_webhook_attempts_delivery_number"),)

    delivery_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
                                                   index=True, nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    request_headers: Mapped[dict] = mapped_column(JSON, nullable=False)
    request_body: Mapped[str] = mapped_column(Text, nullable=False)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(512))
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    delivery: Mapped[WebhookDelivery] = relationship(back_populates="attempts")
