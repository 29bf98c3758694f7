"""The billing page: the org's tier, usage bars per limit, the token balance with its 30-day chart, the
transactions, and the plans side by side with Stripe's Checkout and Manage-billing buttons (owners and admins,
when Stripe is configured), the change buttons (site admins), or who to ask."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.http.auth import current_actor, page_permission, resolve_org
from app.services import charts
from app.models import BillingAccount
from app.services.billing import ledger, payments, plans, tiers
from app.services.permissions import role_allows
from app.services.errors import DomainError

bp = Blueprint("billing_pages", __name__)
TRANSACTIONS_SHOWN = 20


def _context() -> dict:
    org, role = resolve_org()
    summary = plans.plan_summary(org)
    db.session.commit()  # a lazily rolled-over token period
    points = ledger.daily_balances(org, 30)
    return {"org": org, "role": role, "summary": summary, "tiers": tiers.all_tiers(), "limits": tiers.LIMITS,
            "transactions": db.session.scalars(ledger.transactions_of(org).limit(TRANSACTIONS_SHOWN)).all(),
            "balance_chart": charts.balance_chart(points, label="Token balance, last 30 days"),
            "warnings": [use for use in summary["limits"] if use.state != "ok"],
            "can_change": current_user.is_site_admin,
            "stripe_enabled": payments.payments_enabled(), "can_pay": role_allows(role, "org:manage"),
            "sold": current_app.config.get("KILN_STRIPE_PRICES", {}),
            "billing_account": db.session.get(BillingAccount, org.id)}


@bp.route("/billing")
@page_permission("org:read")
def billing_page():
    return render_template("billing/page.html", **_context())


@bp.route("/billing/plan", methods=["POST"])
@page_permission("org:read")
def change_plan():
    org, _ = resolve_org()
    try:
        tier = plans.change_plan(current_actor(), org, request.form.get("tier", ""),
                                 is_site_admin=current_user.is_site_admin)
        db.session.commit()
        flash(f"{org.name} is now on the {tier.display_name} plan.", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("billing_pages.billing_page"))


def _to_stripe(start):
    """Send the browser to the Stripe page `start` opens, or back here with what went wrong."""
    try:
        url = start()
        db.session.commit()
        return redirect(url, code=303)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("billing_pages.billing_page"))


def _return_url() -> str:
    return current_app.config["KILN_BASE_URL"].rstrip("/") + url_for("billing_pages.billing_page")


@bp.route("/billing/checkout", methods=["POST"])
@page_permission("org:manage")
def checkout():
    org, _ = resolve_org()
    return _to_stripe(lambda: payments.checkout_url(current_actor(), org, request.form.get("tier", ""),
                                                    _return_url()))


@bp.route("/billing/portal", methods=["POST"])
@page_permission("org:manage")
def portal():
    org, _ = resolve_org()
    return _to_stripe(lambda: payments.portal_url(current_actor(), org, _return_url()))


page_blueprints = [bp]
