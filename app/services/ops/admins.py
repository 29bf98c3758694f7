"""Site administrators: granted and revoked from the command line (`flask kiln admin grant|revoke EMAIL`)."""
from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import User
from app.services import audit
from app.services.audit import Actor
from app.services.errors import Conflict, NotFound


def _user(email: str) -> User:
    user = User.by_email(email or "")
    if user is None:
        raise NotFound(f"No account with the email {email!r}")
    return user


def site_admins() -> list[User]:
    return list(db.session.scalars(select(User).where(User.is_site_admin.is_(True)).order_by(User.email)))


def grant_site_admin(actor: Actor, email: str) -> User:
    user = _user(email)
    if not user.is_site_admin:
        user.is_site_admin = True
        audit.record(actor, "site_admin.granted", "user", user.id, email=user.email)
    return user


def revoke_site_admin(actor: Actor, email: str) -> User:
    """Refused for the last one: a site nobody may administer can only be fixed in the database."""
    user = _user(email)
    if not user.is_site_admin:
        return user
    admins = db.session.scalar(select(func.count()).select_from(User).where(User.is_site_admin.is_(True)))
    if admins <= 1:
        raise Conflict(f"{user.email} is the last site administrator; grant another account first")
    user.is_site_admin = False
    audit.record(actor, "site_admin.revoked", "user", user.id, email=user.email)
    return user
