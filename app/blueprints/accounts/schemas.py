from __future__ import annotations

from marshmallow import fields, validate

from app.http.schemas import CamelSchema


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
    id = fields.UUID()
    name = fields.String()
    role = fields.String()
    personal = fields.Boolean()


class UserSchema(CamelSchema):
    id = fields.UUID()
    email = fields.String()
    name = fields.String()
    totp_enabled = fields.Boolean()
    default_org_id = fields.UUID(allow_none=True)
    created_at = fields.DateTime(format="iso")
    organizations = fields.List(fields.Nested(OrgRefSchema))


class TokenSchema(CamelSchema):
    token = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(UserSchema)


class TotpSetupSchema(CamelSchema):
    secret = fields.String()
    otpauth_url = fields.String()
    qr_svg = fields.String()
