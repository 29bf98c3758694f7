"""Notifications on the wire (the schemas dump the models)."""
from __future__ import annotations

from marshmallow import fields

from app.http.schemas import CamelSchema, PageSchema, PaginationArgs, Timestamp
from app.models.notifications import NOTIFICATION_KINDS


class NotificationQueryArgs(PaginationArgs):
    unread = fields.Boolean(load_default=False, metadata={"description": "Only unread ones"})


class NotificationSchema(CamelSchema):
    id = fields.UUID()
    org_id = fields.UUID(allow_none=True)
    kind = fields.String()
    title = fields.String()
    body = fields.String()
    link = fields.String(allow_none=True)
    entity_type = fields.String(allow_none=True)
    entity_id = fields.String(allow_none=True)
    read = fields.Function(lambda row: row.read_at is not None)
    read_at = Timestamp(allow_none=True)
    emailed_at = Timestamp(allow_none=True)
    created_at = Timestamp()


class NotificationPageSchema(PageSchema):
    """The list envelope, plus how many are unread across all pages."""

    notifications = fields.List(fields.Nested(NotificationSchema))
    unread_count = fields.Integer()


class UnreadCountSchema(CamelSchema):
    unread_count = fields.Integer()


class ReadAllSchema(CamelSchema):
    marked = fields.Integer(metadata={"description": "How many were unread"})
    unread_count = fields.Integer()


class NotificationUpdateSchema(CamelSchema):
    read = fields.Boolean(required=True)


class PreferencesSchema(CamelSchema):
    """kind -> whether it is also e-mailed. Kinds left out keep their setting."""

    email = fields.Dict(keys=fields.String(metadata={"enum": list(NOTIFICATION_KINDS)}), values=fields.Boolean(),
                        required=True)
