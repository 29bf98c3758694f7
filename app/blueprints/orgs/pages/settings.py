"""Organization settings: name, deletion, members and invitations; creating another organization."""
from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from app.extensions import db
from app.http.auth import can, current_actor, page_permission, resolve_org
from app.http.htmx import is_htmx
from app.models.accounts import ROLES
from app.models.base import parse_uuid, utcnow
from app.services import orgs
from app.services.errors import DomainError, ValidationFailed

from ..routes import invite_url
from .base import bp, change


def _settings_context():
    org, role = resolve_org()
    can_manage = can("members:manage")
    return {"org": org, "role": role, "members": orgs.members(org), "roles": ROLES,
            "invites": orgs.pending_invites(org) if can_manage else [],
            "can_manage": can_manage, "is_owner": role == "owner", "now": utcnow()}


def _settings_change(action, partial: str, success: str):
    return change(action, partial=partial, context=_settings_context, back=url_for(".settings"), success=success)


@bp.route("/organization")
@page_permission("org:read")
def settings():
    return render_template("orgs/settings.html", **_settings_context(), error=None, notice=None)


@bp.route("/organization/rename", methods=["POST"])
@page_permission("org:manage")
def rename():
    org, _ = resolve_org()
    return _settings_change(lambda: orgs.rename_org(current_actor(), org, request.form.get("name", "")) and None,
                            "orgs/_org_name.html", "Organization renamed.")


@bp.route("/organization/delete", methods=["POST"])
@page_permission("org:delete")
def delete():
    org, _ = resolve_org()
    try:
        if request.form.get("confirm_name", "").strip() != org.name:
            raise ValidationFailed("Type the organization's exact name to confirm the deletion",
                                   {"confirmName": ["Does not match."]})
        orgs.delete_org(current_actor(), org)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".settings"))
    session.pop("org_id", None)
    flash(f"The organization {org.name} is deleted.", "success")
    return redirect(url_for("dashboard.index"))


@bp.route("/organizations/new", methods=["POST"])
@page_permission()
def create():
    try:
        org = orgs.create_org(current_actor(), request.form.get("name", ""), owner=current_user)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".settings"))
    session["org_id"] = str(org.id)
    flash(f"Organization {org.name} created; you are its owner.", "success")
    return redirect(url_for(".settings"))


@bp.route("/organization/members", methods=["POST"])
@page_permission("members:manage")
def add_member():
    org, role = resolve_org()
    return _settings_change(lambda: orgs.add_member(current_actor(), org, request.form.get("email", ""),
                                                    request.form.get("role", "member"), actor_role=role) and None,
                            "orgs/_members.html", "Member added.")


@bp.route("/organization/members/<user_id>/role", methods=["POST"])
@page_permission("members:manage")
def change_role(user_id):
    org, role = resolve_org()
    return _settings_change(lambda: orgs.change_role(current_actor(), org, user_id, request.form.get("role", ""),
                                                     actor_role=role) and None,
                            "orgs/_members.html", "Role changed.")


@bp.route("/organization/members/<user_id>/remove", methods=["POST"])
@page_permission("members:read")
def remove_member(user_id):
    """Admins remove others; anyone may leave (the service decides). Leaving lands on the dashboard."""
    org, role = resolve_org()
    if parse_uuid(user_id) != current_user.id:
        return _settings_change(lambda: orgs.remove_member(current_actor(), org, user_id, actor_role=role) and None,
                                "orgs/_members.html", "Member removed.")
    try:
        orgs.remove_member(current_actor(), org, user_id, actor_role=role)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        if is_htmx():
            return render_template("orgs/_members.html", **_settings_context(), error=exc.message,
                                   notice=None), exc.status
        flash(exc.message, "error")
        return redirect(url_for(".settings"))
    session.pop("org_id", None)
    flash(f"You left {org.name}.", "success")
    if is_htmx():
        return "", 200, {"HX-Redirect": url_for("dashboard.index")}
    return redirect(url_for("dashboard.index"))


@bp.route("/organization/invites", methods=["POST"])
@page_permission("members:manage")
def send_invite():
    org, role = resolve_org()
    email = request.form.get("email", "")
    return _settings_change(lambda: orgs.invite(current_actor(), org, email, request.form.get("role", "member"),
                                                actor_role=role, config=current_app.config,
                                                accept_url_for=invite_url) and None,
                            "orgs/_invites.html", f"Invitation sent to {email.strip()}.")


@bp.route("/organization/invites/<invite_id>/revoke", methods=["POST"])
@page_permission("members:manage")
def revoke_invite(invite_id):
    org, _ = resolve_org()
    return _settings_change(lambda: orgs.revoke_invite(current_actor(), org, invite_id) and None,
                            "orgs/_invites.html", "Invitation revoked.")
