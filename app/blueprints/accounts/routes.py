"""Auth API (API.md, Auth): register, token/login, logout, me, password reset, TOTP."""
from __future__ import annotations

from flask import current_app, request, url_for
from flask_limiter.util import get_remote_address

from app.extensions import db, limiter, redis
from app.http.auth import current_actor, current_principal, user_required
from app.http.blueprint import ApiBlueprint
from app.services import accounts, tokens
from app.services.errors import Unauthorized

from .schemas import (ForgotPasswordSchema, LoginSchema, LogoutResultSchema, LogoutSchema, PasswordStatusSchema,
                      RegisterSchema, ResetPasswordSchema, TokenResponseSchema, TotpCodeSchema, TotpDisableSchema,
                      TotpSetupSchema, TotpStateSchema, UserSchema)

blp = ApiBlueprint("auth", __name__, url_prefix="/api/auth", description="Accounts and tokens")


def _token_answer(user) -> dict:
    """What TokenResponseSchema dumps (it also writes the legacy `expires_in`)."""
    token, expires_in = tokens.issue(current_app.config, redis.client, user.id, user.default_org_id)
    return {"token": token, "expires_in": expires_in, "user": user}


def _login_account_key() -> str:
    data = request.get_json(silent=True) or {}
    email = data.get("email") if isinstance(data, dict) else None
    return f"login-account:{str(email or '').strip().lower()}"


def _login_limits(fn):
    fn = limiter.limit(lambda: current_app.config["KILN_LOGIN_LIMIT_IP"], key_func=get_remote_address,
                       scope="login-ip")(fn)
    return limiter.limit(lambda: current_app.config["KILN_LOGIN_LIMIT_ACCOUNT"], key_func=_login_account_key,
                         scope="login-account")(fn)


@blp.route("/register", methods=["POST"])
@blp.doc(security=[])
@blp.arguments(RegisterSchema)
@blp.response(201, TokenResponseSchema, description="The new user, their token, and its lifetime",
              errors=(400, 403, 409))
@limiter.limit(lambda: current_app.config["KILN_LOGIN_LIMIT_IP"], key_func=get_remote_address, scope="register-ip")
def register(data):
    """Create an account (and its personal organization)."""
    user = accounts.register_user(data["email"], data["password"], data["name"], actor=current_actor())
    db.session.commit()
    return _token_answer(user), 201


@blp.route("/token", methods=["POST"])
@blp.route("/login", methods=["POST"], endpoint="login")
@blp.doc(security=[])
@blp.arguments(LoginSchema)
@blp.response(200, TokenResponseSchema, description="A bearer token for the API", errors=(400, 401, 429))
@_login_limits
def token(data):
    """Exchange email + password (+ TOTP code) for a bearer token (/auth/login is the same)."""
    user = accounts.authenticate(data["email"], data["password"], data.get("totp_code"), actor=current_actor())
    db.session.commit()
    return _token_answer(user)


@blp.route("/logout", methods=["POST"])
@blp.arguments(LogoutSchema(partial=True), required=False)
@blp.response(200, LogoutResultSchema, description="The token is revoked", errors=(401,))
def logout(data=None):
    """Revoke the bearer token (or every token of the user with allDevices)."""
    principal = current_principal()
    if principal.via != "jwt":
        raise Unauthorized("Log out with the bearer token you want to revoke")
    tokens.revoke(redis.client, principal.claims)
    if (data or {}).get("all_devices"):
        tokens.revoke_all(redis.client, principal.user.id)
    return {"status": "logged_out", "all_devices": bool((data or {}).get("all_devices"))}


@blp.route("/me")
@blp.response(200, UserSchema, errors=(401,))
@user_required
def me():
    """The authenticated user and their organizations."""
    return current_principal().user


@blp.route("/forgot-password", methods=["POST"])
@blp.doc(security=[])
@blp.arguments(ForgotPasswordSchema)
@blp.response(200, PasswordStatusSchema, description="Always 200, whether or not the address exists")
@limiter.limit(lambda: current_app.config["KILN_LOGIN_LIMIT_IP"], key_func=get_remote_address, scope="forgot-ip")
def forgot_password(data):
    """Mail a password reset link (SMTP, or instance/outbox/ when no SMTP is configured)."""
    accounts.request_password_reset(current_app.config, data["email"],
                                     lambda t: url_for("accounts.reset_page", token=t, _external=True))
    db.session.commit()
    return {"status": "ok", "message": "If that address has an account, a reset link is on its way."}


@blp.route("/reset-password", methods=["POST"])
@blp.doc(security=[])
@blp.arguments(ResetPasswordSchema)
@blp.response(200, PasswordStatusSchema, description="The password is changed", errors=(400,))
def reset_password(data):
    """Set a new password with the token from the reset mail."""
    user = accounts.reset_password(current_app.config, data["token"], data["password"])
    tokens.revoke_all(redis.client, user.id)
    db.session.commit()
    return {"status": "ok"}


@blp.route("/totp/setup", methods=["POST"])
@blp.response(200, TotpSetupSchema, errors=(401, 409))
@user_required
def totp_setup():
    """Start two-factor setup: a secret, its otpauth:// URL and a QR code (SVG)."""
    from app.services.qr import qr_svg

    user = current_principal().user
    data = accounts.totp_begin(user)
    db.session.commit()
    return {"secret": data["secret"], "otpauth_url": data["otpauthUrl"], "qr_svg": qr_svg(data["otpauthUrl"])}


@blp.route("/totp/enable", methods=["POST"])
@blp.arguments(TotpCodeSchema)
@blp.response(200, TotpStateSchema, description="Two-factor authentication is on", errors=(400, 401, 409))
@user_required
def totp_enable(data):
    """Confirm setup with a current code from the authenticator."""
    accounts.totp_enable(current_principal().user, data["code"])
    db.session.commit()
    return {"totp_enabled": True}


@blp.route("/totp/disable", methods=["POST"])
@blp.arguments(TotpDisableSchema)
@blp.response(200, TotpStateSchema, description="Two-factor authentication is off", errors=(400, 401, 409))
@user_required
def totp_disable(data):
    """Turn two-factor off (password and a current code required)."""
    accounts.totp_disable(current_principal().user, data["password"], data["code"])
    db.session.commit()
    return {"totp_enabled": False}


api_blueprints = [blp]
