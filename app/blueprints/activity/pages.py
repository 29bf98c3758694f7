"""The activity log page (org admins): the API's filters as a form, a table that htmx swaps, CSV export."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from marshmallow import ValidationError

from app.http.auth import page_permission, resolve_org
from app.http.htmx import is_htmx
from app.http.pagination import paginate
from app.services import activity as service
from app.services.errors import ValidationFailed

from .routes import csv_response, filters_of
from .schemas import ActivityQueryArgs

bp = Blueprint("activity_pages", __name__)
PAGE_SIZE = 50


def _args() -> dict:
    # Empty form fields mean "any": drop them before the API's schema reads the rest.
    raw = {k: v for k, v in request.args.items() if v != ""}
    try:
        return ActivityQueryArgs().load(raw)
    except ValidationError as exc:
        fields = ", ".join(sorted(exc.messages))
        raise ValidationFailed(f"Bad filter: {fields}", exc.messages) from None


@bp.route("/activity")
@page_permission("activity:read")
def index():
    org, _ = resolve_org()
    args = _args()
    rows, total = paginate(service.records(org, **filters_of(args)), args["page"], PAGE_SIZE)
    query = {k: v for k, v in request.args.items() if v != "" and k != "page"}
    ctx = {"org": org, "records": rows, "total": total, "page": args["page"],
           "has_more": args["page"] * PAGE_SIZE < total, "query": query, "args": args,
           "choices": service.filter_choices(org)}
    template = "activity/_table.html" if is_htmx() else "activity/index.html"
    return render_template(template, **ctx), 200, {"Vary": "HX-Request"}


@bp.route("/activity/export.csv")
@page_permission("activity:read")
def export():
    org, _ = resolve_org()
    return csv_response(org, filters_of(_args()))


page_blueprints = [bp]
