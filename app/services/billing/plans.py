"""An organization's plan: its subscription, the per-limit summary, downgrade validation and plan changes."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.extensions import db
from app.models.base import utcnow
from app.models.billing import BillingAccount
from app.services import audit
from app.services.audit import Actor
from app.services.billing import ledger, usage
from app.services.billing.tiers import LIMITS, get_tier, tier_of
from app.services.errors import Conflict, Forbidden

WARNING_PERCENT = 80
# What must fit before an org may move to a lower tier: what it holds, not what it used this month.
HELD_LIMITS = ("members", "storage_mb", "api_keys", "webhooks")


@dataclass
class LimitUse:
    key: str
    label: str
    unit: str
    limit: int | None
    used: float
    percentage: float | None  # None: unlimited

    @property
    def state(self) -> str:
        if self.percentage is None:
            return "ok"
        if self.percentage >= 100:
            return "exceeded"
        return "warning" if self.percentage >= WARNING_PERCENT else "ok"


def limit_uses(org, now: datetime | None = None) -> list[LimitUse]:
    tier = tier_of(org)
    used = usage.usage_of(org, now)
    rows = []
    for key, current in used.items():
        allowed = getattr(tier, key)
        pct = None if allowed is None else (100.0 if allowed == 0 else round(100.0 * current / allowed, 1))
        rows.append(LimitUse(key, LIMITS[key].label, LIMITS[key].unit, allowed, current, pct))
    return rows


def subscription(org, now: datetime | None = None) -> dict:
    """The org's plan and period: Stripe's subscription when it has one, otherwise the calendar month."""
    now = now or utcnow()
    account = db.session.get(BillingAccount, org.id)
    if account is not None and account.stripe_subscription_id:
        return {"org_id": org.id, "tier": tier_of(org), "status": account.subscription_status or "active",
                "current_period_start": usage.period_start(now),
                "current_period_end": account.current_period_end or usage.next_period_start(now),
                "managed_by": "stripe"}
    return {"org_id": org.id, "tier": tier_of(org), "status": "active",
            "current_period_start": usage.period_start(now), "current_period_end": usage.next_period_start(now),
            "managed_by": "site-admin"}


def plan_summary(org, now: datetime | None = None) -> dict:
    now = now or utcnow()
    ledger.roll_over(org, now)
    return {"tier": tier_of(org), "period_start": usage.period_start(now), "period_end": usage.next_period_start(now),
            "limits": limit_uses(org, now), "token_balance": ledger.balance(org.id)}


def downgrade_violations(org, tier_name: str) -> list[dict]:
    """What the org holds beyond `tier_name`'s limits: members, storage, API keys, webhooks."""
    target = get_tier(tier_name)
    used = usage.usage_of(org)
    violations = []
    for key in HELD_LIMITS:
        allowed = getattr(target, key)
        if allowed is not None and used[key] > allowed:
            violations.append({"limit": key, "label": LIMITS[key].label, "current": used[key], "allowed": allowed})
    return violations


def change_plan(actor: Actor, org, tier_name: str, *, is_site_admin: bool):
    """Site admins move the org to another tier (owners pay through Stripe instead, payments.py); a move down
    is refused while the org holds more than the lower tier allows (the details list what)."""
    target = get_tier(tier_name)
    if not is_site_admin:
        raise Forbidden("Plans are changed here by this Kiln's site administrators; ask one, or subscribe through "
                        "checkout (POST /api/billing/checkout) where payments are configured")
    current = tier_of(org)
    if target.name == current.name:
        return target
    violations = downgrade_violations(org, target.name)
    if violations:
        words = "; ".join(f"{v['label']}: {v['current']:g} of {v['allowed']} allowed" for v in violations)
        raise Conflict(f"This organization holds more than the {target.display_name} plan allows ({words})",
                       {"violations": violations})
    return apply_tier(actor, org, target, source="site-admin")


def apply_tier(actor: Actor, org, target, *, source: str, **details):
    """Put the org on `target` (callers have decided it may move): a move up mid-month tops the month's token
    grant up to the new tier's (a move down leaves the grant alone); audited with who decided."""
    current = tier_of(org)
    if target.name == current.name:
        return target
    previous = org.plan
    org.plan = target.name
    now = utcnow()
    ledger.roll_over(org, now)
    old_grant, new_grant = current.llm_tokens_per_month, target.llm_tokens_per_month
    if old_grant is not None and new_grant is not None and new_grant > old_grant:
        ledger.record(org.id, "grant", new_grant - old_grant, reason=f"Upgrade to {target.display_name}",
                      dedupe_key=f"upgrade:{org.id}:{usage.period_key(now)}:{target.name}", user_id=actor.user_id)
    audit.record(actor, "billing.plan_changed", "organization", org.id, org_id=org.id, previous=previous,
                 tier=target.name, source=source, **details)
    return target
