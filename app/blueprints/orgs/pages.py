"""Organization pages: settings (members, invitations), structure, API keys, invitation accept, share dialog.

Every POST works as a plain form (redirect back with a flash) and as htmx (the partial that owns the
changed element comes back). htmx 2 does not swap 4xx answers, so a refused htmx change answers 200 with
the error shown inside the partial; plain forms get the proper status through the error page or a flash.
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user

from app.extensions import db, limiter
from app.http.auth import current_actor, current_principal, permission_required
from app.http.schemas import paginate
from app.models.accounts import ROLE_RANK, ROLES
from app.models.base import parse_uuid, utcnow
from app.models.orgs import SHARE_PERMISSIONS, UNIT_TYPES
from app.services import accounts, apikeys, orgs, sharing, structure
from app.services.access import require_conversation
from app.services.errors import DomainError, ValidationFailed
from app.services.permissions import SCOPES

bp = Blueprint("org_pages", __name__)


def page_permission(permission: str):
    """A signed-in person acting in the session org with `permission`; kiln_permission feeds the authz test."""

    def decorator(fn):
        return login_required(permission_required(permission)(fn))  # wraps() carries kiln_permission along

    return decorator


def _is_htmx() -> bool:
    return bool(request.headers.get("HX-Request"))


def _change(action, *, partial: str, context, back: str, success: str):
    """Run one change; commit; answer htmx with the partial, plain forms with a redirect + flash."""
    error = None
    try:
        extra = action() or {}
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        error, extra = exc.message, {}
    if _is_htmx():
        return render_template(partial, **context(), error=error, notice=None if error else success, **extra)
    flash(error or success, "error" if error else "success")
    return redirect(back)


def _role_at_least(role: str, needed: str) -> bool:
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]


# Organization settings ----------------------------------------------------------------------------

def _settings_context():
    org, role = _org()
    return {"org": org, "role": role, "members": orgs.members(org), "roles": ROLES,
            "invites": orgs.pending_invites(org) if _role_at_least(role, "admin") else [],
            "can_manage": _role_at_least(role, "admin"), "is_owner": role == "owner", "now": utcnow()}


def _org():
    from app.http.auth import resolve_org

    return resolve_org()


@bp.route("/organization")
@page_permission("org:read")
def settings():
    return render_template("orgs/settings.html", **_settings_context(), error=None, notice=None)


@bp.route("/organization/rename", methods=["POST"])
@page_permission("org:manage")
def rename():
    org, _ = _org()
    return _change(lambda: orgs.rename_org(current_actor(), org, request.form.get("name", "")) and None,
                   partial="orgs/_org_name.html", context=_settings_context, back=url_for(".settings"),
                   success="Organization renamed.")


@bp.route("/organization/delete", methods=["POST"])
@page_permission("org:delete")
def delete():
    org, _ = _org()
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
@login_required
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
    org, role = _org()
    return _change(lambda: orgs.add_member(current_actor(), org, request.form.get("email", ""),
                                           request.form.get("role", "member"), actor_role=role) and None,
                   partial="orgs/_members.html", context=_settings_context, back=url_for(".settings"),
                   success="Member added.")


@bp.route("/organization/members/<user_id>/role", methods=["POST"])
@page_permission("members:manage")
def change_role(user_id):
    org, role = _org()
    return _change(lambda: orgs.change_role(current_actor(), org, user_id, request.form.get("role", ""),
                                            actor_role=role) and None,
                   partial="orgs/_members.html", context=_settings_context, back=url_for(".settings"),
                   success="Role changed.")


@bp.route("/organization/members/<user_id>/remove", methods=["POST"])
@page_permission("members:read")
def remove_member(user_id):
    """Admins remove others; anyone may leave (the service decides)."""
    org, role = _org()
    leaving = parse_uuid(user_id) == current_user.id
    try:
        orgs.remove_member(current_actor(), org, user_id, actor_role=role)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        if _is_htmx():
            return render_template("orgs/_members.html", **_settings_context(), error=exc.message, notice=None)
        flash(exc.message, "error")
        return redirect(url_for(".settings"))
    if leaving:
        session.pop("org_id", None)
        flash(f"You left {org.name}.", "success")
        if _is_htmx():
            return "", 200, {"HX-Redirect": url_for("dashboard.index")}
        return redirect(url_for("dashboard.index"))
    if _is_htmx():
        return render_template("orgs/_members.html", **_settings_context(), error=None, notice="Member removed.")
    flash("Member removed.", "success")
    return redirect(url_for(".settings"))


@bp.route("/organization/invites", methods=["POST"])
@page_permission("members:manage")
def send_invite():
    from .routes import invite_url

    org, role = _org()
    email = request.form.get("email", "")
    return _change(lambda: orgs.invite(current_actor(), org, email, request.form.get("role", "member"),
                                       actor_role=role, config=current_app.config, accept_url_for=invite_url) and None,
                   partial="orgs/_invites.html", context=_settings_context, back=url_for(".settings"),
                   success=f"Invitation sent to {email.strip()}.")


@bp.route("/organization/invites/<invite_id>/revoke", methods=["POST"])
@page_permission("members:manage")
def revoke_invite(invite_id):
    org, _ = _org()
    return _change(lambda: orgs.revoke_invite(current_actor(), org, invite_id) and None,
                   partial="orgs/_invites.html", context=_settings_context, back=url_for(".settings"),
                   success="Invitation revoked.")


# Structure: units, teams, groups --------------------------------------------------------------------

def _structure_context():
    org, role = _org()
    units = structure.units(org)
    return {"org": org, "role": role, "can_manage": _role_at_least(role, "admin"), "unit_types": UNIT_TYPES,
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
    org, _ = _org()
    return _change(lambda: _structure_action(org, request.form), partial="orgs/_structure.html",
                   context=_structure_context, back=url_for(".structure_page"), success="Saved.")


# API keys -------------------------------------------------------------------------------------------

def _keys_context():
    org, role = _org()
    rows = db.session.scalars(apikeys.keys_of(org)).all()
    return {"org": org, "role": role, "keys": rows, "scopes": SCOPES, "status": apikeys.key_status,
            "new_key": None, "new_key_note": None}


def _form_expiry(value: str | None):
    if not value:
        return None
    try:
        day = datetime.strptime(value.strip(), "%Y-%m-%d")
    except ValueError as exc:
        raise ValidationFailed("expiresAt: use the YYYY-MM-DD form", {"expiresAt": ["Not a date."]}) from exc
    return day.replace(tzinfo=timezone.utc)


@bp.route("/api-keys")
@page_permission("keys:manage")
def api_keys():
    return render_template("apikeys/index.html", **_keys_context(), error=None, notice=None)


def _keys_answer(new_key=None, note=None, error=None, notice=None):
    if _is_htmx():
        ctx = _keys_context()
        ctx.update(new_key=new_key, new_key_note=note)
        return render_template("apikeys/_keys.html", **ctx, error=error, notice=notice)
    if new_key is not None:
        # A redirect would lose the secret: the full page is rendered once, directly.
        ctx = _keys_context()
        ctx.update(new_key=new_key, new_key_note=note)
        return render_template("apikeys/index.html", **ctx, error=None, notice=notice)
    flash(error or notice, "error" if error else "success")
    return redirect(url_for(".api_keys"))


@bp.route("/api-keys", methods=["POST"])
@page_permission("keys:manage")
def create_key():
    org, _ = _org()
    try:
        _key, raw = apikeys.create_key(current_actor(), org, name=request.form.get("name", ""),
                                       description=request.form.get("description", ""),
                                       scopes=request.form.getlist("scopes"),
                                       expires_at=_form_expiry(request.form.get("expires_at")))
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        return _keys_answer(error=exc.message)
    return _keys_answer(new_key=raw, note=f"Key “{_key.name}” created.", notice="Key created.")


@bp.route("/api-keys/<key_id>/<action>", methods=["POST"])
@page_permission("keys:manage")
def key_action(key_id, action):
    org, _ = _org()
    actor = current_actor()
    raw = note = None
    try:
        key = apikeys.get_key(org, key_id)
        if action == "revoke":
            apikeys.revoke_key(actor, key)
        elif action == "rotate":
            try:
                grace = float(request.form.get("grace_hours") or 24)
            except ValueError as exc:
                raise ValidationFailed("graceHours: must be a number of hours", {"graceHours": ["Not a number."]}) from exc
            new, raw = apikeys.rotate_key(actor, key, grace)
            note = f"Rotated “{key.name}”: the old key keeps working for {grace:g} hours."
        elif action == "roll":
            new, raw = apikeys.roll_key(actor, key)
            note = f"Rolled “{key.name}”: the old key no longer works."
        elif action == "delete":
            apikeys.delete_key(actor, key)
        elif action in ("disable", "enable"):
            apikeys.update_key(actor, key, {"active": action == "enable"})
        else:
            raise ValidationFailed(f"Unknown key action '{action}'", {"action": ["Unknown action."]})
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        if not _is_htmx() and exc.status == 404:
            raise
        return _keys_answer(error=exc.message)
    return _keys_answer(new_key=raw, note=note, notice=f"Key {action}d." if raw is None else None)


@bp.route("/api-keys/<key_id>/usage")
@page_permission("keys:manage")
def key_usage(key_id):
    org, _ = _org()
    key = apikeys.get_key(org, key_id)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    rows, total = paginate(apikeys.usage_of(key), page, 50)
    ctx = {"key": key, "rows": rows, "total": total, "page": page, "limit": 50, "status": apikeys.key_status}
    template = "apikeys/_usage.html" if _is_htmx() else "apikeys/usage.html"
    return render_template(template, **ctx)


# Invitations: the link in the mail ------------------------------------------------------------------

@bp.route("/invites/<token>", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["KILN_LOGIN_LIMIT_IP"], key_func=get_remote_address,
               methods=["POST"], scope="register-ip")
def invite(token):
    row = orgs.find_invite(token)
    state = row.state_at(utcnow())
    errors: dict = {}
    if request.method == "POST" and state == "pending":
        try:
            if request.form.get("action") == "signup" and not current_user.is_authenticated:
                # Sign up with the invited address and join in one step.
                user = accounts.register_user(row.email, request.form.get("password", ""),
                                              request.form.get("name", ""), actor=current_actor(), invited=True)
                db.session.flush()
                login_user(user)
            elif current_user.is_authenticated:
                user = current_user._get_current_object()
            else:
                return redirect(url_for("accounts.login_page", next=request.path))
            membership = orgs.accept_invite(current_actor(), token, user)
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            errors = exc.details or {"_": [exc.message]}
            errors.setdefault("_", [exc.message])
        else:
            session["org_id"] = str(membership.org_id)
            flash(f"Welcome to {row.org.name}. You joined as {membership.role}.", "success")
            return redirect(url_for(".settings"))
    status = 400 if errors else 200
    return render_template("orgs/invite.html", invite=row, state=state, token=token, errors=errors), status


# Share dialog (included on the conversation page) ----------------------------------------------------

def _share_context(conversation_id, need="view"):
    principal = current_principal()
    org, role = _org()
    conversation = require_conversation(org, conversation_id, user=principal.user, role=role, need=need)
    can_edit = _can_edit(conversation, principal.user, role)
    targets = {
        "user": [(m.user_id, f"{m.user.name} <{m.user.email}>") for m in orgs.members(org)],
        "group": [(g.id, g.name) for g in structure.groups(org)],
        "unit": [(u.id, u.name) for u in structure.units(org)],
        "team": [(t.id, f"{u.name} / {t.name}") for u in structure.units(org) for t in structure.teams(u)],
    }
    return {"conversation": conversation, "org": org, "shares": sharing.shares_of(conversation),
            "label": sharing.target_label, "targets": targets, "permissions": SHARE_PERMISSIONS, "can_edit": can_edit}


def _can_edit(conversation, user, role) -> bool:
    from app.services.access import conversation_access

    return conversation_access(conversation, user=user, role=role) == "edit"


def _parse_target(form) -> tuple[str, str | None]:
    target = form.get("target", "")
    if ":" in target:
        kind, _, ident = target.partition(":")
        return kind, ident or None
    return form.get("target_type", ""), form.get("target_id") or None


@bp.route("/conversations/<conversation_id>/share")
@page_permission("conversations:read")
def share_dialog(conversation_id):
    ctx = _share_context(conversation_id)
    template = "orgs/_share_dialog.html" if _is_htmx() else "orgs/share.html"
    return render_template(template, **ctx, error=None, notice=None)


@bp.route("/conversations/<conversation_id>/share", methods=["POST"])
@page_permission("conversations:write")
def share_dialog_change(conversation_id):
    """action=add (target "type:id" or target_type/target_id, permission) or action=remove (share_id)."""
    ctx = _share_context(conversation_id, need="edit")
    back = url_for(".share_dialog", conversation_id=conversation_id)

    def act():
        if request.form.get("action") == "remove":
            sharing.unshare(current_actor(), ctx["conversation"], request.form.get("share_id"))
        else:
            kind, ident = _parse_target(request.form)
            sharing.share(current_actor(), ctx["conversation"], kind, ident, request.form.get("permission", "view"))

    def fresh():
        return _share_context(conversation_id)

    return _change(act, partial="orgs/_share_dialog.html", context=fresh, back=back, success="Sharing updated.")


page_blueprints = [bp]
