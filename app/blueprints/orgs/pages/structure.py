"""The structure page: units with their teams, and groups, each with members."""
from __future__ import annotations

from flask import render_template, request, url_for

from app.http.auth import can, current_actor, page_permission, resolve_org
from app.models.orgs import UNIT_TYPES
from app.services import orgs, structure
from app.services.errors import ValidationFailed

from .base import bp, change


def _structure_context():
    org, role = resolve_org()
    units = structure.units(org)
    return {"org": org, "role": role, "can_manage": can("structure:manage"), "unit_types": UNIT_TYPES,
            "units": units, "teams": {u.id: structure.teams(u) for u in units}, "groups": structure.groups(org),
            "members": orgs.members(org),
            "member_rows": lambda kind, row: structure.member_rows(kind, row)}


@bp.route("/organization/structure")
@page_permission("org:read")
def structure_page():
    return render_template("orgs/structure.html", **_structure_context(), error=None, notice=None)


def _structure_action(org, form):
    actor, action, kind = current_actor(), form.get("action", ""), form.get("kind", "")
    if action == "create_unit":
        structure.create_unit(actor, org, form.get("name", ""), form.get("type"), form.get("description"))
    elif action == "create_group":
        structure.create_group(actor, org, form.get("name", ""), form.get("description"))
    elif action == "create_team":
        structure.create_team(actor, structure.get("unit", org, form.get("unit_id")), form.get("name", ""),
                              form.get("description"))
    elif action in ("delete", "add_member", "remove_member") and kind in structure.KINDS:
        row = structure.get(kind, org, form.get("id"))
        if action == "delete":
            structure.remove(actor, kind, row)
        elif action == "add_member":
            structure.add_member(actor, kind, row, form.get("user_id"))
        else:
            structure.remove_member(actor, kind, row, form.get("user_id"))
    else:
        raise ValidationFailed(f"Unknown structure action '{action}'", {"action": ["Unknown action."]})


@bp.route("/organization/structure", methods=["POST"])
@page_permission("structure:manage")
def structure_change():
    org, _ = resolve_org()
    return change(lambda: _structure_action(org, request.form), partial="orgs/_structure.html",
                  context=_structure_context, back=url_for(".structure_page"), success="Saved.")
