"""Who may see or change a conversation (and so its builds).

A conversation is private to its creator and the org's admins/owners until it is shared; shares
(user, group, unit, team, whole organization; view or edit) widen that, and the caller's org role caps
it (a viewer never edits). API keys act for the whole organization within their scopes.
"""
from __future__ import annotations

from sqlalchemy import or_, select

from app.models import Conversation
from app.models.accounts import ROLE_RANK
from app.services.errors import Forbidden, NotFound

LEVELS = {None: 0, "view": 1, "edit": 2}


def _shared_level(conversation: Conversation, user) -> str | None:
    """The highest share granted to this user (directly or through a group/unit/team/org). See sharing service."""
    from app.services import sharing

    return sharing.effective_share(conversation, user)


def conversation_access(conversation: Conversation, *, user, role: str, via_api_key: bool = False) -> str | None:
    if via_api_key:
        return "edit" if ROLE_RANK.get(role, -1) >= ROLE_RANK["member"] else "view"
    if role in ("admin", "owner"):
        return "edit"
    level = "edit" if user is not None and conversation.created_by_id == user.id else _shared_level(conversation, user)
    if level == "edit" and ROLE_RANK.get(role, -1) < ROLE_RANK["member"]:
        level = "view"  # a viewer's role caps any share
    return level


def require_conversation(org, conversation_id, *, user, role: str, need: str = "view", via_api_key: bool = False) -> Conversation:
    """The conversation if the caller may `need` it; invisible ones are NotFound, view-only ones Forbidden for edits."""
    conversation = Conversation.get_for_org(org.id, conversation_id)
    if conversation.deleted_at is not None:
        raise NotFound.of("Conversation", conversation_id)
    level = conversation_access(conversation, user=user, role=role, via_api_key=via_api_key)
    if level is None:
        raise NotFound.of("Conversation", conversation_id)
    if LEVELS[level] < LEVELS[need]:
        raise Forbidden(f"You can view conversation '{conversation_id}' but not change it")
    return conversation


def visible_conversations(org, *, user, role: str, via_api_key: bool = False):
    """A select of the org's conversations this caller can at least view."""
    from app.services import sharing

    query = select(Conversation).where(Conversation.org_id == org.id, Conversation.deleted_at.is_(None))
    if via_api_key or role in ("admin", "owner"):
        return query
    return query.where(or_(Conversation.created_by_id == user.id,
                           Conversation.id.in_(sharing.conversation_ids_shared_with(org, user))))
