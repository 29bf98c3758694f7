"""The dashboard: where a signed-in person lands."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

from app.http.auth import can, current_actor, page_permission, resolve_org
from app.services import charts, dashboard
from app.services.builds.views import human_duration

bp = Blueprint("dashboard", __name__)


@bp.route("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("accounts.login_page"))
    return redirect(url_for("dashboard.index"))


@bp.route("/dashboard")
@page_permission("org:read")
def index():
    org, role = resolve_org()
    summary = dashboard.summary(org, actor=current_actor(), role=role)
    return render_template("dashboard/index.html", org=org, role=role, summary=summary,
                           can_build=can("builds:write"),
                           can_chat=can("conversations:write"),
                           chart=charts.builds_per_day(summary["per_day"]), groups=charts.STATUS_GROUPS,
                           swatch=charts.swatch, human_duration=human_duration)


page_blueprints = [bp]
