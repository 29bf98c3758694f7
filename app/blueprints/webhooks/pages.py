"""Webhook pages (org admins): endpoints with a create form (secret shown once), and an endpoint's delivery log.

Every POST works as a plain form (redirect back with a flash) and as htmx (the partial that owns the
changed element comes back; a refused change answers its real 4xx status with the error inside that partial).
"""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from app.extensions import db
from app.http.auth import current_actor, page_permission, resolve_org
from app.http.htmx import is_htmx, refused_form
from app.http.pagination import paginate
from app.models.webhooks import WEBHOOK_EVENTS
from app.services import webhooks as service
from app.services.errors import DomainError, ValidationFailed

bp = Blueprint("webhook_pages", __name__)
PAGE_SIZE = 25


def _list_context(**extra) -> dict:
    org, _ = resolve_org()
    rows = db.session.scalars(service.endpoints_of(org)).all()
    return {"org": org, "endpoints": rows, "events": WEBHOOK_EVENTS, "error": None, "notice": None,
            "new_secret": None, **extra}


def _detail_context(webhook_id, **extra) -> dict:
    org, _ = resolve_org()
    endpoint = service.get_endpoint(org, webhook_id)
    try:
        page = max(int(request.args.get("page") or 1), 1)
    except ValueError:
        raise ValidationFailed("page: must be a number", {"page": ["Not a valid integer."]}) from None
    rows, total = paginate(service.deliveries_of(endpoint), page, PAGE_SIZE)
    return {"org": org, "endpoint": endpoint, "deliveries": rows, "total": total, "page": page,
            "has_more": page * PAGE_SIZE < total, "error": None, "notice": None, **extra}


@bp.route("/webhooks")
@page_permission("webhooks:manage")
def index():
    return render_template("webhooks/index.html", **_list_context())


@bp.route("/webhooks", methods=["POST"])
@page_permission("webhooks:manage")
def create():
    org, _ = resolve_org()
    try:
        endpoint = service.create_endpoint(current_actor(), org, url=request.form.get("url", ""),
                                           events=request.form.getlist("events"),
                                           description=request.form.get("description", ""))
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        return refused_form(exc, "webhooks/_endpoints.html", _list_context, url_for(".index"))
    # The secret is shown this once: a redirect would lose it, so the answer renders it directly.
    template = "webhooks/_endpoints.html" if is_htmx() else "webhooks/index.html"
    return render_template(template, **_list_context(new_secret=endpoint.secret, notice="Endpoint created."))


@bp.route("/webhooks/<webhook_id>")
@page_permission("webhooks:manage")
def detail(webhook_id):
    ctx = _detail_context(webhook_id)
    if is_htmx():
        response = render_template("webhooks/_deliveries.html", **ctx)
    else:
        response = render_template("webhooks/detail.html", **ctx)
    return response, 200, {"Vary": "HX-Request"}


@bp.route("/webhooks/<webhook_id>/<action>", methods=["POST"])
@page_permission("webhooks:manage")
def endpoint_action(webhook_id, action):
    org, _ = resolve_org()
    actor = current_actor()
    notices = {"ping": "Ping queued.", "enable": "Endpoint switched on.", "disable": "Endpoint switched off.",
               "delete": "Endpoint deleted."}
    try:
        endpoint = service.get_endpoint(org, webhook_id)
        if action == "ping":
            service.ping(actor, endpoint)
        elif action in ("enable", "disable"):
            service.update_endpoint(actor, endpoint, {"active": action == "enable"})
        elif action == "delete":
            service.delete_endpoint(actor, endpoint)
        else:
            raise ValidationFailed(f"Unknown webhook action '{action}'", {"action": ["Unknown action."]})
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        if not is_htmx() and exc.status == 404:
            raise
        return refused_form(exc, "webhooks/_endpoints.html", _list_context, url_for(".index"))
    if is_htmx():
        return render_template("webhooks/_endpoints.html", **_list_context(notice=notices[action]))
    flash(notices[action], "success")
    if action == "delete":
        return redirect(url_for(".index"))
    return redirect(request.form.get("next") or url_for(".index"))


@bp.route("/webhooks/<webhook_id>/deliveries/<delivery_id>/redeliver", methods=["POST"])
@page_permission("webhooks:manage")
def redeliver(webhook_id, delivery_id):
    org, _ = resolve_org()
    error, status = None, 200
    try:
        endpoint = service.get_endpoint(org, webhook_id)
        service.redeliver(current_actor(), service.get_delivery(endpoint, delivery_id))
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        if not is_htmx() and exc.status == 404:
            raise
        error, status = exc.message, exc.status
    if is_htmx():
        return render_template("webhooks/_deliveries.html",
                               **_detail_context(webhook_id, error=error,
                                                 notice=None if error else "Redelivery queued.")), status
    flash(error or "Redelivery queued.", "error" if error else "success")
    return redirect(url_for(".detail", webhook_id=webhook_id))


page_blueprints = [bp]
