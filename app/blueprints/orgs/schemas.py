"""Schemas for organizations, structure, shares and API keys (camelCase on the wire)."""
from __future__ import annotations

from datetime import timezone
from typing import NamedTuple

from marshmallow import fields, validate

from app.http.schemas import CamelSchema, PageSchema, Timestamp, page_schema
from app.models.base import utcnow
from app.models.accounts import ROLES
from app.models.orgs import SHARE_PERMISSIONS, SHARE_TARGETS, UNIT_TYPES
from app.services import apikeys, orgs, sharing
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


# ---- output: dumped straight from the models ------------------------------------------------------

class OrgRole(NamedTuple):
    """An organization with the caller's role there: what a Membership row is for a person."""

    org: object
    role: str


class OrgSchema(CamelSchema):
    """Dumps a Membership, or an OrgRole (an API key's org and the role its scopes give)."""

    id = fields.UUID(attribute="org.id")
    name = fields.String(attribute="org.name")
    slug = fields.String(attribute="org.slug")
    personal = fields.Boolean(attribute="org.personal")
    plan = fields.String(attribute="org.plan")
    role = fields.String(metadata={"enum": list(ROLES), "description": "The caller's role in the organization"})
    created_at = Timestamp(attribute="org.created_at")


class OrgDetailSchema(OrgSchema):
    member_count = fields.Function(lambda row: len(orgs.members(row.org)), metadata={"type": "integer"})


OrgPageSchema = page_schema("OrgPageSchema", "organizations", OrgSchema)


class UserRefSchema(CamelSchema):
    """A row that links a user (a membership): the user's id, e-mail and name."""

    user_id = fields.UUID()
    email = fields.String(attribute="user.email")
    name = fields.String(attribute="user.name")


class MemberSchema(UserRefSchema):
    role = fields.String(metadata={"enum": list(ROLES)})
    joined_at = Timestamp(attribute="created_at")


MemberPageSchema = page_schema("MemberPageSchema", "members", MemberSchema)


class InviteSchema(CamelSchema):
    id = fields.UUID()
    email = fields.String()
    role = fields.String(metadata={"enum": list(ROLES)})
    status = fields.Function(lambda row: row.state_at(utcnow()),
                             metadata={"type": "string", "enum": ["pending", "accepted", "revoked", "expired"]})
    invited_by_id = fields.UUID(allow_none=True)
    expires_at = Timestamp()
    created_at = Timestamp()
    accepted_at = Timestamp(allow_none=True)


InvitePageSchema = page_schema("InvitePageSchema", "invites", InviteSchema)


class InviteAcceptedSchema(CamelSchema):
    """The organization joined (the new Membership) and the role."""

    organization = fields.Nested(OrgSchema)
    role = fields.String(metadata={"enum": list(ROLES)})


class StructureSchema(CamelSchema):
    """What units, teams and groups have in common."""

    id = fields.UUID()
    org_id = fields.UUID()
    name = fields.String()
    description = fields.String()
    created_at = Timestamp()
    updated_at = Timestamp()
    member_count = fields.Function(lambda row: len(row.members), metadata={"type": "integer"})


class UnitSchema(StructureSchema):
    type = fields.String(metadata={"enum": list(UNIT_TYPES)})
    team_count = fields.Function(lambda row: len(row.teams), metadata={"type": "integer"})


class TeamSchema(StructureSchema):
    unit_id = fields.UUID()


class GroupSchema(StructureSchema):
    pass


UnitPageSchema = page_schema("UnitPageSchema", "units", UnitSchema)


TeamPageSchema = page_schema("TeamPageSchema", "teams", TeamSchema)


GroupPageSchema = page_schema("GroupPageSchema", "groups", GroupSchema)


class StructureMembershipSchema(UserRefSchema):
    """A user in a unit, team or group."""

    added_at = Timestamp(attribute="created_at")


StructureMembershipPageSchema = page_schema("StructureMembershipPageSchema", "members",
                                            StructureMembershipSchema)


class ShareSchema(CamelSchema):
    id = fields.UUID()
    conversation_id = fields.UUID()
    target_type = fields.String(metadata={"enum": list(SHARE_TARGETS)})
    target_id = fields.UUID()
    target_name = fields.Function(sharing.target_label, metadata={"type": "string"})
    permission = fields.String(metadata={"enum": list(SHARE_PERMISSIONS)})
    created_by_id = fields.UUID(allow_none=True)
    created_at = Timestamp()


class ShareListSchema(CamelSchema):
    shares = fields.List(fields.Nested(ShareSchema))


class ApiKeySchema(CamelSchema):
    """A key as listed and read: never its secret."""

    id = fields.UUID()
    org_id = fields.UUID()
    name = fields.String()
    description = fields.String()
    prefix = fields.Function(lambda key: f"{apikeys.KEY_PREFIX}{key.prefix}", metadata={
        "type": "string", "description": "The first characters of the key, to recognize it"})
    last_four = fields.String()
    scopes = fields.List(fields.String(metadata={"enum": list(SCOPES)}))
    active = fields.Boolean()
    status = fields.Function(lambda key: apikeys.key_status(key), metadata={
        "type": "string", "enum": ["active", "inactive", "rotating", "rotated", "expired", "revoked"]})
    expires_at = Timestamp(allow_none=True)
    revoked_at = Timestamp(allow_none=True)
    last_used_at = Timestamp(allow_none=True)
    grace_until = Timestamp(allow_none=True)
    replaced_by_id = fields.UUID(allow_none=True)
    created_by_id = fields.UUID(allow_none=True)
    created_at = Timestamp()


class ApiKeySecretSchema(ApiKeySchema):
    """The create answer (the key Augmented with its `secret`): the only time the secret is shown."""

    key = fields.String(attribute="secret",
                        metadata={"description": "The secret; store it now, it is never shown again"})


class ApiKeyReplacementSchema(ApiKeySecretSchema):
    """The rotate and roll answers: the new key with its secret, and the old key as it is now."""

    previous = fields.Nested(ApiKeySchema)


ApiKeyPageSchema = page_schema("ApiKeyPageSchema", "apiKeys", ApiKeySchema)


class ApiKeyUsageSchema(CamelSchema):
    id = fields.UUID()
    time = Timestamp(attribute="at")
    method = fields.String()
    path = fields.String()
    status = fields.Integer()
    ip_address = fields.String(allow_none=True)


class ApiKeyUsagePageSchema(PageSchema):
    usage = fields.List(fields.Nested(ApiKeyUsageSchema))
    last_used_at = Timestamp(allow_none=True)
