"""Notifications: in-app messages for one person, and which of them they also want by e-mail."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import IdMixin, UTCDateTime, utcnow

# kind -> (label on the preferences form, e-mail on by default). Invitations also notify in the app, but
# are not listed: the invitation itself is already an e-mail.
NOTIFICATION_KINDS: dict[str, tuple[str, bool]] = {
    "build.completed": ("A build of mine succeeded", False),
    "build.failed": ("A build of mine failed", True),
    "build.cancelled": ("A build of mine was cancelled", False),
    "test.completed": ("Tests of a build of mine finished", False),
    "webhook.disabled": ("A webhook endpoint was disabled (admins)", True),
    "billing.quota": ("My organization neared (80%) or reached a plan limit (admins)", False),
    "billing.payment": ("A Stripe payment failed or a plan change left my organization over its limits (admins)",
                        True),
}


class Notification(IdMixin, db.Model):
    __tablename__ = "notifications"
    __kind__ = "Notification"
    # One notification per person and outbox event, however often the event is dispatched.
    __table_args__ = (UniqueConstraint("user_id", "event_id", name="uq_notifications_user_event"),)

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True,
                                               nullable=False)
    org_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("organizations.id", ondelete="CASCADE"),
                                                     index=True)
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("outbox_events.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    body: Mapped[str] = mapped_column(Text, default="", nullable=False)
    link: Mapped[str | None] = mapped_column(String(512))
    entity_type: Mapped[str | None] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    email_wanted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True, nullable=False)


class NotificationPreference(IdMixin, db.Model):
    """A person's choice for one kind; a kind without a row uses NOTIFICATION_KINDS' default."""

    __tablename__ = "notification_preferences"
    __table_args__ = (UniqueConstraint("user_id", "kind", name="uq_notification_preferences_user_kind"),)

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True,
                                               nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    email: Mapped[bool] = mapped_column(Boolean, nullable=False)
