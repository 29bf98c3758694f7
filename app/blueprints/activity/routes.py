"""Activity log API (API.md, Notifications, activity, search): the org's audit records, stats, CSV (org admins)."""
from __future__ import annotations

from flask import Response, stream_with_context

from app.http.auth import permission_required, resolve_org
from app.http.blueprint import ApiBlueprint
from app.http.pagination import page_of
from app.services import activity as service

from .schemas import ActivityFilterArgs, ActivityPageSchema, ActivityQueryArgs, ActivityStatsSchema

blp = ApiBlueprint("activity", __name__, url_prefix="/api/activity-log",
                   description="Who did what in the organization (org admins)")
FILTERS = ("actor_id", "entity_type", "since", "until")


def filters_of(args) -> dict:
    return {**{k: args[k] for k in FILTERS}, "actions": args["action"]}


def csv_response(org, filters: dict) -> Response:
    filename = f"kiln-activity-{org.slug}.csv"
    return Response(stream_with_context(service.csv_rows(org, **filters)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@blp.route("", methods=["GET"])
@blp.arguments(ActivityQueryArgs, location="query")
@blp.alt_response(200, success=True, content_type="text/csv", schema={"type": "string"},
                  description="With ?format=csv: every matching record, one CSV line each")
@blp.response(200, ActivityPageSchema, description="Audit records newest first, filtered and paginated",
              errors=(400, 401, 403))
@permission_required("activity:read")
def list_activity(args):
    org, _ = resolve_org()
    if args["format"] == "csv":
        return csv_response(org, filters_of(args))
    return page_of("records", service.records(org, **filters_of(args)), args)


@blp.route("/stats", methods=["GET"])
@blp.arguments(ActivityFilterArgs, location="query")
@blp.response(200, ActivityStatsSchema, description="Counts per action and per UTC day (default: the last 30 days)",
              errors=(400, 401, 403))
@permission_required("activity:read")
def activity_stats(args):
    org, _ = resolve_org()
    return service.stats(org, **filters_of(args))


api_blueprints = [blp]
