"""Schemas for organizations, structure, shares and API keys (camelCase on the wire)."""
from __future__ import annotations

from datetime import timezone

from marshmallow import fields, validate

from app.http.schemas import BodySchema, CamelSchema, PageSchema, Timestamp
from app.models.accounts import ROLES
from app.models.orgs import SHARE_PERMISSIONS, SHARE_TARGETS, UNIT_TYPES
from app.services.permissions import SCOPES


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


# ---- output: the bodies common.py writes, as the OpenAPI document describes them --------------------

class OrgSchema(BodySchema):
    id = fields.UUID()
    name = fields.String()
    slug = fields.String()
    personal = fields.Boolean()
    plan = fields.String()
    role = fields.String(metadata={"enum": list(ROLES), "description": "The caller's role in the organization"})
    created_at = Timestamp()


class OrgDetailSchema(OrgSchema):
    member_count = fields.Integer()


class OrgPageSchema(PageSchema):
    organizations = fields.List(fields.Nested(OrgSchema))


class MemberSchema(BodySchema):
    user_id = fields.UUID()
    email = fields.String()
    name = fields.String()
    role = fields.String(metadata={"enum": list(ROLES)})
    joined_at = Timestamp()


class MemberPageSchema(PageSchema):
    members = fields.List(fields.Nested(MemberSchema))


class InviteSchema(BodySchema):
    id = fields.UUID()
    email = fields.String()
    role = fields.String(metadata={"enum": list(ROLES)})
    status = fields.String(metadata={"enum": ["pending", "accepted", "revoked", "expired"]})
    invited_by_id = fields.UUID(allow_none=True)
    expires_at = Timestamp()
    created_at = Timestamp()
    accepted_at = Timestamp(allow_none=True)


class InvitePageSchema(PageSchema):
    invites = fields.List(fields.Nested(InviteSchema))


class InviteAcceptedSchema(BodySchema):
    organization = fields.Nested(OrgSchema)
    role = fields.String(metadata={"enum": list(ROLES)})


class StructureSchema(BodySchema):
    """What units, teams and groups have in common."""

    id = fields.UUID()
    org_id = fields.UUID()
    name = fields.String()
    description = fields.String()
    created_at = Timestamp()
    updated_at = Timestamp()
    member_count = fields.Integer()


class UnitSchema(StructureSchema):
    type = fields.String(metadata={"enum": list(UNIT_TYPES)})
    team_count = fields.Integer()


class TeamSchema(StructureSchema):
    unit_id = fields.UUID()


class GroupSchema(StructureSchema):
    pass


class UnitPageSchema(PageSchema):
    units = fields.List(fields.Nested(UnitSchema))


class TeamPageSchema(PageSchema):
    teams = fields.List(fields.Nested(TeamSchema))


class GroupPageSchema(PageSchema):
    groups = fields.List(fields.Nested(GroupSchema))


class StructureMembershipSchema(BodySchema):
    """A user in a unit, team or group."""

    user_id = fields.UUID()
    email = fields.String()
    name = fields.String()
    added_at = Timestamp()


class StructureMembershipPageSchema(PageSchema):
    members = fields.List(fields.Nested(StructureMembershipSchema))


class ShareSchema(BodySchema):
    id = fields.UUID()
    conversation_id = fields.UUID()
    target_type = fields.String(metadata={"enum": list(SHARE_TARGETS)})
    target_id = fields.UUID()
    target_name = fields.String()
    permission = fields.String(metadata={"enum": list(SHARE_PERMISSIONS)})
    created_by_id = fields.UUID(allow_none=True)
    created_at = Timestamp()


class ShareListSchema(BodySchema):
    shares = fields.List(fields.Nested(ShareSchema))


class ApiKeySchema(BodySchema):
    """A key as listed and read: never its secret."""

    id = fields.UUID()
    org_id = fields.UUID()
    name = fields.String()
    description = fields.String()
    prefix = fields.String(metadata={"description": "The first characters of the key, to recognize it"})
    last_four = fields.String()
    scopes = fields.List(fields.String(metadata={"enum": list(SCOPES)}))
    active = fields.Boolean()
    status = fields.String(metadata={"enum": ["active", "inactive", "rotating", "rotated", "expired", "revoked"]})
    expires_at = Timestamp(allow_none=True)
    revoked_at = Timestamp(allow_none=True)
    last_used_at = Timestamp(allow_none=True)
    grace_until = Timestamp(allow_none=True)
    replaced_by_id = fields.UUID(allow_none=True)
    created_by_id = fields.UUID(allow_none=True)
    created_at = Timestamp()


class ApiKeySecretSchema(ApiKeySchema):
    """The create answer: the only time the secret is shown."""

    key = fields.String(metadata={"description": "The secret; store it now, it is never shown again"})


class ApiKeyReplacementSchema(ApiKeySecretSchema):
    """The rotate and roll answers: the new key with its secret, and the old key as it is now."""

    previous = fields.Nested(ApiKeySchema)


class ApiKeyPageSchema(PageSchema):
    api_keys = fields.List(fields.Nested(ApiKeySchema))


class ApiKeyUsageSchema(BodySchema):
    id = fields.UUID()
    time = Timestamp()
    method = fields.String()
    path = fields.String()
    status = fields.Integer()
    ip_address = fields.String(allow_none=True)


class ApiKeyUsagePageSchema(PageSchema):
    usage = fields.List(fields.Nested(ApiKeyUsageSchema))
    last_used_at = Timestamp(allow_none=True)
