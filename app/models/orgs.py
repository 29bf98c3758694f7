"""Inside an organization: units (with teams), groups, their members, invitations, conversation shares."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from app.extensions import db
from app.models.base import IdMixin, OrgOwnedMixin, TimestampMixin, UTCDateTime

UNIT_TYPES = ("department", "division", "business", "business-unit", "other")  # "business": the seeds' own example
SHARE_TARGETS = ("user", "group", "unit", "team", "organization")
SHARE_PERMISSIONS = ("view", "edit")


class Unit(IdMixin, TimestampMixin, OrgOwnedMixin, db.Model):
    __tablename__ = "units"
    __kind__ = "Unit"

    name: Mapped[str] = mapped_column(String(120), nullable=False)
    type: Mapped[str] = mapped_column(String(32), default="department", nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)

    teams: Mapped[list["Team"]] = relationship(back_populates="unit", cascade="all, delete-orphan",
                                               order_by="Team.name")
    members: Mapped[list["UnitMember"]] = relationship(cascade="all, delete-orphan")


class Team(IdMixin, TimestampMixin, OrgOwnedMixin, db.Model):
    __tablename__ = "teams"
    __kind__ = "Team"

    unit_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("units.id", ondelete="CASCADE"), index=True, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)

    unit: Mapped[Unit] = relationship(back_populates="teams")
    members: Mapped[list["TeamMember"]] = relationship(cascade="all, delete-orphan")


class Group(IdMixin, TimestampMixin, OrgOwnedMixin, db.Model):
    __tablename__ = "groups"
    __kind__ = "Group"

    name: Mapped[str] = mapped_column(String(120), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)

    members: Mapped[list["GroupMember"]] = relationship(cascade="all, delete-orphan")


class _UserLink(IdMixin, TimestampMixin):
    """A user in a unit, team or group (each table adds the link to its parent)."""

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)

    @declared_attr
    def user(cls):
        return relationship("User")


class UnitMember(_UserLink, db.Model):
    __tablename__ = "unit_members"
    __table_args__ = (UniqueConstraint("unit_id", "user_id", name="uq_unit_members_unit_user"),)

    unit_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("units.id", ondelete="CASCADE"), index=True, nullable=False)


class TeamMember(_UserLink, db.Model):
    __tablename__ = "team_members"
    __table_args__ = (UniqueConstraint("team_id", "user_id", name="uq_team_members_team_user"),)

    team_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("teams.id", ondelete="CASCADE"), index=True, nullable=False)


class GroupMember(_UserLink, db.Model):
    __tablename__ = "group_members"
    __table_args__ = (UniqueConstraint("group_id", "user_id", name="uq_group_members_group_user"),)

    group_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("groups.id", ondelete="CASCADE"), index=True, nullable=False)


class Invitation(IdMixin, TimestampMixin, OrgOwnedMixin, db.Model):
    """An e-mailed, expiring, single-use invitation. Only the token's hash is kept."""

    __tablename__ = "invitations"
    __kind__ = "Invitation"

    email: Mapped[str] = mapped_column(String(255), index=True, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    invited_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    org = relationship("Organization")
    invited_by = relationship("User", foreign_keys=[invited_by_id])

    def state_at(self, now: datetime) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if now >= self.expires_at:
            return "expired"
        return "pending"


class ConversationShare(IdMixin, TimestampMixin, OrgOwnedMixin, db.Model):
    """A conversation (and so its builds) opened to a user, group, unit, team or the whole organization."""

    __tablename__ = "conversation_shares"
    __kind__ = "Share"
    __table_args__ = (UniqueConstraint("conversation_id", "target_type", "target_id",
                                       name="uq_conversation_shares_target"),)

    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("conversations.id", ondelete="CASCADE"),
                                                       index=True, nullable=False)
    target_type: Mapped[str] = mapped_column(String(16), nullable=False)
    target_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True, nullable=False)
    permission: Mapped[str] = mapped_column(String(8), nullable=False)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
