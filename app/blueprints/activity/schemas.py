"""The activity log on the wire (the schemas dump the audit records)."""
from __future__ import annotations

from datetime import date, datetime

from marshmallow import ValidationError, fields, validate
from webargs.fields import DelimitedList

from app.http.schemas import CamelSchema, PaginationArgs, QueryArgs, Timestamp, page_schema


class DateOrDateTime(fields.Field):
    """YYYY-MM-DD (a whole UTC day) or an ISO 8601 date-time."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = str(value).strip()
        try:
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError("Not a date (YYYY-MM-DD) or an ISO 8601 date-time.") from None


class ActivityFilterArgs(QueryArgs):
    actor_id = fields.UUID(load_default=None)
    action = DelimitedList(fields.String(validate=validate.Length(max=64)), load_default=list,
                           metadata={"description": "One action or several, comma-separated (e.g. build.created)"})
    entity_type = fields.String(load_default=None, validate=validate.Length(max=32))
    since = DateOrDateTime(load_default=None, data_key="from", metadata={"description": "From this date/time on"})
    until = DateOrDateTime(load_default=None, data_key="to", metadata={"description": "Up to this date (inclusive) or before this time"})


class ActivityQueryArgs(ActivityFilterArgs, PaginationArgs):
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")),
                           metadata={"description": "csv: every matching record as a CSV download (no paging)"})


class ActivityRecordSchema(CamelSchema):
    id = fields.UUID()
    actor_id = fields.UUID(attribute="actor_user_id", allow_none=True)
    actor_email = fields.Function(lambda row: row.actor.email if row.actor else None)
    actor_api_key_id = fields.UUID(allow_none=True)
    action = fields.String()
    entity_type = fields.String()
    entity_id = fields.String(allow_none=True)
    details = fields.Dict()
    ip_address = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    created_at = Timestamp()


ActivityPageSchema = page_schema("ActivityPageSchema", "records", ActivityRecordSchema)


class ActionCountSchema(CamelSchema):
    action = fields.String()
    count = fields.Integer()


class DayCountSchema(CamelSchema):
    day = fields.String(metadata={"description": "YYYY-MM-DD (UTC)"})
    count = fields.Integer()


class ActivityStatsSchema(CamelSchema):
    total = fields.Integer()
    since = Timestamp(allow_none=True)
    until = Timestamp(allow_none=True)
    by_action = fields.List(fields.Nested(ActionCountSchema))
    by_day = fields.List(fields.Nested(DayCountSchema))
