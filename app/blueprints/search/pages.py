"""The search page behind the header's search box."""
from __future__ import annotations

from flask import Blueprint, render_template, request

from app.http.auth import current_principal, page_permission, resolve_org
from app.services import search as service

bp = Blueprint("search_pages", __name__)


@bp.route("/search")
@page_permission("org:read")
def index():
    q = (request.args.get("q") or "").strip()
    hits = []
    if q:
        org, role = resolve_org()
        hits = service.search(org, q[:200], user=current_principal().user, role=role, limit=50)
    return render_template("search/index.html", q=q, hits=hits)


page_blueprints = [bp]
