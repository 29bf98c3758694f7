"""Request schemas for organizations, structure, shares and API keys (camelCase on the wire)."""
from __future__ import annotations

from datetime import timezone

from marshmallow import fields, validate

from app.http.schemas import CamelSchema
from app.models.accounts import ROLES
from app.models.orgs import SHARE_PERMISSIONS, SHARE_TARGETS, UNIT_TYPES


class OrgCreateSchema(CamelSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))


class OrgUpdateSchema(CamelSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))


class MemberAddSchema(CamelSchema):
    email = fields.String(required=True, validate=validate.Length(min=3, max=255))
    role = fields.String(load_default="member", validate=validate.OneOf(ROLES))


class MemberUpdateSchema(CamelSchema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class InviteCreateSchema(CamelSchema):
    email = fields.String(required=True, validate=validate.Length(min=3, max=255))
    role = fields.String(load_default="member", validate=validate.OneOf(ROLES))


class UnitCreateSchema(CamelSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    type = fields.String(load_default="department", validate=validate.OneOf(UNIT_TYPES))
    description = fields.String(load_default="", validate=validate.Length(max=2000))


class UnitUpdateSchema(CamelSchema):
    name = fields.String(validate=validate.Length(min=1, max=120))
    type = fields.String(validate=validate.OneOf(UNIT_TYPES))
    description = fields.String(validate=validate.Length(max=2000))


class NamedCreateSchema(CamelSchema):
    """Teams and groups."""
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    description = fields.String(load_default="", validate=validate.Length(max=2000))


class NamedUpdateSchema(CamelSchema):
    name = fields.String(validate=validate.Length(min=1, max=120))
    description = fields.String(validate=validate.Length(max=2000))


class StructureMemberSchema(CamelSchema):
    user_id = fields.UUID(required=True)


class ShareCreateSchema(CamelSchema):
    target_type = fields.String(required=True, validate=validate.OneOf(SHARE_TARGETS))
    # Optional for targetType "organization" (the conversation's own org is the only valid target).
    target_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    permission = fields.String(load_default="view", validate=validate.OneOf(SHARE_PERMISSIONS))


class ApiKeyCreateSchema(CamelSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    description = fields.String(load_default="", validate=validate.Length(max=2000))
    # Validated by the service so an unknown scope is named in the error.
    scopes = fields.List(fields.String(validate=validate.Length(max=64)), required=True)
    expires_at = fields.AwareDateTime(load_default=None, allow_none=True, default_timezone=timezone.utc)


class ApiKeyUpdateSchema(CamelSchema):
    name = fields.String(validate=validate.Length(min=1, max=120))
    description = fields.String(validate=validate.Length(max=2000))
    scopes = fields.List(fields.String(validate=validate.Length(max=64)))
    active = fields.Boolean()
    expires_at = fields.AwareDateTime(allow_none=True, default_timezone=timezone.utc)


class RotateSchema(CamelSchema):
    grace_hours = fields.Float(load_default=24, validate=validate.Range(min=0, max=720))
