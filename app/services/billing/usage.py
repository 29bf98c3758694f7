"""What an organization used, read from the rows themselves: builds (starts, concurrency, minutes), their
artifacts (storage), memberships, API keys, webhooks and the token ledger. Periods are calendar months in UTC:
they roll over by the clock, so no job has to close one."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, or_, select

from app.extensions import db
from app.models import ApiKey, Build, BuildArtifact, Membership, Organization, WebhookEndpoint
from app.models.base import utcnow
from app.models.billing import DeletedBuildUsage, TokenTransaction

RUNNING_STATUSES = ("queued", "building", "testing")
MB = 1024 * 1024


def period_start(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_period_start(now: datetime) -> datetime:
    start = period_start(now)
    return (start + timedelta(days=32)).replace(day=1)


def period_key(when: datetime) -> str:
    return period_start(when).strftime("%Y-%m")


def starts_since(org_id, since: datetime) -> int:
    """Builds started since `since`, deleted ones included (deleting a build does not give its start back)."""
    kept = db.session.scalar(select(func.count(Build.id)).where(Build.org_id == org_id, Build.queued_at >= since))
    deleted = db.session.scalar(select(func.count(DeletedBuildUsage.id)).where(
        DeletedBuildUsage.org_id == org_id, DeletedBuildUsage.queued_at >= since))
    return (kept or 0) + (deleted or 0)


def record_deleted(build) -> None:
    """Keep a build's start and run time for the meters before its row goes (lifecycle.delete_build)."""
    db.session.add(DeletedBuildUsage(org_id=build.org_id, build_id=build.id, queued_at=build.queued_at,
                                     started_at=build.started_at, finished_at=build.finished_at))


def running_builds(org_id) -> int:
    return db.session.scalar(select(func.count(Build.id)).where(Build.org_id == org_id,
                                                                 Build.status.in_(RUNNING_STATUSES))) or 0


def build_minutes(org_id, since: datetime, now: datetime) -> float:
    """Minutes of building since `since`: each build's run time inside the period (a running one counts
    up to now)."""
    rows = db.session.execute(select(Build.started_at, Build.finished_at).where(
        Build.org_id == org_id, Build.started_at.is_not(None),
        or_(Build.finished_at.is_(None), Build.finished_at >= since))).all()
    rows += db.session.execute(select(DeletedBuildUsage.started_at, DeletedBuildUsage.finished_at).where(
        DeletedBuildUsage.org_id == org_id, DeletedBuildUsage.started_at.is_not(None),
        DeletedBuildUsage.finished_at >= since)).all()
    seconds = 0.0
    for started, finished in rows:
        begin, end = max(started, since), min(finished or now, now)
        if end > begin:
            seconds += (end - begin).total_seconds()
    return round(seconds / 60, 1)


def storage_bytes(org_id) -> int:
    # int(): PostgreSQL sums a bigint column as numeric (a Decimal).
    return int(db.session.scalar(select(func.coalesce(func.sum(BuildArtifact.size), 0)).join(Build).where(
        Build.org_id == org_id)) or 0)


def member_count(org_id) -> int:
    return db.session.scalar(select(func.count(Membership.id)).where(Membership.org_id == org_id)) or 0


def api_key_count(org_id, now: datetime) -> int:
    """Live keys: not revoked, not expired, not a rotated key waiting out its grace period."""
    return db.session.scalar(select(func.count(ApiKey.id)).where(
        ApiKey.org_id == org_id, ApiKey.active.is_(True), ApiKey.revoked_at.is_(None), ApiKey.grace_until.is_(None),
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))) or 0


def webhook_count(org_id) -> int:
    return db.session.scalar(select(func.count(WebhookEndpoint.id)).where(WebhookEndpoint.org_id == org_id)) or 0


def tokens_used(org_id, since: datetime) -> int:
    """Tokens consumed this period, less what was refunded."""
    total = db.session.scalar(select(func.coalesce(func.sum(TokenTransaction.amount), 0)).where(
        TokenTransaction.org_id == org_id, TokenTransaction.kind.in_(("consume", "refund")),
        TokenTransaction.created_at >= since)) or 0
    return max(0, -int(total))


def owned_orgs(user_id, plan: str | None = None) -> int:
    """Live organizations `user_id` owns (on `plan`, when given), personal ones included."""
    query = select(func.count(Organization.id)).join(Membership).where(
        Membership.user_id == user_id, Membership.role == "owner", Organization.deleted_at.is_(None))
    if plan is not None:
        query = query.where(Organization.plan == plan)
    return db.session.scalar(query) or 0


def usage_of(org, now: datetime | None = None) -> dict:
    """Current use per metered limit (the keys of tiers.LIMITS that have a use)."""
    now = now or utcnow()
    since = period_start(now)
    return {
        "builds_per_hour": starts_since(org.id, now - timedelta(hours=1)),
        "builds_per_month": starts_since(org.id, since),
        "concurrent_builds": running_builds(org.id),
        "build_minutes_per_month": build_minutes(org.id, since, now),
        "storage_mb": round(storage_bytes(org.id) / MB, 1),
        "members": member_count(org.id),
        "api_keys": api_key_count(org.id, now),
        "webhooks": webhook_count(org.id),
        "llm_tokens_per_month": tokens_used(org.id, since),
    }
