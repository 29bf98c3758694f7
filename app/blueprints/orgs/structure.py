"""Structure API: units (typed) with teams, and groups; each with members. Another org's object is 404."""
from __future__ import annotations

from app.extensions import db
from app.http.auth import current_actor, permission_required, resolve_org
from app.http.blueprint import ApiBlueprint
from app.http.pagination import page_of
from app.http.schemas import PaginationArgs, page_envelope
from app.models.orgs import Group, Team, Unit
from app.services import structure
from .schemas import (GroupPageSchema, GroupSchema, NamedCreateSchema, NamedUpdateSchema, StructureMemberSchema,
                      StructureMembershipPageSchema, StructureMembershipSchema, TeamPageSchema, TeamSchema,
                      UnitCreateSchema, UnitPageSchema, UnitSchema, UnitUpdateSchema)

org_blp = ApiBlueprint("org_structure", __name__, url_prefix="/api/organizations",
                       description="Units and groups of an organization")
units_blp = ApiBlueprint("units", __name__, url_prefix="/api/units", description="Units and their teams")
teams_blp = ApiBlueprint("teams", __name__, url_prefix="/api/teams", description="Teams")
groups_blp = ApiBlueprint("groups", __name__, url_prefix="/api/groups", description="Groups")

PLURAL = {"unit": "units", "team": "teams", "group": "groups"}
SCHEMA = {"unit": UnitSchema, "team": TeamSchema, "group": GroupSchema}


def _list(kind: str, query, args) -> dict:
    return page_of(PLURAL[kind], query, args)


def _get(kind: str, ident):
    org, _role = resolve_org()
    return structure.get(kind, org, ident)


# Org-level collections --------------------------------------------------------------------------------

def _register_org_list(kind: str, model, page_schema) -> None:
    plural = PLURAL[kind]

    @org_blp.route(f"/<org_id>/{plural}", methods=["GET"], endpoint=f"list_{plural}")
    @org_blp.arguments(PaginationArgs, location="query")
    @org_blp.response(200, page_schema, description=f"The organization's {plural}", errors=(401, 403, 404))
    @permission_required("org:read", "org_id")
    def list_all(args, org_id):
        return _list(kind, model.for_org(resolve_org()[0].id).order_by(model.name), args)


_register_org_list("unit", Unit, UnitPageSchema)
_register_org_list("group", Group, GroupPageSchema)


@org_blp.route("/<org_id>/units", methods=["POST"])
@org_blp.arguments(UnitCreateSchema)
@org_blp.response(201, UnitSchema, description="The new unit", errors=(400, 401, 403, 404))
@permission_required("structure:manage", "org_id")
def create_unit(data, org_id):
    """A unit with a type: department, division, business, business-unit or other."""
    row = structure.create_unit(current_actor(), resolve_org()[0], data["name"], data["type"], data["description"])
    db.session.commit()
    return row, 201


@org_blp.route("/<org_id>/groups", methods=["POST"])
@org_blp.arguments(NamedCreateSchema)
@org_blp.response(201, GroupSchema, description="The new group", errors=(400, 401, 403, 404))
@permission_required("structure:manage", "org_id")
def create_group(data, org_id):
    row = structure.create_group(current_actor(), resolve_org()[0], data["name"], data["description"])
    db.session.commit()
    return row, 201


# One object, its teams, its members (the same shape for units, teams and groups) ----------------------

def _register_object_routes(blp: ApiBlueprint, kind: str, update_schema) -> None:
    label = kind.title()

    @blp.route("/<ident>", methods=["GET"], endpoint=f"get_{kind}")
    @blp.response(200, SCHEMA[kind], description=f"The {kind}", errors=(401, 403, 404))
    @permission_required("org:read")
    def get_one(ident):
        return _get(kind, ident)

    @blp.route("/<ident>", methods=["PATCH"], endpoint=f"update_{kind}")
    @blp.arguments(update_schema)
    @blp.response(200, SCHEMA[kind], description=f"The updated {kind}", errors=(400, 401, 403, 404))
    @permission_required("structure:manage")
    def update_one(data, ident):
        row = structure.update(current_actor(), kind, _get(kind, ident), data)
        db.session.commit()
        return row

    @blp.route("/<ident>", methods=["DELETE"], endpoint=f"delete_{kind}")
    @blp.response(204, description=f"{label} deleted (shares aimed at it go too)", errors=(401, 403, 404))
    @permission_required("structure:manage")
    def delete_one(ident):
        structure.remove(current_actor(), kind, _get(kind, ident))
        db.session.commit()
        return "", 204

    @blp.route("/<ident>/members", methods=["GET"], endpoint=f"list_{kind}_members")
    @blp.arguments(PaginationArgs, location="query")
    @blp.response(200, StructureMembershipPageSchema, description=f"Members of the {kind}", errors=(401, 403, 404))
    @permission_required("members:read")
    def list_members(args, ident):
        rows = structure.member_rows(kind, _get(kind, ident))
        page, limit = args["page"], args["limit"]
        return page_envelope("members", rows[(page - 1) * limit:page * limit], len(rows), page, limit)

    @blp.route("/<ident>/members", methods=["POST"], endpoint=f"add_{kind}_member")
    @blp.arguments(StructureMemberSchema)
    @blp.response(201, StructureMembershipSchema, description=f"The user joined the {kind}",
                  errors=(400, 401, 403, 404, 409))
    @permission_required("structure:manage")
    def add_member(data, ident):
        """Only members of the organization can join."""
        link = structure.add_member(current_actor(), kind, _get(kind, ident), data["user_id"])
        db.session.commit()
        return link, 201

    @blp.route("/<ident>/members/<user_id>", methods=["DELETE"], endpoint=f"remove_{kind}_member")
    @blp.response(204, description=f"The user left the {kind}", errors=(401, 403, 404))
    @permission_required("structure:manage")
    def remove_member(ident, user_id):
        structure.remove_member(current_actor(), kind, _get(kind, ident), user_id)
        db.session.commit()
        return "", 204


_register_object_routes(units_blp, "unit", UnitUpdateSchema)
_register_object_routes(teams_blp, "team", NamedUpdateSchema)
_register_object_routes(groups_blp, "group", NamedUpdateSchema)


@units_blp.route("/<ident>/teams", methods=["GET"])
@units_blp.arguments(PaginationArgs, location="query")
@units_blp.response(200, TeamPageSchema, description="Teams of the unit", errors=(401, 403, 404))
@permission_required("org:read")
def list_teams(args, ident):
    unit = _get("unit", ident)
    return _list("team", Team.for_org(unit.org_id).where(Team.unit_id == unit.id).order_by(Team.name), args)


@units_blp.route("/<ident>/teams", methods=["POST"])
@units_blp.arguments(NamedCreateSchema)
@units_blp.response(201, TeamSchema, description="The new team", errors=(400, 401, 403, 404))
@permission_required("structure:manage")
def create_team(data, ident):
    row = structure.create_team(current_actor(), _get("unit", ident), data["name"], data["description"])
    db.session.commit()
    return row, 201


api_blueprints = [org_blp, units_blp, teams_blp, groups_blp]
