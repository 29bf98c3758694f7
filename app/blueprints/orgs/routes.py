"""Organizations API (API.md, Organizations): orgs, members, invitations. Structure, shares and keys live beside it."""
from __future__ import annotations

from flask import current_app, url_for

from app.extensions import db
from app.http.auth import (current_actor, current_principal, login_required, permission_required, resolve_org,
                           user_required)
from app.http.blueprint import ApiBlueprint
from app.http.schemas import PaginationArgs, page_envelope
from app.services import orgs
from app.services.permissions import api_key_role

from .schemas import (InviteAcceptedSchema, InviteCreateSchema, InvitePageSchema, InviteSchema, MemberAddSchema,
                      MemberPageSchema, MemberSchema, MemberUpdateSchema, OrgCreateSchema, OrgDetailSchema,
                      OrgPageSchema, OrgRole, OrgSchema, OrgUpdateSchema)

blp = ApiBlueprint("organizations", __name__, url_prefix="/api/organizations",
                   description="Organizations, members and invitations")


def _page(items: list, key: str, args: dict) -> dict:
    page, limit = args["page"], args["limit"]
    return page_envelope(key, items[(page - 1) * limit:page * limit], len(items), page, limit)


@blp.route("", methods=["GET"])
@blp.arguments(PaginationArgs, location="query")
@blp.response(200, OrgPageSchema, description="The caller's organizations (an API key sees its own)", errors=(401,))
@login_required
def list_orgs(args):
    """Organizations the caller belongs to, with the caller's role."""
    principal = current_principal()
    if principal.api_key is not None:
        rows = [OrgRole(orgs.get_org(principal.api_key.org_id), api_key_role(principal.scopes))]
    else:
        rows = orgs.orgs_of(principal.user)
    return _page(rows, "organizations", args)


@blp.route("", methods=["POST"])
@blp.arguments(OrgCreateSchema)
@blp.response(201, OrgSchema, description="The new organization; the caller is its owner", errors=(400, 401, 403))
@user_required
def create_org(data):
    """Create an organization owned by the caller."""
    principal = current_principal()
    org = orgs.create_org(current_actor(), data["name"], owner=principal.user)
    db.session.commit()
    return OrgRole(org, "owner"), 201


@blp.route("/<org_id>", methods=["GET"])
@blp.response(200, OrgDetailSchema, description="The organization", errors=(401, 403, 404))
@permission_required("org:read", "org_id")
def get_org(org_id):
    return OrgRole(*resolve_org())


@blp.route("/<org_id>", methods=["PATCH"])
@blp.arguments(OrgUpdateSchema)
@blp.response(200, OrgSchema, description="The renamed organization", errors=(400, 401, 403, 404))
@permission_required("org:manage", "org_id")
def update_org(data, org_id):
    org, role = resolve_org()
    orgs.rename_org(current_actor(), org, data["name"])
    db.session.commit()
    return OrgRole(org, role)


@blp.route("/<org_id>", methods=["DELETE"])
@blp.response(204, description="Deleted (soft: kept for the audit trail)", errors=(401, 403, 404, 409))
@permission_required("org:delete", "org_id")
def delete_org(org_id):
    """Owners only; personal organizations cannot be deleted. Its API keys and invitations die with it."""
    orgs.delete_org(current_actor(), resolve_org()[0])
    db.session.commit()
    return "", 204


# Members --------------------------------------------------------------------------------------------

@blp.route("/<org_id>/members", methods=["GET"])
@blp.arguments(PaginationArgs, location="query")
@blp.response(200, MemberPageSchema, description="Members with their roles", errors=(401, 403, 404))
@permission_required("members:read", "org_id")
def list_members(args, org_id):
    return _page(orgs.members(resolve_org()[0]), "members", args)


@blp.route("/<org_id>/members", methods=["POST"])
@blp.arguments(MemberAddSchema)
@blp.response(201, MemberSchema, description="The new member", errors=(400, 401, 403, 404, 409))
@permission_required("members:manage", "org_id")
def add_member(data, org_id):
    """Add an existing Kiln user by e-mail (others get an invitation)."""
    org, role = resolve_org()
    row = orgs.add_member(current_actor(), org, data["email"], data["role"], actor_role=role)
    db.session.commit()
    return row, 201


@blp.route("/<org_id>/members/<user_id>", methods=["PATCH"])
@blp.arguments(MemberUpdateSchema)
@blp.response(200, MemberSchema, description="The member with the new role", errors=(400, 401, 403, 404, 409))
@permission_required("members:manage", "org_id")
def update_member(data, org_id, user_id):
    """Change a role. Only owners grant or change the owner role (ownership transfer); the last owner stays."""
    org, role = resolve_org()
    row = orgs.change_role(current_actor(), org, user_id, data["role"], actor_role=role)
    db.session.commit()
    return row


@blp.route("/<org_id>/members/<user_id>", methods=["DELETE"])
@blp.response(204, description="Removed", errors=(401, 403, 404, 409))
@permission_required("members:read", "org_id")
def remove_member(org_id, user_id):
    """Admins remove members; anyone may remove themselves (leave). The last owner cannot leave."""
    org, role = resolve_org()
    orgs.remove_member(current_actor(), org, user_id, actor_role=role)
    db.session.commit()
    return "", 204


# Invitations ----------------------------------------------------------------------------------------

def invite_url(token: str) -> str:
    return url_for("org_pages.invite", token=token, _external=True)


@blp.route("/<org_id>/invites", methods=["GET"])
@blp.arguments(PaginationArgs, location="query")
@blp.response(200, InvitePageSchema, description="Pending invitations", errors=(401, 403, 404))
@permission_required("members:manage", "org_id")
def list_invites(args, org_id):
    return _page(orgs.pending_invites(resolve_org()[0]), "invites", args)


@blp.route("/<org_id>/invites", methods=["POST"])
@blp.arguments(InviteCreateSchema)
@blp.response(201, InviteSchema, description="The invitation (the link is mailed; the token is never shown)",
              errors=(400, 401, 403, 404, 409))
@permission_required("members:manage", "org_id")
def create_invite(data, org_id):
    """Mail an invitation valid for 7 days, usable once."""
    org, role = resolve_org()
    row, _token = orgs.invite(current_actor(), org, data["email"], data["role"], actor_role=role,
                              config=current_app.config, accept_url_for=invite_url)
    db.session.commit()
    return row, 201


@blp.route("/<org_id>/invites/<invite_id>", methods=["DELETE"])
@blp.response(204, description="Revoked", errors=(401, 403, 404, 409))
@permission_required("members:manage", "org_id")
def revoke_invite(org_id, invite_id):
    orgs.revoke_invite(current_actor(), resolve_org()[0], invite_id)
    db.session.commit()
    return "", 204


@blp.route("/invites/<token>/accept", methods=["POST"])
@blp.response(200, InviteAcceptedSchema, description="The organization joined, with the caller's role",
              errors=(400, 401, 403, 404, 409))
@user_required
def accept_invite(token):
    """Join with an invitation; the logged-in user's e-mail must be the invited one."""
    membership = orgs.accept_invite(current_actor(), token, current_principal().user)
    db.session.commit()
    return {"organization": membership, "role": membership.role}


from . import apikeys, shares, structure  # noqa: E402 - the sibling resources register beside this one

api_blueprints = [blp, *structure.api_blueprints, *shares.api_blueprints, *apikeys.api_blueprints]
