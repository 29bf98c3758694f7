"""Notifications API (API.md, Notifications): the caller's own, unread count, mark read, read all, preferences."""
from __future__ import annotations

from app.extensions import db
from app.http.auth import current_principal, user_required
from app.http.blueprint import ApiBlueprint
from app.http.pagination import paginate
from app.http.schemas import page_envelope
from app.services import notifications as service

from .schemas import (NotificationPageSchema, NotificationQueryArgs, NotificationSchema, NotificationUpdateSchema,
                      PreferencesSchema, ReadAllSchema, UnreadCountSchema)

blp = ApiBlueprint("notifications", __name__, url_prefix="/api/notifications",
                   description="The signed-in person's notifications (not for API keys)")


def _me():
    return current_principal().user


@blp.route("", methods=["GET"])
@blp.arguments(NotificationQueryArgs, location="query")
@blp.response(200, NotificationPageSchema, description="Newest first, across the caller's organizations",
              errors=(400, 401, 403))
@user_required
def list_notifications(args):
    me = _me()
    rows, total = paginate(service.notifications_of(me, unread_only=args["unread"]), args["page"], args["limit"])
    return {**page_envelope("notifications", rows, total, args["page"], args["limit"]),
            "unreadCount": service.unread_count(me)}


@blp.route("/unread-count", methods=["GET"])
@blp.response(200, UnreadCountSchema, description="How many are unread", errors=(401, 403))
@user_required
def unread_count():
    return {"unread_count": service.unread_count(_me())}


@blp.route("/read-all", methods=["PATCH"])
@blp.response(200, ReadAllSchema, description="Every notification of the caller marked read", errors=(401, 403))
@user_required
def read_all():
    me = _me()
    marked = service.read_all(me)
    db.session.commit()
    return {"marked": marked, "unread_count": service.unread_count(me)}


@blp.route("/preferences", methods=["GET"])
@blp.response(200, PreferencesSchema, description="Which notifications are also e-mailed", errors=(401, 403))
@user_required
def get_preferences():
    return {"email": service.email_preferences(_me().id)}


@blp.route("/preferences", methods=["PATCH"])
@blp.arguments(PreferencesSchema)
@blp.response(200, PreferencesSchema, description="The preferences after the change", errors=(400, 401, 403))
@user_required
def update_preferences(data):
    prefs = service.set_email_preferences(_me(), data["email"])
    db.session.commit()
    return {"email": prefs}


@blp.route("/<notification_id>", methods=["PATCH"])
@blp.arguments(NotificationUpdateSchema)
@blp.response(200, NotificationSchema, description="The notification, read or unread", errors=(400, 401, 403, 404))
@user_required
def update_notification(data, notification_id):
    row = service.mark(_me(), notification_id, read=data["read"])
    db.session.commit()
    return row


api_blueprints = [blp]
