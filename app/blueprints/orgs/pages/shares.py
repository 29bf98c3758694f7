"""The share dialog of a conversation (loaded into the conversation page, or a page of its own)."""
from __future__ import annotations

from flask import render_template, request, url_for

from app.http.auth import current_actor, current_principal, page_permission, resolve_org
from app.http.htmx import is_htmx
from app.models.orgs import SHARE_PERMISSIONS
from app.services import orgs, sharing, structure
from app.services.access import conversation_access, require_conversation

from .base import bp, change

def _share_context(conversation_id, need="view"):
    principal = current_principal()
    org, role = resolve_org()
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
    template = "orgs/_share_dialog.html" if is_htmx() else "orgs/share.html"
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

    return change(act, partial="orgs/_share_dialog.html", context=fresh, back=back, success="Sharing updated.")
