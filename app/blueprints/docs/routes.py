"""Swagger UI over vendored assets (no CDN, no inline script, so the CSP holds)."""
from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("docs", __name__)


@bp.route("/api/docs")
@bp.route("/api/docs/")
def swagger_ui():
    return render_template("api/docs.html")


page_blueprints = [bp]
