"""API key secrets: generation and verification. The key lifecycle (create/rotate/roll/revoke) builds on these."""
from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select

from app.extensions import db
from app.models.apikeys import ApiKey
from app.models.base import utcnow

KEY_PREFIX = "kiln_"
LOOKUP_LEN = 12


def generate_secret() -> tuple[str, str, str, str]:
    """(raw key, lookup prefix, sha256 hash, last four). 256 bits of entropy after the prefix."""
    lookup = secrets.token_hex(LOOKUP_LEN // 2)
    raw = f"{KEY_PREFIX}{lookup}{secrets.token_urlsafe(32)}"
    return raw, lookup, hash_secret(raw), raw[-4:]


def hash_secret(raw: str) -> str:
    # The key carries 256 random bits, so a plain SHA-256 is a sound, fast verifier (no stretching needed).
    return hashlib.sha256(raw.encode()).hexdigest()


def find_key(raw: str) -> ApiKey | None:
    """The active key for this raw secret, or None. Constant-time comparison of the hash."""
    if not raw or not raw.startswith(KEY_PREFIX) or len(raw) < len(KEY_PREFIX) + LOOKUP_LEN + 8:
        return None
    lookup = raw[len(KEY_PREFIX):len(KEY_PREFIX) + LOOKUP_LEN]
    key = db.session.scalar(select(ApiKey).where(ApiKey.prefix == lookup))
    if key is None or not hmac.compare_digest(key.key_hash, hash_secret(raw)):
        return None
    if not key.usable_at(utcnow()):
        return None
    return key


# Lifecycle -----------------------------------------------------------------------------------------
# Services take the actor and org explicitly, flush but never commit, and audit every change.

def _scopes(scopes) -> list[str]:
    from app.services.errors import ValidationFailed
    from app.services.permissions import SCOPES

    if scopes is None:
        raise ValidationFailed("scopes: at least one scope is required", {"scopes": ["Required."]})
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValidationFailed(f"scopes: unknown scope {', '.join(repr(s) for s in unknown)} "
                               f"(known: {', '.join(SCOPES)})", {"scopes": [f"Unknown scope: {s}." for s in unknown]})
    if not scopes:
        raise ValidationFailed("scopes: at least one scope is required", {"scopes": ["At least one scope."]})
    return sorted(set(scopes))


def _text(value, field: str, *, required: bool, limit: int) -> str:
    from app.services.errors import ValidationFailed

    value = (value or "").strip()
    if required and not value:
        raise ValidationFailed(f"{field}: must not be empty", {field: ["Must not be empty."]})
    if len(value) > limit:
        raise ValidationFailed(f"{field}: at most {limit} characters", {field: [f"At most {limit} characters."]})
    return value


def _expiry(expires_at):
    from app.services.errors import ValidationFailed

    if expires_at is not None:
        if expires_at.tzinfo is None:
            from datetime import timezone

            expires_at = expires_at.replace(tzinfo=timezone.utc)
        if expires_at <= utcnow():
            raise ValidationFailed("expiresAt: must be in the future", {"expiresAt": ["Must be in the future."]})
    return expires_at


def _new_row(org_id, created_by_id, name, description, scopes, expires_at) -> tuple[ApiKey, str]:
    raw, lookup, digest, last_four = generate_secret()
    key = ApiKey(org_id=org_id, created_by_id=created_by_id, name=name, description=description, prefix=lookup,
                 key_hash=digest, last_four=last_four, scopes=scopes, active=True, expires_at=expires_at)
    db.session.add(key)
    db.session.flush()
    return key, raw


def create_key(actor, org, *, name: str, description: str | None = None, scopes=None, expires_at=None
               ) -> tuple[ApiKey, str]:
    """A new key; the raw secret is returned here and never again."""
    from app.services import audit
    from app.services.billing import quotas

    quotas.check_api_key_add(org)
    key, raw = _new_row(org.id, actor.user_id, _text(name, "name", required=True, limit=120),
                        _text(description, "description", required=False, limit=2000), _scopes(scopes),
                        _expiry(expires_at))
    audit.record(actor, "api_key.created", "api_key", key.id, org_id=org.id, name=key.name, scopes=key.scopes)
    return key, raw


def keys_of(org):
    return select(ApiKey).where(ApiKey.org_id == org.id).order_by(ApiKey.created_at.desc())


def get_key(org, key_id) -> ApiKey:
    return ApiKey.get_for_org(org.id, key_id)


def key_status(key: ApiKey, now=None) -> str:
    now = now or utcnow()
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and now >= key.expires_at:
        return "expired"
    if key.grace_until is not None:
        return "rotating" if now < key.grace_until else "rotated"
    return "active" if key.active else "inactive"


def update_key(actor, key: ApiKey, changes: dict) -> ApiKey:
    from app.services import audit

    if "name" in changes:
        key.name = _text(changes["name"], "name", required=True, limit=120)
    if "description" in changes:
        key.description = _text(changes["description"], "description", required=False, limit=2000)
    if "scopes" in changes:
        key.scopes = _scopes(changes["scopes"])
    if "expires_at" in changes:
        key.expires_at = _expiry(changes["expires_at"])
    if "active" in changes:
        key.active = bool(changes["active"])
    audit.record(actor, "api_key.updated", "api_key", key.id, org_id=key.org_id, changed=sorted(changes))
    return key


def _require_live(key: ApiKey) -> None:
    from app.services.errors import Conflict

    if key.revoked_at is not None:
        raise Conflict("The API key is revoked")
    if key.grace_until is not None:
        raise Conflict("The API key was already rotated; rotate or roll its replacement")


def revoke_key(actor, key: ApiKey) -> ApiKey:
    """Immediate: the next request with this key is refused."""
    from app.services import audit
    from app.services.errors import Conflict

    if key.revoked_at is not None:
        raise Conflict("The API key is already revoked")
    key.revoked_at = utcnow()
    key.active = False
    audit.record(actor, "api_key.revoked", "api_key", key.id, org_id=key.org_id)
    return key


def rotate_key(actor, key: ApiKey, grace_hours: float = 24) -> tuple[ApiKey, str]:
    """A replacement key; the old one keeps working for `grace_hours` so deployments can switch over."""
    from datetime import timedelta

    from app.services import audit
    from app.services.errors import ValidationFailed

    _require_live(key)
    if grace_hours is None or grace_hours < 0 or grace_hours > 720:
        raise ValidationFailed("graceHours: must be between 0 and 720", {"graceHours": ["Between 0 and 720."]})
    new, raw = _new_row(key.org_id, actor.user_id, key.name, key.description, list(key.scopes), key.expires_at)
    key.grace_until = utcnow() + timedelta(hours=grace_hours)
    key.replaced_by_id = new.id
    audit.record(actor, "api_key.rotated", "api_key", key.id, org_id=key.org_id, new_key_id=new.id,
                 grace_until=key.grace_until)
    return new, raw


def roll_key(actor, key: ApiKey) -> tuple[ApiKey, str]:
    """A replacement key; the old one dies now (a leaked key)."""
    from app.services import audit

    _require_live(key)
    new, raw = _new_row(key.org_id, actor.user_id, key.name, key.description, list(key.scopes), key.expires_at)
    key.revoked_at = utcnow()
    key.active = False
    key.replaced_by_id = new.id
    audit.record(actor, "api_key.rolled", "api_key", key.id, org_id=key.org_id, new_key_id=new.id)
    return new, raw


def delete_key(actor, key: ApiKey) -> None:
    from app.services import audit

    audit.record(actor, "api_key.deleted", "api_key", key.id, org_id=key.org_id, name=key.name)
    # Keys that point at this one as their predecessor keep working; only the link goes.
    for other in db.session.scalars(select(ApiKey).where(ApiKey.replaced_by_id == key.id)):
        other.replaced_by_id = None
    db.session.delete(key)
    db.session.flush()


def usage_of(key: ApiKey):
    from app.models.apikeys import ApiKeyUsage

    return select(ApiKeyUsage).where(ApiKeyUsage.api_key_id == key.id).order_by(ApiKeyUsage.at.desc())
