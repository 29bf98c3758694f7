"""The billing page: the org's tier, usage bars per limit, the token balance with its 30-day chart, the
transactions, and the plans side by side with the change buttons (site admins) or who to ask."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.http.auth import current_actor, page_permission, resolve_org
from app.services import charts
from app.services.billing import ledger, plans, tiers
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
            "can_change": current_user.is_site_admin}


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


page_blueprints = [bp]
