"""Organizations, their members and invitations. Plain functions: explicit actor/org, flush but never commit."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, func, select

from app.extensions import db
from app.models import Membership, Organization, User
from app.models.accounts import ROLE_RANK, ROLES
from app.models.base import parse_uuid, utcnow
from app.models.orgs import ConversationShare, GroupMember, Invitation, TeamMember, UnitMember
from app.services import accounts, audit
from app.services.audit import Actor
from app.services.billing import quotas
from app.services.errors import Conflict, Forbidden, NotFound, ValidationFailed

INVITE_TTL = timedelta(days=7)


def _name(name: str | None, field: str = "name") -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed(f"{field}: must not be empty", {field: ["Must not be empty."]})
    if len(name) > 120:
        raise ValidationFailed(f"{field}: at most 120 characters", {field: ["At most 120 characters."]})
    return name


def _role(role: str | None, field: str = "role") -> str:
    if role not in ROLES:
        raise ValidationFailed(f"{field}: must be one of {', '.join(ROLES)}", {field: [f"Must be one of: {', '.join(ROLES)}."]})
    return role


# Organizations ------------------------------------------------------------------------------------

def create_org(actor: Actor, name: str, *, owner: User) -> Organization:
    return accounts.create_organization(actor, _name(name), owner=owner)


def orgs_of(user: User) -> list[Membership]:
    return accounts.memberships_of(user)


def get_org(org_id) -> Organization:
    """A live organization or NotFound (soft-deleted ones are gone for everyone)."""
    org = db.session.get(Organization, parse_uuid(org_id)) if parse_uuid(org_id) else None
    if org is None or org.is_deleted:
        raise NotFound.of("Organization", org_id)
    return org


def rename_org(actor: Actor, org: Organization, name: str) -> Organization:
    old, org.name = org.name, _name(name)
    audit.record(actor, "organization.renamed", "organization", org.id, org_id=org.id, old=old, new=org.name)
    return org


def delete_org(actor: Actor, org: Organization) -> None:
    """Soft delete: the row stays for the audit trail, every lookup treats it as gone. Keys die with it."""
    from app.models import ApiKey

    if org.personal:
        raise Conflict("A personal organization cannot be deleted")
    now = utcnow()
    org.deleted_at = now
    for key in db.session.scalars(select(ApiKey).where(ApiKey.org_id == org.id, ApiKey.revoked_at.is_(None))):
        key.revoked_at = now
    for invite in db.session.scalars(_pending_invites(org.id)):
        invite.revoked_at = now
    # Whoever had the deleted org as default falls back to their personal one at next resolve.
    for user in db.session.scalars(select(User).where(User.default_org_id == org.id)):
        user.default_org_id = _personal_org_id(user)
    audit.record(actor, "organization.deleted", "organization", org.id, org_id=org.id, name=org.name)


def _personal_org_id(user: User):
    return db.session.scalar(select(Organization.id).join(Membership).where(
        Membership.user_id == user.id, Organization.personal.is_(True), Organization.deleted_at.is_(None)).limit(1))


# Members -------------------------------------------------------------------------------------------

def members(org: Organization) -> list[Membership]:
    return db.session.scalars(select(Membership).join(User).where(Membership.org_id == org.id)
                              .order_by(User.name, User.email)).all()


def member(org: Organization, user_id) -> Membership:
    uid = parse_uuid(user_id)
    row = Membership.find(org.id, uid) if uid else None
    if row is None:
        raise NotFound.of("Member", user_id)
    return row


def require_member(org: Organization, user_id, field: str = "userId") -> Membership:
    """For structure and shares: the target must belong to the org (a clear 400 otherwise)."""
    uid = parse_uuid(user_id)
    row = Membership.find(org.id, uid) if uid else None
    if row is None:
        raise ValidationFailed(f"{field}: '{user_id}' is not a member of this organization",
                               {field: ["Not a member of this organization."]})
    return row


def _owner_count(org: Organization) -> int:
    return db.session.scalar(select(func.count()).select_from(Membership)
                             .where(Membership.org_id == org.id, Membership.role == "owner"))


def _check_role_change(actor_role: str, current: str | None, new: str) -> None:
    # Admins manage members and viewers; only owners create or touch owners (that is the ownership transfer).
    if "owner" in (current, new) and actor_role != "owner":
        raise Forbidden("Only an owner can grant, change or remove the owner role")


def add_member(actor: Actor, org: Organization, email: str, role: str, *, actor_role: str) -> Membership:
    role = _role(role)
    _check_role_change(actor_role, None, role)
    user = User.by_email(email or "")
    if user is None or not user.is_active:
        raise ValidationFailed(f"email: no Kiln account uses {email}; send an invitation instead",
                               {"email": ["No account with this address; invite it instead."]})
    if Membership.find(org.id, user.id):
        raise Conflict(f"{user.email} is already a member", {"email": ["Already a member."]})
    quotas.check_member_add(org)
    row = Membership(org_id=org.id, user_id=user.id, role=role)
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "member.added", "membership", user.id, org_id=org.id, email=user.email, role=role)
    return row


def change_role(actor: Actor, org: Organization, user_id, role: str, *, actor_role: str) -> Membership:
    role = _role(role)
    row = member(org, user_id)
    _check_role_change(actor_role, row.role, role)
    if row.role == "owner" and role != "owner" and _owner_count(org) <= 1:
        raise Conflict("The last owner cannot be demoted; make someone else owner first")
    old, row.role = row.role, role
    audit.record(actor, "member.role_changed", "membership", row.user_id, org_id=org.id, old=old, new=role)
    return row


def remove_member(actor: Actor, org: Organization, user_id, *, actor_role: str) -> None:
    """Admins remove others; anyone may leave. The last owner stays, so an org never loses its owner."""
    row = member(org, user_id)
    leaving = actor.user_id is not None and row.user_id == actor.user_id and actor.api_key is None
    if not leaving:
        if ROLE_RANK.get(actor_role, -1) < ROLE_RANK["admin"]:
            raise Forbidden("Only admins and owners remove other members")
        _check_role_change(actor_role, row.role, row.role)
    if row.role == "owner" and _owner_count(org) <= 1:
        raise Conflict("The last owner cannot leave; make someone else owner first")
    if org.personal and leaving and row.role == "owner":
        raise Conflict("You cannot leave your personal organization")
    user_id = row.user_id
    _forget_member(org, user_id)
    db.session.delete(row)
    db.session.flush()
    user = db.session.get(User, user_id)
    if user is not None and user.default_org_id == org.id:
        user.default_org_id = _personal_org_id(user)
    audit.record(actor, "member.left" if leaving else "member.removed", "membership", user_id, org_id=org.id)


def _forget_member(org: Organization, user_id) -> None:
    """A person who leaves also leaves the org's units, teams and groups, and loses shares made to them."""
    from app.models.orgs import Group, Team, Unit

    db.session.execute(delete(UnitMember).where(UnitMember.user_id == user_id,
                                                UnitMember.unit_id.in_(select(Unit.id).where(Unit.org_id == org.id))))
    db.session.execute(delete(TeamMember).where(TeamMember.user_id == user_id,
                                                TeamMember.team_id.in_(select(Team.id).where(Team.org_id == org.id))))
    db.session.execute(delete(GroupMember).where(GroupMember.user_id == user_id,
                                                 GroupMember.group_id.in_(select(Group.id).where(Group.org_id == org.id))))
    db.session.execute(delete(ConversationShare).where(ConversationShare.org_id == org.id,
                                                       ConversationShare.target_type == "user",
                                                       ConversationShare.target_id == user_id))


# Invitations ---------------------------------------------------------------------------------------

def _token_hash(token: str) -> str:
    return hashlib.sha256((token or "").encode()).hexdigest()


def _pending_invites(org_id):
    return (select(Invitation).where(Invitation.org_id == org_id, Invitation.accepted_at.is_(None),
                                     Invitation.revoked_at.is_(None), Invitation.expires_at > utcnow())
            .order_by(Invitation.created_at.desc()))


def pending_invites(org: Organization) -> list[Invitation]:
    return db.session.scalars(_pending_invites(org.id)).all()


def invite(actor: Actor, org: Organization, email: str, role: str, *, actor_role: str, config: dict,
           accept_url_for) -> tuple[Invitation, str]:
    """Mail a single-use link valid for 7 days; returns (invitation, raw token). Re-inviting replaces the old link."""
    from app.services.mail import send_mail

    email = accounts.normalize_email(email or "")
    role = _role(role)
    _check_role_change(actor_role, None, role)
    existing = User.by_email(email)
    if existing is not None and Membership.find(org.id, existing.id):
        raise Conflict(f"{email} is already a member", {"email": ["Already a member."]})
    now = utcnow()
    for old in db.session.scalars(_pending_invites(org.id).where(Invitation.email == email)):
        old.revoked_at = now
    token = secrets.token_urlsafe(32)
    row = Invitation(org_id=org.id, email=email, role=role, token_hash=_token_hash(token),
                     invited_by_id=actor.user_id, expires_at=now + INVITE_TTL)
    db.session.add(row)
    db.session.flush()
    inviter = getattr(actor.user, "name", None) or "Someone"
    send_mail(config, email, f"You are invited to {org.name} on Kiln",
              f"Hello,\n\n{inviter} invited you to join the organization \"{org.name}\" on Kiln as {role}.\n"
              f"Open this link within 7 days to accept (log in or sign up with this address first):\n\n"
              f"{accept_url_for(token)}\n\nIf you did not expect this, ignore the mail.\n")
    audit.record(actor, "invitation.created", "invitation", row.id, org_id=org.id, email=email, role=role)
    audit.emit("invitation.created", org_id=org.id, entity_type="invitation", entity_id=row.id,
               payload={"email": email, "role": role, "orgName": org.name})
    return row, token


def revoke_invite(actor: Actor, org: Organization, invite_id) -> Invitation:
    row = Invitation.get_for_org(org.id, invite_id)
    if row.state_at(utcnow()) != "pending":
        raise Conflict(f"The invitation is {row.state_at(utcnow())}, not pending")
    row.revoked_at = utcnow()
    audit.record(actor, "invitation.revoked", "invitation", row.id, org_id=org.id, email=row.email)
    return row


def find_invite(token: str) -> Invitation:
    """The invitation for a token in any state; unknown tokens (and deleted orgs) are NotFound."""
    row = db.session.scalar(select(Invitation).where(Invitation.token_hash == _token_hash(token)))
    if row is None or row.org is None or row.org.is_deleted:
        raise NotFound("Invitation not found: the link is wrong or the organization is gone")
    return row


def check_invite_usable(row: Invitation) -> None:
    state = row.state_at(utcnow())
    if state == "expired":
        raise ValidationFailed("token: the invitation has expired; ask for a new one", {"token": ["Expired."]})
    if state == "revoked":
        raise ValidationFailed("token: the invitation was revoked", {"token": ["Revoked."]})
    if state == "accepted":
        raise Conflict("The invitation has already been used", {"token": ["Already used."]})


def accept_invite(actor: Actor, token: str, user: User) -> Membership:
    row = find_invite(token)
    check_invite_usable(row)
    if user.email.lower() != row.email.lower():
        raise Forbidden(f"This invitation is for {row.email}; you are logged in as {user.email}")
    now = utcnow()
    membership = Membership.find(row.org_id, user.id)
    if membership is None:
        quotas.check_member_add(row.org)
        membership = Membership(org_id=row.org_id, user_id=user.id, role=row.role)
        db.session.add(membership)
        db.session.flush()
    row.accepted_at, row.accepted_by_id = now, user.id
    audit.record(actor, "invitation.accepted", "invitation", row.id, org_id=row.org_id, email=row.email, role=row.role)
    return membership
