"""Tiers as data: the billing_tiers table (seeded by migration), edited by site admins.

A tier with no row (a database made by create_all, as the tests do) uses the built-in values below, the
same the migration seeds, so a fresh database and a migrated one agree."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from app.extensions import db
from app.models.billing import LIMIT_COLUMNS, Tier
from app.services import audit
from app.services.audit import Actor
from app.services.errors import Forbidden, NotFound, ValidationFailed


@dataclass(frozen=True)
class Limit:
    key: str
    label: str  # words for pages and refusals: "build starts per hour"
    unit: str


LIMITS = {limit.key: limit for limit in (
    Limit("builds_per_hour", "build starts per hour", "starts"),
    Limit("builds_per_month", "build starts per month", "starts"),
    Limit("concurrent_builds", "concurrent builds", "builds"),
    Limit("build_minutes_per_month", "build minutes per month", "minutes"),
    Limit("storage_mb", "artifact storage", "MB"),
    Limit("retention_days", "artifact retention", "days"),
    Limit("members", "members", "members"),
    Limit("api_keys", "API keys", "keys"),
    Limit("webhooks", "webhooks", "webhooks"),
    Limit("llm_tokens_per_month", "LLM tokens per month", "tokens"),
    Limit("api_requests_per_minute", "API requests per minute", "requests"),
    Limit("owned_orgs", "organizations owned per user", "organizations"),
)}
assert tuple(LIMITS) == LIMIT_COLUMNS

_U = None  # unlimited
DEFAULT_TIERS = (
    dict(name="free", display_name="Free", position=0, price_cents_month=0, builds_per_hour=5, builds_per_month=50,
         concurrent_builds=1, build_minutes_per_month=300, storage_mb=2048, retention_days=7, members=3, api_keys=2,
         webhooks=2, llm_tokens_per_month=50_000, api_requests_per_minute=60, owned_orgs=2),
    dict(name="pro", display_name="Pro", position=1, price_cents_month=2900, builds_per_hour=20, builds_per_month=500,
         concurrent_builds=3, build_minutes_per_month=3000, storage_mb=20_480, retention_days=30, members=10,
         api_keys=10, webhooks=10, llm_tokens_per_month=1_000_000, api_requests_per_minute=300, owned_orgs=10),
    dict(name="team", display_name="Team", position=2, price_cents_month=9900, builds_per_hour=60,
         builds_per_month=2000, concurrent_builds=10, build_minutes_per_month=15_000, storage_mb=102_400,
         retention_days=90, members=50, api_keys=50, webhooks=50, llm_tokens_per_month=5_000_000,
         api_requests_per_minute=1000, owned_orgs=50),
    # Unlimited, and the instance's KILN_RATE_LIMIT for the API.
    dict(name="enterprise", display_name="Enterprise", position=3, price_cents_month=0, builds_per_hour=_U,
         builds_per_month=_U, concurrent_builds=_U, build_minutes_per_month=_U, storage_mb=_U, retention_days=_U,
         members=_U, api_keys=_U, webhooks=_U, llm_tokens_per_month=_U, api_requests_per_minute=_U, owned_orgs=_U),
)
_DEFAULTS = {t["name"]: t for t in DEFAULT_TIERS}


def all_tiers() -> list[Tier]:
    """Every tier, cheapest first: the table's rows, and the built-in ones it lacks (unsaved)."""
    rows = {t.name: t for t in db.session.scalars(select(Tier))}
    for name, values in _DEFAULTS.items():
        rows.setdefault(name, Tier(**values))
    return sorted(rows.values(), key=lambda t: (t.position, t.name))


def find_tier(name: str | None) -> Tier | None:
    if not name:
        return None
    row = db.session.get(Tier, name)
    if row is None and name in _DEFAULTS:
        row = Tier(**_DEFAULTS[name])
    return row


def get_tier(name: str, field: str = "tier") -> Tier:
    tier = find_tier(name)
    if tier is None:
        raise ValidationFailed(f"{field}: no tier named '{name}'",
                               {field: [f"Must be one of: {', '.join(t.name for t in all_tiers())}."]})
    return tier


def tier_of(org) -> Tier:
    """The org's tier; a plan name no tier has any more counts as free (the most limited)."""
    return find_tier(org.plan) or find_tier("free")


def cheapest_allowing(key: str, needed: int | float) -> Tier | None:
    """The first tier (by position) whose `key` limit admits `needed`, for a refusal to name."""
    for tier in all_tiers():
        limit = getattr(tier, key)
        if limit is None or limit >= needed:
            return tier
    return None


def update_tier(actor: Actor, name: str, values: dict, *, is_site_admin: bool) -> Tier:
    """A site admin changes a tier's limits or wording (a tier without a row gets one)."""
    if not is_site_admin:
        raise Forbidden("Only site administrators may edit tiers")
    tier = db.session.get(Tier, name)
    if tier is None:
        if name not in _DEFAULTS:
            raise NotFound.of("Tier", name)
        tier = Tier(**_DEFAULTS[name])
        db.session.add(tier)
    changed = {}
    for key, value in values.items():
        if getattr(tier, key) != value:
            changed[key] = {"from": getattr(tier, key), "to": value}
            setattr(tier, key, value)
    db.session.flush()
    audit.record(actor, "billing.tier_updated", "tier", name, changes=changed)
    return tier
