"""Stripe, optional: Checkout and the customer portal for owners and admins, and the signed webhook that
moves an organization between tiers as its subscription changes. Settings (app/config.py): STRIPE_SECRET_KEY
for checkout and portal, STRIPE_WEBHOOK_SECRET for the webhook, KILN_STRIPE_PRICES mapping each paid tier to
its Stripe price id, KILN_STRIPE_API_BASE to talk to a local fake. Unset: NOT_CONFIGURED, site admins change
plans (plans.change_plan).

Webhook events are applied once: their ids are stored (stripe_events), so a replay changes nothing. A
subscription event moves the org to the tier of its price while it is active, trialing or past due, and back
to the default tier once it is canceled, unpaid or deleted. Stripe has already charged for a downgrade, so one
that leaves the org holding more than the lower tier allows is still applied: it is audited with the
violations and the owners and admins are notified. Invoices only record their outcome (a failed payment
notifies): tokens come from the tier's monthly grant (ledger.roll_over), so a paid invoice adds no ledger row.
"""
from __future__ import annotations

from datetime import datetime, timezone

import stripe
from flask import current_app

from app.extensions import db
from app.models import Membership, Organization
from app.models.billing import BillingAccount, StripeEvent
from app.services import audit, notifications
from app.services.audit import Actor
from app.services.billing import plans
from app.services.billing.tiers import find_tier, get_tier, tier_of
from app.services.errors import Conflict, DomainError, NotConfigured, ValidationFailed

SUBSCRIPTION_EVENTS = ("customer.subscription.created", "customer.subscription.updated",
                       "customer.subscription.deleted")
INVOICE_EVENTS = ("invoice.paid", "invoice.payment_failed")
# Stripe subscription statuses under which the org has the tier it pays for, and those that end it.
PAYING = {"active", "trialing", "past_due"}
ENDED = {"canceled", "unpaid", "incomplete_expired"}


class PaymentProviderFailed(DomainError):
    """Stripe refused or could not be reached: not the caller's mistake, and not ours to hide."""
    code, status = "PAYMENT_PROVIDER_ERROR", 502


def payments_enabled() -> bool:
    return bool(current_app.config.get("STRIPE_SECRET_KEY"))


def _client() -> stripe.StripeClient:
    config = current_app.config
    if not config.get("STRIPE_SECRET_KEY"):
        raise NotConfigured("Payments are not configured on this Kiln (STRIPE_SECRET_KEY is unset): plans are "
                            "changed by its site administrators", {"provider": "stripe"})
    base = config.get("KILN_STRIPE_API_BASE")
    return stripe.StripeClient(config["STRIPE_SECRET_KEY"], base_addresses={"api": base} if base else None,
                               max_network_retries=0)


def _call(what: str, fn, params: dict):
    try:
        return fn(params=params)
    except stripe.StripeError as exc:
        message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
        raise PaymentProviderFailed(f"Stripe could not {what}: {message}", {"provider": "stripe"}) from None


def price_of(tier_name: str) -> str:
    tier = get_tier(tier_name)
    price = current_app.config.get("KILN_STRIPE_PRICES", {}).get(tier.name)
    if price is None:
        sold = ", ".join(current_app.config.get("KILN_STRIPE_PRICES", {})) or "none"
        raise ValidationFailed(f"tier: the {tier.display_name} plan is not sold through Stripe (tiers sold: {sold})",
                               {"tier": [f"Must be one of: {sold}."]})
    return price


def _tier_of_price(price_id: str | None):
    for tier_name, price in current_app.config.get("KILN_STRIPE_PRICES", {}).items():
        if price == price_id:
            return find_tier(tier_name)
    return None


def checkout_url(actor: Actor, org, tier_name: str, return_url: str) -> str:
    """A subscription-mode Checkout session for `tier_name`; creates the org's Stripe customer the first time."""
    client = _client()
    price = price_of(tier_name)
    account = db.session.get(BillingAccount, org.id)
    if account is not None and account.stripe_subscription_id and account.subscription_status in PAYING:
        raise Conflict("This organization already has a Stripe subscription: change or cancel it in the billing "
                       "portal", {"subscription": account.stripe_subscription_id})
    if account is None:
        customer = _call("create a customer", client.v1.customers.create,
                         {"name": org.name, "email": getattr(actor.user, "email", None) or "",
                          "metadata": {"kiln_org_id": str(org.id)}})
        account = BillingAccount(org_id=org.id, stripe_customer_id=customer.id)
        db.session.add(account)
        db.session.flush()
        audit.record(actor, "billing.stripe_customer_created", "organization", org.id, org_id=org.id,
                     customer=customer.id)
    session = _call("start a checkout", client.v1.checkout.sessions.create,
                    {"mode": "subscription", "customer": account.stripe_customer_id,
                     "client_reference_id": str(org.id),
                     "line_items": [{"price": price, "quantity": 1}],
                     "subscription_data": {"metadata": {"kiln_org_id": str(org.id)}},
                     "success_url": f"{return_url}?checkout=done", "cancel_url": f"{return_url}?checkout=cancelled"})
    audit.record(actor, "billing.checkout_started", "organization", org.id, org_id=org.id, tier=tier_name,
                 session=session.id)
    return session.url


def portal_url(actor: Actor, org, return_url: str) -> str:
    client = _client()
    account = db.session.get(BillingAccount, org.id)
    if account is None:
        raise Conflict("This organization has no Stripe billing account yet: choose a plan through checkout first")
    session = _call("open the billing portal", client.v1.billing_portal.sessions.create,
                    {"customer": account.stripe_customer_id, "return_url": return_url})
    audit.record(actor, "billing.portal_opened", "organization", org.id, org_id=org.id)
    return session.url


# Webhook ------------------------------------------------------------------------------------------------

def verify(payload: bytes, signature: str | None):
    """The event, if Stripe signed this payload with our webhook secret (stripe.Webhook.construct_event)."""
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        raise NotConfigured("Stripe webhooks are not configured on this Kiln (STRIPE_WEBHOOK_SECRET is unset)",
                            {"provider": "stripe"})
    if not signature:
        raise ValidationFailed("Stripe-Signature: header missing", {"Stripe-Signature": ["Missing."]})
    try:
        return stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise ValidationFailed(f"Stripe-Signature: {exc.user_message or exc}",
                               {"Stripe-Signature": ["Does not match the payload and the webhook secret."]}) from None
    except ValueError as exc:
        raise ValidationFailed(f"body: not a Stripe event ({exc})",
                               {"body": ["Must be a JSON Stripe event."]}) from None


def _org_for(obj) -> tuple[Organization | None, BillingAccount | None]:
    customer = obj.get("customer")
    account = None
    if customer:
        account = db.session.scalar(db.select(BillingAccount).filter_by(stripe_customer_id=customer))
    if account is not None:
        org = db.session.get(Organization, account.org_id)
        return (org if org is not None and not org.is_deleted else None), account
    return None, None


def _period_end(sub) -> datetime | None:
    end = sub.get("current_period_end")
    if end is None:  # newer API versions carry the period on each item
        items = (sub.get("items") or {}).get("data") or []
        end = items[0].get("current_period_end") if items else None
    return datetime.fromtimestamp(int(end), timezone.utc) if end else None


def _price_id(sub) -> str | None:
    items = (sub.get("items") or {}).get("data") or []
    if not items:
        return None
    price = items[0].get("price") or items[0].get("plan") or {}
    return price.get("id") if isinstance(price, dict) else price


def _notify_managers(org, title: str, body: str):
    managers = db.session.scalars(db.select(Membership.user_id).where(Membership.org_id == org.id,
                                                                      Membership.role.in_(("owner", "admin"))))
    for user_id in managers:
        notifications.notify(user_id, "billing.payment", org_id=org.id, title=title, body=body, link="/billing",
                             entity_type="organization", entity_id=org.id)


def _subscription_event(event, sub: dict, org, account) -> dict:
    actor = Actor.system()
    status = "canceled" if event.type.endswith(".deleted") else sub.get("status")
    detail = {"event": event.id, "subscription": sub.get("id"), "status": status}
    if (account.stripe_subscription_id and sub.get("id") != account.stripe_subscription_id
            and account.subscription_status in PAYING and status not in PAYING):
        # The end of a subscription the org has since replaced (events may arrive out of order): the current
        # one decides the plan.
        audit.record(actor, "billing.subscription_updated", "organization", org.id, org_id=org.id,
                     superseded_by=account.stripe_subscription_id, **detail)
        return {"applied": False}
    account.stripe_subscription_id = sub.get("id")
    account.subscription_status = status
    account.current_period_end = _period_end(sub)
    if status in ENDED:
        target = find_tier(current_app.config["KILN_DEFAULT_TIER"]) or find_tier("free")
    elif status in PAYING:
        target = _tier_of_price(_price_id(sub))
        if target is None:
            audit.record(actor, "billing.stripe_unknown_price", "organization", org.id, org_id=org.id,
                         price=_price_id(sub), **detail)
            _notify_managers(org, "Stripe subscription for an unknown price",
                             f"Stripe reports a subscription to price {_price_id(sub)}, which no plan of this Kiln "
                             "sells (KILN_STRIPE_PRICES); the plan was left as it was.")
            return {"applied": False}
    else:  # incomplete, paused: nothing paid for yet, the plan stays
        audit.record(actor, "billing.subscription_updated", "organization", org.id, org_id=org.id, **detail)
        return {"applied": False}
    violations = plans.downgrade_violations(org, target.name) if target.position < tier_of(org).position else []
    previous = tier_of(org)
    plans.apply_tier(actor, org, target, source="stripe", **detail,
                     **({"violations": violations} if violations else {}))
    audit.record(actor, "billing.subscription_updated", "organization", org.id, org_id=org.id, tier=target.name,
                 **detail)
    if violations:
        words = "; ".join(f"{v['label']}: {v['current']:g} of {v['allowed']} allowed" for v in violations)
        _notify_managers(org, f"Now on the {target.display_name} plan, over its limits",
                         f"Stripe moved {org.name} from {previous.display_name} to {target.display_name}, which "
                         f"allows less than the organization holds ({words}). New work is refused until it fits.")
    return {"applied": True, "tier": target.name}


def _invoice_event(event, invoice: dict, org, account) -> dict:
    paid = event.type == "invoice.paid"
    account.last_invoice_id = invoice.get("id")
    account.last_invoice_status = "paid" if paid else "failed"
    audit.record(Actor.system(), "billing.invoice_paid" if paid else "billing.invoice_failed", "organization",
                 org.id, org_id=org.id, event=event.id, invoice=invoice.get("id"),
                 amount=invoice.get("amount_paid") if paid else invoice.get("amount_due"))
    if not paid:
        _notify_managers(org, "A payment to Stripe failed",
                         f"Stripe could not collect invoice {invoice.get('id')} for {org.name}. Update the payment "
                         "method in the billing portal to keep the plan.")
    return {"applied": True}


def handle_event(event) -> dict:
    """Apply one verified event once. The caller commits; a concurrent duplicate then fails on the key."""
    if db.session.get(StripeEvent, event.id) is not None:
        return {"duplicate": True, "applied": False}
    row = StripeEvent(id=event.id, type=event.type[:64])
    db.session.add(row)
    if event.type not in SUBSCRIPTION_EVENTS + INVOICE_EVENTS:
        return {"duplicate": False, "applied": False}
    obj = event.data.object.to_dict()  # plain dicts all the way down
    org, account = _org_for(obj)
    if org is None:
        audit.record(Actor.system(), "billing.stripe_event_unmatched", "stripe_event", None, event=event.id,
                     type=event.type, customer=obj.get("customer"))
        return {"duplicate": False, "applied": False}
    row.org_id = org.id
    if event.type in SUBSCRIPTION_EVENTS:
        result = _subscription_event(event, obj, org, account)
    else:
        result = _invoice_event(event, obj, org, account)
    db.session.flush()
    return {"duplicate": False, **result}
