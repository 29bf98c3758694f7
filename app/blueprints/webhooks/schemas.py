"""Webhook endpoints, deliveries and attempts on the wire (the schemas dump the models)."""
from __future__ import annotations

from marshmallow import fields, validate

from app.http.schemas import CamelSchema, PaginationArgs, Timestamp, page_schema
from app.models.webhooks import DELIVERY_STATUSES, WEBHOOK_EVENTS


class WebhookCreateSchema(CamelSchema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    events = fields.List(fields.String(validate=validate.OneOf(WEBHOOK_EVENTS)), required=True,
                         validate=validate.Length(min=1))
    description = fields.String(load_default="", validate=validate.Length(max=255))


class WebhookUpdateSchema(CamelSchema):
    url = fields.String(validate=validate.Length(min=1, max=2048))
    events = fields.List(fields.String(validate=validate.OneOf(WEBHOOK_EVENTS)), validate=validate.Length(min=1))
    description = fields.String(validate=validate.Length(max=255))
    active = fields.Boolean(metadata={"description": "false switches the endpoint off; true back on (failure streak reset)"})


class WebhookSchema(CamelSchema):
    id = fields.UUID()
    org_id = fields.UUID()
    url = fields.String()
    description = fields.String()
    events = fields.List(fields.String())
    active = fields.Boolean()
    disabled_reason = fields.String(allow_none=True)
    disabled_at = Timestamp(allow_none=True)
    failing_since = Timestamp(allow_none=True)
    consecutive_failures = fields.Integer()
    created_by_id = fields.UUID(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()


class WebhookSecretSchema(WebhookSchema):
    secret = fields.String(metadata={"description": "Standard Webhooks signing secret (whsec_...), shown this once"})


WebhookPageSchema = page_schema("WebhookPageSchema", "webhooks", WebhookSchema)


class WebhookAttemptSchema(CamelSchema):
    number = fields.Integer()
    url = fields.String()
    request_headers = fields.Dict(keys=fields.String(), values=fields.String())
    request_body = fields.String()
    response_status = fields.Integer(allow_none=True)
    response_headers = fields.Dict(keys=fields.String(), values=fields.String())
    response_excerpt = fields.String(allow_none=True, metadata={"description": "The first 2 KiB of the answer"})
    error = fields.String(allow_none=True)
    succeeded = fields.Boolean()
    duration_ms = fields.Integer()
    created_at = Timestamp()


class WebhookDeliverySchema(CamelSchema):
    id = fields.UUID()
    webhook_id = fields.UUID(attribute="endpoint_id")
    event_id = fields.UUID(allow_none=True)
    event_type = fields.String()
    message_id = fields.String(metadata={"description": "The webhook-id header: the same on every try"})
    status = fields.String(metadata={"enum": list(DELIVERY_STATUSES)})
    automatic = fields.Boolean(metadata={"description": "false for a ping or a redelivery (one try, no retries)"})
    attempt_count = fields.Integer()
    next_attempt_at = Timestamp(allow_none=True)
    last_attempt_at = Timestamp(allow_none=True)
    created_at = Timestamp()
    payload = fields.Dict()
    attempts = fields.List(fields.Nested(WebhookAttemptSchema))


WebhookDeliveryPageSchema = page_schema("WebhookDeliveryPageSchema", "deliveries", WebhookDeliverySchema)


class WebhookDeliveryQueryArgs(PaginationArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(DELIVERY_STATUSES))
