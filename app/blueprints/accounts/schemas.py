from __future__ import annotations

from marshmallow import fields, validate

from app.http.schemas import CamelSchema, Timestamp
from app.services import accounts


class RegisterSchema(CamelSchema):
    email = fields.String(required=True, validate=validate.Length(min=3, max=255))
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=1024))
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))


class LoginSchema(CamelSchema):
    email = fields.String(required=True, validate=validate.Length(max=255))
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=1024))
    totp_code = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=12))


class LogoutSchema(CamelSchema):
    all_devices = fields.Boolean(load_default=False)


class ForgotPasswordSchema(CamelSchema):
    email = fields.String(required=True, validate=validate.Length(max=255))


class ResetPasswordSchema(CamelSchema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=1024))


class TotpCodeSchema(CamelSchema):
    code = fields.String(required=True, validate=validate.Length(min=6, max=12))


class TotpDisableSchema(CamelSchema):
    password = fields.String(required=True, load_only=True)
    code = fields.String(required=True, validate=validate.Length(min=6, max=12))


class OrgRefSchema(CamelSchema):
    """Dumps a Membership: the organization, and the user's role there."""

    id = fields.UUID(attribute="org.id")
    name = fields.String(attribute="org.name")
    role = fields.String()
    personal = fields.Boolean(attribute="org.personal")


class UserSchema(CamelSchema):
    id = fields.UUID()
    email = fields.String()
    name = fields.String()
    totp_enabled = fields.Boolean()
    is_site_admin = fields.Boolean()
    default_org_id = fields.UUID(allow_none=True)
    created_at = Timestamp()
    organizations = fields.List(fields.Nested(OrgRefSchema))

    def get_attribute(self, obj, attr, default):
        if attr == "organizations":  # the live memberships (deleted organizations left out), not a column
            return accounts.memberships_of(obj)
        return super().get_attribute(obj, attr, default)


class TokenSchema(CamelSchema):
    """Dumps {"token", "expires_in", "user": a User}."""

    token = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(UserSchema)


class TokenResponseSchema(TokenSchema):
    """The token answer; `expires_in` repeats expiresIn for clients written against the OpenFactory docs."""

    expires_in_legacy = fields.Function(lambda body: body["expires_in"], data_key="expires_in",
                                        metadata={"type": "integer", "description": "Same as expiresIn"})

    def on_bind_field(self, field_name, field_obj):
        if field_name != "expires_in_legacy":
            super().on_bind_field(field_name, field_obj)


class LogoutResultSchema(CamelSchema):
    status = fields.String(metadata={"enum": ["logged_out"]})
    all_devices = fields.Boolean()


class PasswordStatusSchema(CamelSchema):
    status = fields.String(metadata={"enum": ["ok"]})
    message = fields.String()


class TotpStateSchema(CamelSchema):
    totp_enabled = fields.Boolean()


class TotpSetupSchema(CamelSchema):
    secret = fields.String()
    otpauth_url = fields.String()
    qr_svg = fields.String()
