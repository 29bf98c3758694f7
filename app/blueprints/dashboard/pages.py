"""The dashboard: where a signed-in person lands."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

from app.http.auth import page_permission, resolve_org
from app.services import dashboard

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
    return render_template("dashboard/index.html", org=org, role=role, summary=dashboard.summary(org))


page_blueprints = [bp]
