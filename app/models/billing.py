"""Billing: plan tiers (what an organization may use) and the append-only LLM token ledger."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import IdMixin, OrgOwnedMixin, TimestampMixin, UTCDateTime, utcnow

# Every limit a tier carries; None in a column means unlimited.
LIMIT_COLUMNS = ("builds_per_hour", "builds_per_month", "concurrent_builds", "build_minutes_per_month",
                 "storage_mb", "retention_days", "members", "api_keys", "webhooks", "llm_tokens_per_month",
                 "api_requests_per_minute", "owned_orgs")
TOKEN_KINDS = ("grant", "consume", "refund", "purchase", "expiry")


class Tier(TimestampMixin, db.Model):
    """A plan. Organizations name theirs in organizations.plan; site admins edit the limits."""

    __tablename__ = "billing_tiers"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(64), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # order from cheapest up
    price_cents_month: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    builds_per_hour: Mapped[int | None] = mapped_column(Integer)
    builds_per_month: Mapped[int | None] = mapped_column(Integer)
    concurrent_builds: Mapped[int | None] = mapped_column(Integer)
    build_minutes_per_month: Mapped[int | None] = mapped_column(Integer)
    storage_mb: Mapped[int | None] = mapped_column(Integer)
    retention_days: Mapped[int | None] = mapped_column(Integer)
    members: Mapped[int | None] = mapped_column(Integer)
    api_keys: Mapped[int | None] = mapped_column(Integer)
    webhooks: Mapped[int | None] = mapped_column(Integer)
    llm_tokens_per_month: Mapped[int | None] = mapped_column(BigInteger)
    api_requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    # Organizations a user may own while they are on this tier (creating more to dodge quotas is refused).
    owned_orgs: Mapped[int | None] = mapped_column(Integer)


class TokenTransaction(IdMixin, OrgOwnedMixin, db.Model):
    """One movement of an organization's LLM tokens. Rows are only ever added: the balance is their sum.
    Grants, refunds and purchases are positive, consumption and expiry negative."""

    __tablename__ = "token_transactions"
    __kind__ = "Token transaction"

    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    reference: Mapped[str | None] = mapped_column(String(128))
    # Grants and expiries of a period happen once, however many processes roll the period over.
    dedupe_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True, nullable=False)


class DeletedBuildUsage(IdMixin, OrgOwnedMixin, db.Model):
    """What a deleted build had used (its start and its run time), kept for the period's meters: deleting builds
    frees storage, not starts or build minutes already spent."""

    __tablename__ = "billing_deleted_builds"
    __kind__ = "Deleted build usage"

    build_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BillingAccount(TimestampMixin, db.Model):
    """An organization's account with the payment provider (Stripe): its customer, its subscription as Stripe
    last reported it, and the last invoice's outcome. No row: the org never went through checkout."""

    __tablename__ = "billing_accounts"

    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("organizations.id", ondelete="CASCADE"),
                                              primary_key=True)
    stripe_customer_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255))
    subscription_status: Mapped[str | None] = mapped_column(String(32))
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_invoice_id: Mapped[str | None] = mapped_column(String(255))
    last_invoice_status: Mapped[str | None] = mapped_column(String(32))


class StripeEvent(db.Model):
    """A webhook event already applied: its id is the key, so a replayed or concurrently redelivered event
    is recognised and changes nothing."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    org_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("organizations.id", ondelete="SET NULL"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
