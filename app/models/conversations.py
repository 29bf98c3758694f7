"""Conversations design recipes: messages, and immutable recipe versions linked to the message that made them."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint, Uuid, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import IdMixin, OrgOwnedMixin, TimestampMixin, UTCDateTime, utcnow


class Conversation(IdMixin, TimestampMixin, OrgOwnedMixin, db.Model):
    __tablename__ = "conversations"
    __kind__ = "Conversation"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"), index=True)
    current_version: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    messages: Mapped[list["Message"]] = relationship(back_populates="conversation", cascade="all, delete-orphan",
                                                     order_by="Message.created_at")
    versions: Mapped[list["RecipeVersion"]] = relationship(back_populates="conversation", cascade="all, delete-orphan",
                                                           order_by="RecipeVersion.number")

    def version(self, number: int | None = None) -> "RecipeVersion | None":
        number = self.current_version if number is None else number
        return db.session.scalar(select(RecipeVersion).where(RecipeVersion.conversation_id == self.id,
                                                             RecipeVersion.number == number))


class Message(IdMixin, db.Model):
    __tablename__ = "messages"

    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("conversations.id", ondelete="CASCADE"),
                                                       index=True, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)  # user | assistant
    content: Mapped[str] = mapped_column(Text, nullable=False)
    author_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    # What the assistant did: operations applied, refusals, which planner answered.
    meta: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True, nullable=False)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class RecipeVersion(IdMixin, db.Model):
    """Never updated once written: builds point at the exact version they built."""

    __tablename__ = "recipe_versions"
    __table_args__ = (UniqueConstraint("conversation_id", "number", name="uq_recipe_versions_conversation_number"),)

    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("conversations.id", ondelete="CASCADE"),
                                                       index=True, nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    recipe: Mapped[dict] = mapped_column(JSON, nullable=False)
    recipe_hash: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("messages.id", ondelete="SET NULL"))
    author_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(16), default="chat", nullable=False)  # initial | chat | edit
    summary: Mapped[str] = mapped_column(Text, default="", nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    conversation: Mapped[Conversation] = relationship(back_populates="versions")
