"""Units (with a type) holding teams, and org-wide groups; each with members drawn from the org's members."""
from __future__ import annotations

from sqlalchemy import delete, select

from app.extensions import db
from app.models import Organization, User
from app.models.orgs import UNIT_TYPES, ConversationShare, Group, GroupMember, Team, TeamMember, Unit, UnitMember
from app.services import audit
from app.services.audit import Actor
from app.services.errors import Conflict, NotFound, ValidationFailed
from app.services.orgs import _name, require_member

# kind -> (model, member model, member fk column name)
KINDS = {
    "unit": (Unit, UnitMember, "unit_id"),
    "team": (Team, TeamMember, "team_id"),
    "group": (Group, GroupMember, "group_id"),
}


def _unit_type(value: str | None) -> str:
    value = (value or "department").strip().lower()
    if value not in UNIT_TYPES:
        raise ValidationFailed(f"type: must be one of {', '.join(UNIT_TYPES)}",
                               {"type": [f"Must be one of: {', '.join(UNIT_TYPES)}."]})
    return value


def _description(value: str | None) -> str:
    value = (value or "").strip()
    if len(value) > 2000:
        raise ValidationFailed("description: at most 2000 characters", {"description": ["At most 2000 characters."]})
    return value


def get(kind: str, org: Organization, ident):
    return KINDS[kind][0].get_for_org(org.id, ident)


def units(org: Organization) -> list[Unit]:
    return db.session.scalars(Unit.for_org(org.id).order_by(Unit.name)).all()


def teams(unit: Unit) -> list[Team]:
    return db.session.scalars(select(Team).where(Team.unit_id == unit.id).order_by(Team.name)).all()


def groups(org: Organization) -> list[Group]:
    return db.session.scalars(Group.for_org(org.id).order_by(Group.name)).all()


def create_unit(actor: Actor, org: Organization, name: str, type: str | None = None, description: str | None = None) -> Unit:
    row = Unit(org_id=org.id, name=_name(name), type=_unit_type(type), description=_description(description))
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "unit.created", "unit", row.id, org_id=org.id, name=row.name, type=row.type)
    return row


def create_team(actor: Actor, unit: Unit, name: str, description: str | None = None) -> Team:
    row = Team(org_id=unit.org_id, unit_id=unit.id, name=_name(name), description=_description(description))
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "team.created", "team", row.id, org_id=unit.org_id, name=row.name, unit_id=unit.id)
    return row


def create_group(actor: Actor, org: Organization, name: str, description: str | None = None) -> Group:
    row = Group(org_id=org.id, name=_name(name), description=_description(description))
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "group.created", "group", row.id, org_id=org.id, name=row.name)
    return row


def update(actor: Actor, kind: str, row, changes: dict):
    """PATCH: name, description and (units only) type."""
    before = {}
    if "name" in changes:
        before["name"], row.name = row.name, _name(changes["name"])
    if "description" in changes:
        before["description"], row.description = row.description, _description(changes["description"])
    if "type" in changes:
        if kind != "unit":
            raise ValidationFailed("type: only units have a type", {"type": ["Only units have a type."]})
        before["type"], row.type = row.type, _unit_type(changes["type"])
    audit.record(actor, f"{kind}.updated", kind, row.id, org_id=row.org_id, changed=sorted(before))
    return row


def remove(actor: Actor, kind: str, row) -> None:
    """Deleting a unit takes its teams along; shares aimed at what is deleted go too, so no access lingers."""
    targets = [(kind, row.id)]
    if kind == "unit":
        targets += [("team", team.id) for team in row.teams]
    for target_type, target_id in targets:
        db.session.execute(delete(ConversationShare).where(ConversationShare.target_type == target_type,
                                                           ConversationShare.target_id == target_id))
    audit.record(actor, f"{kind}.deleted", kind, row.id, org_id=row.org_id, name=row.name)
    db.session.delete(row)
    db.session.flush()


def member_rows(kind: str, row) -> list:
    _, member_model, fk = KINDS[kind]
    return db.session.scalars(select(member_model).join(User, User.id == member_model.user_id)
                              .where(getattr(member_model, fk) == row.id).order_by(User.name, User.email)).all()


def add_member(actor: Actor, kind: str, row, user_id):
    _, member_model, fk = KINDS[kind]
    membership = require_member(db.session.get(Organization, row.org_id), user_id)
    exists = db.session.scalar(select(member_model).where(getattr(member_model, fk) == row.id,
                                                          member_model.user_id == membership.user_id))
    if exists is not None:
        raise Conflict(f"The user is already a member of this {kind}", {"userId": ["Already a member."]})
    link = member_model(user_id=membership.user_id, **{fk: row.id})
    db.session.add(link)
    db.session.flush()
    audit.record(actor, f"{kind}.member_added", kind, row.id, org_id=row.org_id, user_id=membership.user_id)
    return link


def remove_member(actor: Actor, kind: str, row, user_id) -> None:
    from app.models.base import parse_uuid

    _, member_model, fk = KINDS[kind]
    uid = parse_uuid(user_id)
    link = db.session.scalar(select(member_model).where(getattr(member_model, fk) == row.id,
                                                        member_model.user_id == uid)) if uid else None
    if link is None:
        raise NotFound(f"User '{user_id}' is not a member of this {kind}")
    db.session.delete(link)
    db.session.flush()
    audit.record(actor, f"{kind}.member_removed", kind, row.id, org_id=row.org_id, user_id=uid)
