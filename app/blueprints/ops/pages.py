"""Operations pages (site administrators): the factory workers, live.

The workers panel is one partial that owns #factory-workers and re-renders itself every
KILN_OPS_POLL_SECONDS, so a worker going lost shows without a reload.
"""
from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template

from app.http.auth import page_site_admin, require_metrics_reader
from app.http.htmx import is_htmx
from app.services.ops import metrics
from app.services.ops import workers as worker_service

from .routes import worker_list

bp = Blueprint("ops_pages", __name__)


def _workers_context() -> dict:
    return {**worker_list(), "stats": worker_service.stats(24), "health": worker_service.health_summary(),
            "poll_seconds": current_app.config["KILN_OPS_POLL_SECONDS"]}


@bp.route("/ops/workers")
@page_site_admin
def workers():
    ctx = _workers_context()
    template = "ops/_workers.html" if is_htmx() else "ops/workers.html"
    return render_template(template, **ctx), 200, {"Vary": "HX-Request"}


@bp.route("/metrics")
def prometheus_metrics():
    """Prometheus text. Prometheus sends `Authorization: Bearer $KILN_METRICS_TOKEN`; a person needs to be a
    site administrator (session or JWT)."""
    require_metrics_reader()
    return Response(metrics.exposition(), mimetype=None, content_type=metrics.CONTENT_TYPE)


page_blueprints = [bp]
