"""Billing and usage API (API.md): tiers, the org's subscription, usage, plan summary, plan changes, the token
ledger, and Stripe's checkout, portal and signed webhook (503 NOT_CONFIGURED without STRIPE_* settings, when
site admins change plans)."""
from __future__ import annotations

from flask import current_app, request
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.http.auth import current_actor, current_principal, login_required, permission_required, resolve_org
from app.http.blueprint import ApiBlueprint
from app.http.pagination import page_of
from app.http.schemas import camelcase
from app.models import Organization
from app.models.base import utcnow
from app.services.billing import ledger, payments, plans, tiers, usage
from app.services.errors import Forbidden, NotFound

from .schemas import (CheckoutSchema, DowngradeCheckSchema, PlanSummarySchema, SessionUrlSchema, SubscriptionSchema,
                      TierChoiceSchema, TierListSchema, TierSchema, TierUpdateSchema, TokenBalanceSchema,
                      TokenTransactionPageSchema, TokenTransactionQueryArgs, UsageSchema, WebhookResultSchema)

blp = ApiBlueprint("billing", __name__, url_prefix="/api/billing",
                   description="Plans (tiers), usage against their limits, plan changes")
tokens_blp = ApiBlueprint("tokens", __name__, url_prefix="/api/tokens",
                          description="The organization's LLM token ledger")


def _is_site_admin() -> bool:
    principal = current_principal()
    return principal.api_key is None and principal.user is not None and principal.user.is_site_admin


@blp.route("/tiers", methods=["GET"])
@blp.response(200, TierListSchema, description="Every tier with its limits (null: unlimited), cheapest first")
def list_tiers():
    """Public: what each plan allows."""
    return {"tiers": tiers.all_tiers()}


@blp.route("/tiers/<name>", methods=["PATCH"])
@blp.arguments(TierUpdateSchema)
@blp.response(200, TierSchema, description="The tier as changed", errors=(400, 401, 403, 404))
@login_required
def update_tier(data, name):
    """Site administrators: change a tier's limits (null: unlimited) or wording."""
    tier = tiers.update_tier(current_actor(), name, data, is_site_admin=_is_site_admin())
    db.session.commit()
    return tier


@blp.route("/subscription", methods=["GET"])
@blp.response(200, SubscriptionSchema, description="The tenant org's plan and current period", errors=(401, 403))
@permission_required("org:read")
def get_subscription():
    org, _ = resolve_org()
    return plans.subscription(org)


@blp.route("/usage", methods=["GET"])
@blp.response(200, UsageSchema, description="This period's use and the tier's limits", errors=(401, 403))
@permission_required("org:read")
def get_usage():
    org, _ = resolve_org()
    now = utcnow()
    tier = tiers.tier_of(org)
    used = usage.usage_of(org, now)
    return {"tier": tier.name, "period_start": usage.period_start(now), "period_end": usage.next_period_start(now),
            "usage": {camelcase(k): v for k, v in used.items()},
            "limits": {camelcase(k): getattr(tier, k) for k in tiers.LIMITS}}


@blp.route("/plan-summary", methods=["GET"])
@blp.response(200, PlanSummarySchema, description="Each limit with its use and percentage", errors=(401, 403))
@permission_required("org:read")
def plan_summary():
    org, _ = resolve_org()
    summary = plans.plan_summary(org)
    db.session.commit()  # a lazily rolled-over token period
    return summary


@blp.route("/validate-downgrade", methods=["POST"])
@blp.arguments(TierChoiceSchema)
@blp.response(200, DowngradeCheckSchema, description="Whether the org fits the tier, and what does not",
              errors=(400, 401, 403))
@permission_required("org:read")
def validate_downgrade(data):
    org, _ = resolve_org()
    violations = plans.downgrade_violations(org, data["tier"])
    return {"tier": data["tier"], "allowed": not violations, "violations": violations}


def _target_org(org_id) -> Organization:
    """The tenant, or (site admins only) the organization `orgId` names."""
    if org_id is None:
        return resolve_org()[0]
    if not _is_site_admin():
        raise Forbidden("Only site administrators may change another organization's plan")
    org = db.session.get(Organization, org_id)
    if org is None or org.is_deleted:
        raise NotFound.of("Organization", org_id)
    return org


@blp.route("/change-plan", methods=["POST"])
@blp.arguments(TierChoiceSchema)
@blp.response(200, SubscriptionSchema, description="The org's subscription on its new tier",
              errors=(400, 401, 403, 404, 409))
@permission_required("org:read")
def change_plan(data):
    """Site administrators move an organization to a tier (409 when it holds more than a lower tier allows;
    validate-downgrade lists what). Org owners are refused: no payment provider is configured."""
    org = _target_org(data["org_id"])
    plans.change_plan(current_actor(), org, data["tier"], is_site_admin=_is_site_admin())
    db.session.commit()
    return plans.subscription(org)


def _return_url() -> str:
    return current_app.config["KILN_BASE_URL"].rstrip("/") + "/billing"


@blp.route("/checkout", methods=["POST"])
@blp.arguments(CheckoutSchema)
@blp.response(200, SessionUrlSchema, description="A Stripe Checkout session for the tier's subscription",
              errors=(400, 401, 403, 409, 502, 503))
@permission_required("org:manage")
def checkout(data):
    """Owners and admins: subscribe the org to a paid tier through Stripe Checkout (the org's Stripe customer
    is created the first time). The webhook moves the org once Stripe reports the subscription."""
    org, _ = resolve_org()
    url = payments.checkout_url(current_actor(), org, data["tier"], _return_url())
    db.session.commit()
    return {"url": url}


@blp.route("/portal", methods=["POST"])
@blp.response(200, SessionUrlSchema, description="A Stripe customer portal session",
              errors=(401, 403, 409, 502, 503))
@permission_required("org:manage")
def portal():
    """Owners and admins: manage the org's payment method, invoices and subscription in Stripe's portal."""
    org, _ = resolve_org()
    url = payments.portal_url(current_actor(), org, _return_url())
    db.session.commit()
    return {"url": url}


@blp.route("/webhook", methods=["POST"])
@blp.response(200, WebhookResultSchema, description="The event was verified (and applied once)",
              errors=(400, 503))
def stripe_webhook():
    """Public, Stripe-signed (Stripe-Signature header, STRIPE_WEBHOOK_SECRET): subscription created, updated or
    deleted and invoice paid or failed. Each event id is applied once; a replay answers duplicate."""
    event = payments.verify(request.get_data(), request.headers.get("Stripe-Signature"))
    try:
        result = payments.handle_event(event)
        db.session.commit()
    except IntegrityError:  # the same event delivered twice at once: the other delivery applied it
        db.session.rollback()
        result = {"duplicate": True, "applied": False}
    return {"received": True, **result}


@tokens_blp.route("/balance", methods=["GET"])
@tokens_blp.response(200, TokenBalanceSchema, description="The tenant org's token balance this period",
                     errors=(401, 403))
@permission_required("org:read")
def token_balance():
    org, _ = resolve_org()
    now = utcnow()
    ledger.roll_over(org, now)
    db.session.commit()
    since = usage.period_start(now)
    return {"org_id": org.id, "balance": ledger.balance(org.id),
            "monthly_grant": tiers.tier_of(org).llm_tokens_per_month,
            "used_this_period": usage.tokens_used(org.id, since), "period_start": since,
            "period_end": usage.next_period_start(now)}


@tokens_blp.route("/transactions", methods=["GET"])
@tokens_blp.arguments(TokenTransactionQueryArgs, location="query")
@tokens_blp.response(200, TokenTransactionPageSchema, description="Newest first", errors=(400, 401, 403))
@permission_required("org:read")
def token_transactions(args):
    org, _ = resolve_org()
    return page_of("transactions", ledger.transactions_of(org, args["kind"]), args)


api_blueprints = [blp, tokens_blp]
