"""Notification pages: the inbox, the header bell (polls itself), and the e-mail preferences form.

The bell is one partial that owns #notification-bell and re-renders itself every
KILN_NOTIFICATION_POLL_SECONDS, and at once when a page answers with the `kiln:notifications` trigger
(after mark-read or read-all), so the count changes without a reload.
"""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.http.auth import page_permission, user_required
from app.http.htmx import is_htmx, refused_form
from app.http.pagination import paginate
from app.models.notifications import NOTIFICATION_KINDS
from app.services import notifications as service
from app.services.errors import DomainError

bp = Blueprint("notification_pages", __name__)
PAGE_SIZE = 25
CHANGED = {"HX-Trigger": "kiln:notifications"}


@bp.app_context_processor
def _bell():
    def unread_notifications() -> int:
        return service.unread_count(current_user) if current_user.is_authenticated else 0

    # The account page includes the preferences form without knowing about notifications.
    return {"unread_notifications": unread_notifications, "notification_kinds": NOTIFICATION_KINDS,
            "notification_preferences": lambda: service.email_preferences(current_user.id),
            "notification_poll_seconds": lambda: current_app.config["KILN_NOTIFICATION_POLL_SECONDS"]}


def _inbox_context(**extra) -> dict:
    try:
        page = max(int(request.args.get("page") or 1), 1)
    except ValueError:
        page = 1
    unread_only = request.args.get("unread") == "1"
    rows, total = paginate(service.notifications_of(current_user, unread_only=unread_only), page, PAGE_SIZE)
    return {"notifications": rows, "total": total, "page": page, "has_more": page * PAGE_SIZE < total,
            "unread_only": unread_only, **extra}


def _prefs_context(**extra) -> dict:
    return {"preferences": service.email_preferences(current_user.id), "kinds": NOTIFICATION_KINDS,
            "error": None, "notice": None, **extra}


@bp.route("/notifications")
@page_permission()
@user_required
def index():
    ctx = {**_inbox_context(), **_prefs_context()}
    if is_htmx():
        return render_template("notifications/_list.html", **ctx), 200, {"Vary": "HX-Request"}
    return render_template("notifications/index.html", **ctx), 200, {"Vary": "HX-Request"}


@bp.route("/notifications/bell")
@page_permission()
@user_required
def bell():
    return render_template("notifications/_bell.html")


@bp.route("/notifications/read-all", methods=["POST"])
@page_permission()
@user_required
def read_all():
    service.read_all(current_user)
    db.session.commit()
    if is_htmx():
        return render_template("notifications/_list.html", **_inbox_context()), 200, CHANGED
    flash("All notifications marked read.", "success")
    return redirect(url_for(".index"))


@bp.route("/notifications/<notification_id>/open", methods=["POST"])
@page_permission()
@user_required
def open_notification(notification_id):
    """Mark read and go where it points (a plain form, so it works without JavaScript)."""
    row = service.mark(current_user, notification_id, read=True)
    db.session.commit()
    return redirect(row.link or url_for(".index"))


@bp.route("/notifications/preferences")
@page_permission()
@user_required
def preferences():
    return render_template("notifications/_preferences.html", **_prefs_context())


@bp.route("/notifications/preferences", methods=["POST"])
@page_permission()
@user_required
def save_preferences():
    chosen = set(request.form.getlist("email"))
    try:
        service.set_email_preferences(current_user, {kind: kind in chosen for kind in NOTIFICATION_KINDS})
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        return refused_form(exc, "notifications/_preferences.html", _prefs_context, url_for(".index"))
    if is_htmx():
        return render_template("notifications/_preferences.html", **_prefs_context(notice="Preferences saved."))
    flash("Preferences saved.", "success")
    return redirect(request.form.get("next") or url_for(".index"))


page_blueprints = [bp]
