"""The checks that refuse work beyond an organization's tier: 402 QUOTA_EXCEEDED, naming the limit, the
current use and the cheapest tier that would allow it. Services call them where the work starts."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from app.extensions import db
from app.models import Organization
from app.models.base import utcnow
from app.services.billing import usage
from app.services.billing.tiers import LIMITS, cheapest_allowing, find_tier, tier_of
from app.services.errors import QuotaExceeded


def refusal(tier, key: str, current, needed) -> QuotaExceeded:
    """The refusal for `key`: the limit, the use, and which tier would allow `needed`."""
    limit = LIMITS[key]
    allowed = getattr(tier, key)
    upgrade = cheapest_allowing(key, needed)
    message = (f"Your {tier.display_name} plan allows {allowed} {limit.label}; this organization is at "
               f"{_number(current)}.")
    if upgrade is not None and upgrade.name != tier.name:
        upgraded = getattr(upgrade, key)
        message += (f" The {upgrade.display_name} plan allows "
                    f"{'unlimited' if upgraded is None else upgraded} {limit.label}.")
    return QuotaExceeded(message, {"limit": key, "label": limit.label, "allowed": allowed, "current": current,
                                   "tier": tier.name, "upgradeTier": upgrade.name if upgrade is not None else None,
                                   "billingUrl": "/billing"})


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def require_room(org, key: str, current, adding=1) -> None:
    """Refuse when `current` + `adding` would pass the tier's `key` limit (None: unlimited)."""
    tier = tier_of(org)
    allowed = getattr(tier, key)
    if allowed is not None and current + adding > allowed:
        raise refusal(tier, key, current, current + adding)


def require_below(org, key: str, current) -> None:
    """Refuse once `current` has reached the limit (minutes, storage: the next build's cost is unknown)."""
    tier = tier_of(org)
    allowed = getattr(tier, key)
    if allowed is not None and current >= allowed:
        raise refusal(tier, key, current, current + 1)


def lock_org(org) -> None:
    """Serialize quota checks of one org until the transaction ends. PostgreSQL: SELECT ... FOR UPDATE on the
    org's row. SQLite has no row locks: a write takes the database's one writer lock (pysqlite opens the
    transaction at the first write), which a second starter then waits for."""
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(update(Organization).where(Organization.id == org.id).values(plan=Organization.plan)
                           .execution_options(synchronize_session=False))
    else:
        db.session.execute(select(Organization.id).where(Organization.id == org.id).with_for_update())


def check_build_start(org) -> None:
    """Starts this hour and month, builds running, minutes and storage this period: all under one lock, so two
    starts racing for the last slot cannot both pass. The caller's transaction then queues the build."""
    lock_org(org)
    now = utcnow()
    since = usage.period_start(now)
    require_room(org, "concurrent_builds", usage.running_builds(org.id))
    require_room(org, "builds_per_hour", usage.starts_since(org.id, now - timedelta(hours=1)))
    require_room(org, "builds_per_month", usage.starts_since(org.id, since))
    require_below(org, "build_minutes_per_month", usage.build_minutes(org.id, since, now))
    require_below(org, "storage_mb", round(usage.storage_bytes(org.id) / usage.MB, 1))


def check_member_add(org) -> None:
    lock_org(org)
    require_room(org, "members", usage.member_count(org.id))


def check_api_key_add(org) -> None:
    lock_org(org)
    require_room(org, "api_keys", usage.api_key_count(org.id, utcnow()))


def check_webhook_add(org) -> None:
    lock_org(org)
    require_room(org, "webhooks", usage.webhook_count(org.id))


def check_org_create(user_id, plan: str) -> None:
    """A user may own only so many organizations on a limited tier: making orgs must not multiply quotas."""
    tier = find_tier(plan) or find_tier("free")
    allowed = tier.owned_orgs
    if allowed is None:
        return
    current = usage.owned_orgs(user_id, tier.name)
    if current + 1 > allowed:
        raise refusal(tier, "owned_orgs", current, current + 1)
