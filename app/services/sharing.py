"""Conversation shares: a conversation (and so its builds) opened to a user, group, unit, team or the org.

The effective level is the highest share that reaches the user. It is computed from the tables on every
call (no cache), so removing a share or a membership takes effect on the next request.
"""
from __future__ import annotations

from sqlalchemy import and_, or_, select

from app.extensions import db
from app.models import Conversation, Membership, User
from app.models.base import parse_uuid
from app.models.orgs import (SHARE_PERMISSIONS, SHARE_TARGETS, ConversationShare, Group, GroupMember, Team, TeamMember,
                             Unit, UnitMember)
from app.services import audit
from app.services.audit import Actor
from app.services.errors import ValidationFailed

RANK = {"view": 1, "edit": 2}


def _reach(org_id, user_id):
    """(target_type, select of target ids) pairs that reach this user inside the org."""
    groups = select(GroupMember.group_id).join(Group, Group.id == GroupMember.group_id).where(
        GroupMember.user_id == user_id, Group.org_id == org_id)
    teams = select(TeamMember.team_id).join(Team, Team.id == TeamMember.team_id).where(
        TeamMember.user_id == user_id, Team.org_id == org_id)
    # A unit reaches its own members and the members of any of its teams.
    units = select(UnitMember.unit_id).join(Unit, Unit.id == UnitMember.unit_id).where(
        UnitMember.user_id == user_id, Unit.org_id == org_id).union(
        select(Team.unit_id).join(TeamMember, TeamMember.team_id == Team.id).where(
            TeamMember.user_id == user_id, Team.org_id == org_id))
    return [("group", groups), ("team", teams), ("unit", units)]


def _share_filter(org_id, user_id):
    clauses = [and_(ConversationShare.target_type == "user", ConversationShare.target_id == user_id)]
    clauses += [and_(ConversationShare.target_type == kind, ConversationShare.target_id.in_(ids))
                for kind, ids in _reach(org_id, user_id)]
    # The whole-org share only reaches people who (still) belong to the org.
    is_member = select(Membership.id).where(Membership.org_id == org_id, Membership.user_id == user_id).exists()
    clauses.append(and_(ConversationShare.target_type == "organization", ConversationShare.target_id == org_id, is_member))
    return and_(ConversationShare.org_id == org_id, or_(*clauses))


def effective_share(conversation: Conversation, user) -> str | None:
    """'edit', 'view' or None: the highest share of this conversation that applies to the user."""
    if user is None:
        return None
    levels = db.session.scalars(select(ConversationShare.permission).where(
        ConversationShare.conversation_id == conversation.id, _share_filter(conversation.org_id, user.id))).all()
    return max(levels, key=RANK.get, default=None)


def conversation_ids_shared_with(org, user):
    """A SELECT of conversation ids shared with the user in this org, for `Conversation.id.in_(...)`."""
    if user is None:
        return select(ConversationShare.conversation_id).where(ConversationShare.id.is_(None))
    return select(ConversationShare.conversation_id).where(_share_filter(org.id, user.id))


def shares_of(conversation: Conversation) -> list[ConversationShare]:
    return db.session.scalars(select(ConversationShare).where(ConversationShare.conversation_id == conversation.id)
                              .order_by(ConversationShare.created_at)).all()


def target_label(share: ConversationShare) -> str:
    """A human name for the share's target (pages and the API's targetName)."""
    if share.target_type == "organization":
        return "Everyone in the organization"
    model = {"user": User, "group": Group, "unit": Unit, "team": Team}[share.target_type]
    row = db.session.get(model, share.target_id)
    if row is None:
        return "(deleted)"
    return f"{row.name} <{row.email}>" if share.target_type == "user" else row.name


def _check_target(conversation: Conversation, target_type: str, target_id):
    if target_type not in SHARE_TARGETS:
        raise ValidationFailed(f"targetType: must be one of {', '.join(SHARE_TARGETS)}",
                               {"targetType": [f"Must be one of: {', '.join(SHARE_TARGETS)}."]})
    org_id = conversation.org_id
    if target_type == "organization":
        # targetId may be omitted for the whole org; if given it must be this org.
        if target_id not in (None, "") and parse_uuid(target_id) != org_id:
            raise ValidationFailed("targetId: must be the conversation's organization",
                                   {"targetId": ["Not this conversation's organization."]})
        return org_id
    tid = parse_uuid(target_id)
    if tid is None:
        raise ValidationFailed("targetId: must be a UUID", {"targetId": ["Not a valid UUID."]})
    if target_type == "user":
        found = Membership.find(org_id, tid) is not None
    else:
        model = {"group": Group, "unit": Unit, "team": Team}[target_type]
        row = db.session.get(model, tid)
        found = row is not None and row.org_id == org_id
    if not found:
        raise ValidationFailed(f"targetId: no {target_type} '{target_id}' in this conversation's organization",
                               {"targetId": [f"No such {target_type} in this organization."]})
    return tid


def share(actor: Actor, conversation: Conversation, target_type: str, target_id, permission: str
          ) -> tuple[ConversationShare, bool]:
    """Share (or change an existing share's level). Returns (share, created)."""
    if permission not in SHARE_PERMISSIONS:
        raise ValidationFailed("permission: must be view or edit", {"permission": ["Must be one of: view, edit."]})
    tid = _check_target(conversation, target_type, target_id)
    row = db.session.scalar(select(ConversationShare).where(
        ConversationShare.conversation_id == conversation.id, ConversationShare.target_type == target_type,
        ConversationShare.target_id == tid))
    created = row is None
    if created:
        row = ConversationShare(org_id=conversation.org_id, conversation_id=conversation.id, target_type=target_type,
                                target_id=tid, permission=permission, created_by_id=actor.user_id)
        db.session.add(row)
    else:
        row.permission = permission
    db.session.flush()
    audit.record(actor, "conversation.shared" if created else "conversation.share_changed", "conversation",
                 conversation.id, org_id=conversation.org_id, share_id=row.id, target_type=target_type,
                 target_id=tid, permission=permission)
    return row, created


def unshare(actor: Actor, conversation: Conversation, share_id) -> None:
    row = ConversationShare.get_for_org(conversation.org_id, share_id)
    if row.conversation_id != conversation.id:
        from app.services.errors import NotFound

        raise NotFound.of("Share", share_id)
    audit.record(actor, "conversation.unshared", "conversation", conversation.id, org_id=conversation.org_id,
                 share_id=row.id, target_type=row.target_type, target_id=row.target_id)
    db.session.delete(row)
    db.session.flush()
