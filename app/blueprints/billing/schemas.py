"""Billing and tokens on the wire (API.md, Billing and usage)."""
from __future__ import annotations

from marshmallow import fields, validate

from app.http.schemas import CamelSchema, PaginationArgs, QueryArgs, Timestamp, page_schema
from app.models.billing import LIMIT_COLUMNS, TOKEN_KINDS

_LIMIT = dict(allow_none=True, validate=validate.Range(min=0))


class TierSchema(CamelSchema):
    name = fields.String()
    display_name = fields.String()
    position = fields.Integer()
    price_cents_month = fields.Integer()
    # Each limit: a number, or null for unlimited.
    builds_per_hour = fields.Integer(allow_none=True)
    builds_per_month = fields.Integer(allow_none=True)
    concurrent_builds = fields.Integer(allow_none=True)
    build_minutes_per_month = fields.Integer(allow_none=True)
    storage_mb = fields.Integer(allow_none=True)
    retention_days = fields.Integer(allow_none=True)
    members = fields.Integer(allow_none=True)
    api_keys = fields.Integer(allow_none=True)
    webhooks = fields.Integer(allow_none=True)
    llm_tokens_per_month = fields.Integer(allow_none=True)
    api_requests_per_minute = fields.Integer(allow_none=True)
    owned_orgs = fields.Integer(allow_none=True)


assert all(name in TierSchema._declared_fields for name in LIMIT_COLUMNS)


class TierListSchema(CamelSchema):
    tiers = fields.List(fields.Nested(TierSchema))


class TierUpdateSchema(CamelSchema):
    """Any of a tier's limits (null: unlimited) and its wording; what is left out stays."""

    display_name = fields.String(validate=validate.Length(min=1, max=64))
    position = fields.Integer(validate=validate.Range(min=0, max=1000))
    price_cents_month = fields.Integer(validate=validate.Range(min=0, max=100_000_000))
    builds_per_hour = fields.Integer(**_LIMIT)
    builds_per_month = fields.Integer(**_LIMIT)
    concurrent_builds = fields.Integer(**_LIMIT)
    build_minutes_per_month = fields.Integer(**_LIMIT)
    storage_mb = fields.Integer(**_LIMIT)
    retention_days = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    members = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    api_keys = fields.Integer(**_LIMIT)
    webhooks = fields.Integer(**_LIMIT)
    llm_tokens_per_month = fields.Integer(**_LIMIT)
    api_requests_per_minute = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    owned_orgs = fields.Integer(allow_none=True, validate=validate.Range(min=1))


class TierChoiceSchema(CamelSchema):
    tier = fields.String(required=True, validate=validate.Length(min=1, max=32))
    org_id = fields.UUID(load_default=None, metadata={
        "description": "Site administrators: the organization to change (default: the tenant)"})


class SubscriptionSchema(CamelSchema):
    org_id = fields.UUID()
    tier = fields.Nested(TierSchema)
    status = fields.String()
    current_period_start = Timestamp()
    current_period_end = Timestamp()
    managed_by = fields.String(metadata={"description": "site-admin: plans change through this Kiln's admins; "
                                                        "stripe: through the org's Stripe subscription"})


class LimitUseSchema(CamelSchema):
    key = fields.String()
    label = fields.String()
    unit = fields.String()
    limit = fields.Integer(allow_none=True, metadata={"description": "null: unlimited"})
    used = fields.Float()
    percentage = fields.Float(allow_none=True)
    state = fields.String(metadata={"description": "ok | warning (80% or more) | exceeded (100% or more)"})


class PlanSummarySchema(CamelSchema):
    tier = fields.Nested(TierSchema)
    period_start = Timestamp()
    period_end = Timestamp()
    limits = fields.List(fields.Nested(LimitUseSchema))
    token_balance = fields.Integer()


class UsageSchema(CamelSchema):
    tier = fields.String()
    period_start = Timestamp()
    period_end = Timestamp()
    usage = fields.Dict(keys=fields.String(), values=fields.Float(),
                        metadata={"description": "current use per limit key (camelCase)"})
    limits = fields.Dict(keys=fields.String(), values=fields.Integer(allow_none=True),
                         metadata={"description": "the tier's limit per key; null: unlimited"})


class ViolationSchema(CamelSchema):
    limit = fields.String()
    label = fields.String()
    current = fields.Float()
    allowed = fields.Integer()


class DowngradeCheckSchema(CamelSchema):
    tier = fields.String()
    allowed = fields.Boolean()
    violations = fields.List(fields.Nested(ViolationSchema))


class TokenBalanceSchema(CamelSchema):
    org_id = fields.UUID()
    balance = fields.Integer()
    monthly_grant = fields.Integer(allow_none=True, metadata={"description": "null: unlimited tier"})
    used_this_period = fields.Integer()
    period_start = Timestamp()
    period_end = Timestamp()


class TokenTransactionSchema(CamelSchema):
    id = fields.UUID()
    kind = fields.String()
    amount = fields.Integer(metadata={"description": "positive: grant, refund, purchase; negative: consume, expiry"})
    reason = fields.String()
    reference = fields.String(allow_none=True)
    created_by_id = fields.UUID(allow_none=True)
    created_at = Timestamp()


TokenTransactionPageSchema = page_schema("TokenTransactionPageSchema", "transactions", TokenTransactionSchema)


class TokenTransactionQueryArgs(PaginationArgs):
    kind = fields.String(load_default=None, validate=validate.OneOf(TOKEN_KINDS))


class CheckoutSchema(CamelSchema):
    tier = fields.String(required=True, validate=validate.Length(min=1, max=32),
                         metadata={"description": "A tier sold through Stripe (KILN_STRIPE_PRICES)"})


class SessionUrlSchema(CamelSchema):
    url = fields.String(metadata={"description": "Stripe's page to send the browser to"})


class WebhookResultSchema(CamelSchema):
    received = fields.Boolean()
    duplicate = fields.Boolean(metadata={"description": "The event was applied before: nothing changed"})
    applied = fields.Boolean(metadata={"description": "The event changed the organization's billing state"})
