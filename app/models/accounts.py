"""People and the organizations they belong to."""
from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint, Uuid, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import IdMixin, TimestampMixin, UTCDateTime, parse_uuid

ROLES = ("viewer", "member", "admin", "owner")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}


class User(IdMixin, TimestampMixin, UserMixin, db.Model):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    is_active_flag: Mapped[bool] = mapped_column("is_active", Boolean, default=True, nullable=False)
    is_site_admin: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # The last TOTP time step a code was accepted for: a code works once, even inside its window.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    # Bumped when the password changes, so outstanding reset links die.
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    default_org_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("organizations.id", use_alter=True, ondelete="SET NULL"))

    memberships: Mapped[list["Membership"]] = relationship(back_populates="user", cascade="all, delete-orphan")

    @property
    def is_active(self) -> bool:  # flask-login
        return self.is_active_flag

    @property
    def password_fingerprint(self) -> str:
        """Changes with the password: part of session ids and reset links, so those die with the old password."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]

    def get_id(self) -> str:
        # flask-login keeps this in the session and the remember-me cookie; by_session_id reads it back.
        return f"{self.id}:{self.password_fingerprint}"

    @classmethod
    def by_email(cls, email: str) -> "User | None":
        return db.session.scalar(select(cls).where(cls.email == email.strip().lower()))

    @classmethod
    def by_session_id(cls, session_id: str | None) -> "User | None":
        """The active user a session or remember-me cookie names, if its password has not changed since."""
        user_id, _, fingerprint = (session_id or "").partition(":")
        uid = parse_uuid(user_id)
        user = db.session.get(cls, uid) if uid is not None else None
        if user is None or not user.is_active or not hmac.compare_digest(fingerprint, user.password_fingerprint):
            return None
        return user


class Organization(IdMixin, TimestampMixin, db.Model):
    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(120), nullable=False)
    slug: Mapped[str] = mapped_column(String(140), unique=True, nullable=False)
    personal: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    plan: Mapped[str] = mapped_column(String(32), default="free", nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    memberships: Mapped[list["Membership"]] = relationship(back_populates="org", cascade="all, delete-orphan")

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class Membership(IdMixin, TimestampMixin, db.Model):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "user_id", name="uq_memberships_org_user"),)

    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), index=True, nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="member")

    org: Mapped[Organization] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship(back_populates="memberships")

    @classmethod
    def find(cls, org_id, user_id) -> "Membership | None":
        return db.session.scalar(select(cls).where(cls.org_id == org_id, cls.user_id == user_id))
