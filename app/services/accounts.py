"""Accounts: registration, credentials, password reset, two-factor. Plain functions; the caller commits."""
from __future__ import annotations

import hmac
import re
import secrets
import time

import pyotp
from flask import current_app
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import or_, select, update

from app.extensions import db
from app.models import Membership, Organization, User
from app.models.base import utcnow
from app.services import audit
from app.services.audit import Actor
from app.services.billing import quotas
from app.services.errors import Conflict, Forbidden, Unauthorized, ValidationFailed

# argon2id with the library's RFC 9106 "low memory" defaults; tests configure cheaper parameters.
_hasher = PasswordHasher()
# Verifying against this keeps unknown-email logins as slow as wrong-password ones.
_DUMMY_HASH = _hasher.hash("kiln-timing-equalizer")


def configure_hasher(time_cost: int | None = None, memory_cost: int | None = None, parallelism: int | None = None) -> None:
    global _hasher, _DUMMY_HASH
    if not any((time_cost, memory_cost, parallelism)):
        return
    default = PasswordHasher()
    _hasher = PasswordHasher(time_cost=time_cost or default.time_cost, memory_cost=memory_cost or default.memory_cost,
                             parallelism=parallelism or default.parallelism)
    _DUMMY_HASH = _hasher.hash("kiln-timing-equalizer")
MIN_PASSWORD = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(user: User | None, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


def normalize_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(f"email: {exc}", {"email": [str(exc)]}) from exc


def check_password_strength(password: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(
            f"{field}: must be at least {MIN_PASSWORD} characters",
            {field: [f"Must be at least {MIN_PASSWORD} characters."]},
        )


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "org"
    return f"{slug}-{secrets.token_hex(3)}"


def create_organization(actor: Actor, name: str, *, owner: User, personal: bool = False) -> Organization:
    plan = current_app.config["KILN_DEFAULT_TIER"]
    if not personal:
        quotas.check_org_create(owner.id, plan)
    org = Organization(name=name.strip(), slug=slugify(name), personal=personal, plan=plan)
    db.session.add(org)
    db.session.flush()
    db.session.add(Membership(org_id=org.id, user_id=owner.id, role="owner"))
    audit.record(actor, "organization.created", "organization", org.id, org_id=org.id, name=org.name, personal=personal)
    return org


def signup_refusal(invited: bool = False) -> str | None:
    """Why this instance's sign-up setting (KILN_SIGNUP) refuses a new account, or None."""
    mode = current_app.config.get("KILN_SIGNUP", "open")
    if mode == "closed":
        return "Sign-up is closed on this Kiln; ask its administrator for an account."
    if mode == "invite" and not invited:
        return "Sign-up is by invitation only on this Kiln; accept an invitation from an organization to join."
    return None


def register_user(email: str, password: str, name: str, *, actor: Actor | None = None,
                  invited: bool = False) -> User:
    refusal = signup_refusal(invited)
    if refusal:
        raise Forbidden(refusal)
    email = normalize_email(email)
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("name: must not be empty", {"name": ["Must not be empty."]})
    check_password_strength(password)
    if User.by_email(email):
        raise Conflict(f"An account with the email {email} already exists", {"email": ["Already registered."]})
    # The first account of a fresh install runs the site (operations pages, /metrics, backups).
    first = db.session.scalar(select(User.id).limit(1)) is None
    user = User(email=email, name=name[:120], password_hash=hash_password(password), is_site_admin=first)
    db.session.add(user)
    db.session.flush()
    actor = actor or Actor()
    actor.user = actor.user or user
    org = create_organization(actor, f"{name}'s workspace", owner=user, personal=True)
    user.default_org_id = org.id
    audit.record(actor, "user.registered", "user", user.id, org_id=org.id, email=email)
    return user


def authenticate(email: str, password: str, totp_code: str | None = None, *, actor: Actor | None = None) -> User:
    """The user for these credentials, or Unauthorized. A second factor is demanded when enabled."""
    user = User.by_email(email or "")
    if not check_password(user, password or ""):
        raise Unauthorized("Invalid email or password")
    if not user.is_active:
        raise Unauthorized("This account is disabled")
    if user.totp_enabled:
        if not totp_code:
            raise Unauthorized("A two-factor code is required", {"totpCode": ["Required for this account."]})
        if not use_totp_code(user, totp_code):
            raise Unauthorized("The two-factor code is not valid", {"totpCode": ["Invalid or already used code."]})
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    audit.record(actor or Actor(user=user), "user.login", "user", user.id, org_id=user.default_org_id)
    return user


def memberships_of(user: User) -> list[Membership]:
    return db.session.scalars(
        select(Membership).join(Organization).where(Membership.user_id == user.id, Organization.deleted_at.is_(None))
        .order_by(Organization.personal.desc(), Organization.name)
    ).all()


# Password reset --------------------------------------------------------------------------------

def _reset_serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="kiln-password-reset")


def _password_fingerprint(user: User) -> str:
    # Part of the token: once the password changes, every earlier link stops working (single use).
    return user.password_fingerprint


def make_reset_token(secret: str, user: User) -> str:
    return _reset_serializer(secret).dumps({"uid": str(user.id), "fp": _password_fingerprint(user)})


def request_password_reset(config: dict, email: str, reset_url_for) -> None:
    """Always silent about whether the address exists."""
    from app.services.mail import send_mail

    user = User.by_email(email or "")
    if user is None or not user.is_active:
        return
    token = make_reset_token(config["SECRET_KEY"], user)
    url = reset_url_for(token)
    send_mail(
        config, user.email, "Reset your Kiln password",
        f"Hello {user.name},\n\nSomeone asked to reset the password of your Kiln account.\n"
        f"Open this link within an hour to choose a new one:\n\n{url}\n\nToken: {token}\n\n"
        "If it wasn't you, ignore this mail; your password stays as it is.\n",
    )
    audit.record(Actor(user=user), "user.password_reset_requested", "user", user.id, org_id=user.default_org_id)


def reset_password(config: dict, token: str, new_password: str) -> User:
    try:
        data = _reset_serializer(config["SECRET_KEY"]).loads(token or "", max_age=config["PASSWORD_RESET_MAX_AGE"])
    except SignatureExpired as exc:
        raise ValidationFailed("token: the reset link has expired", {"token": ["Expired."]}) from exc
    except BadSignature as exc:
        raise ValidationFailed("token: the reset link is not valid", {"token": ["Invalid."]}) from exc
    user = db.session.get(User, _uuid(data.get("uid")))
    if user is None or data.get("fp") != _password_fingerprint(user):
        raise ValidationFailed("token: the reset link has already been used", {"token": ["Already used."]})
    check_password_strength(new_password)
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()
    audit.record(Actor(user=user), "user.password_reset", "user", user.id, org_id=user.default_org_id)
    return user


def change_password(user: User, current: str, new: str) -> None:
    if not check_password(user, current):
        raise ValidationFailed("currentPassword: is not correct", {"currentPassword": ["Not correct."]})
    check_password_strength(new, "newPassword")
    user.password_hash = hash_password(new)
    user.password_changed_at = utcnow()
    audit.record(Actor(user=user), "user.password_changed", "user", user.id, org_id=user.default_org_id)


def update_profile(user: User, name: str) -> None:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("name: must not be empty", {"name": ["Must not be empty."]})
    user.name = name[:120]
    audit.record(Actor(user=user), "user.updated", "user", user.id, org_id=user.default_org_id)


def _uuid(value):
    from app.models.base import parse_uuid

    return parse_uuid(value)


# Two-factor (TOTP) -------------------------------------------------------------------------------

TOTP_WINDOW = 1  # steps of 30 s either side of now: clocks of phones drift


def use_totp_code(user: User, code) -> bool:
    """Accept a code once: it must match a step within the window that is newer than the last one used.

    The step is claimed with one conditional UPDATE, so two logins racing with the same code cannot both win.
    """
    totp = pyotp.TOTP(user.totp_secret)
    code = str(code or "").strip()
    now = int(time.time()) // totp.interval
    for step in range(now - TOTP_WINDOW, now + TOTP_WINDOW + 1):
        if not hmac.compare_digest(totp.generate_otp(step), code):
            continue
        if user.totp_last_step is not None and step <= user.totp_last_step:
            return False
        claimed = db.session.execute(
            update(User).where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
            .values(totp_last_step=step).execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            return False
        user.totp_last_step = step
        return True
    return False


def totp_begin(user: User, issuer: str = "Kiln") -> dict:
    """A fresh secret, kept unconfirmed until a code proves the authenticator has it."""
    if user.totp_enabled:
        raise Conflict("Two-factor authentication is already enabled")
    user.totp_secret = pyotp.random_base32()
    user.totp_last_step = None  # steps used with an earlier secret say nothing about this one
    uri = pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=issuer)
    return {"secret": user.totp_secret, "otpauthUrl": uri}


def totp_enable(user: User, code: str) -> None:
    if user.totp_enabled:
        raise Conflict("Two-factor authentication is already enabled")
    if not user.totp_secret:
        raise Conflict("Start the setup first: no secret has been generated")
    if not use_totp_code(user, code):
        raise ValidationFailed("code: the two-factor code is not valid", {"code": ["Invalid code."]})
    user.totp_enabled = True
    audit.record(Actor(user=user), "user.totp_enabled", "user", user.id, org_id=user.default_org_id)


def totp_disable(user: User, password: str, code: str) -> None:
    if not user.totp_enabled:
        raise Conflict("Two-factor authentication is not enabled")
    if not check_password(user, password or ""):
        raise ValidationFailed("password: is not correct", {"password": ["Not correct."]})
    if not use_totp_code(user, code):
        raise ValidationFailed("code: the two-factor code is not valid", {"code": ["Invalid or already used code."]})
    user.totp_enabled = False
    user.totp_secret = None
    user.totp_last_step = None
    audit.record(Actor(user=user), "user.totp_disabled", "user", user.id, org_id=user.default_org_id)
