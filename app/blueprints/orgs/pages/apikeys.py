"""The API keys page: create (the secret shown once), revoke, rotate, roll, switch off/on, delete, usage."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import flash, redirect, render_template, request, url_for

from app.extensions import db
from app.http.auth import current_actor, page_permission, resolve_org
from app.http.htmx import is_htmx
from app.http.pagination import paginate
from app.services import apikeys
from app.services.errors import DomainError, ValidationFailed
from app.services.permissions import SCOPES

from .base import bp

def _keys_context():
    org, role = resolve_org()
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


def _keys_answer(new_key=None, note=None, error=None, notice=None, status=200):
    if is_htmx():
        ctx = _keys_context()
        ctx.update(new_key=new_key, new_key_note=note)
        return render_template("apikeys/_keys.html", **ctx, error=error, notice=notice), status
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
    org, _ = resolve_org()
    try:
        _key, raw = apikeys.create_key(current_actor(), org, name=request.form.get("name", ""),
                                       description=request.form.get("description", ""),
                                       scopes=request.form.getlist("scopes"),
                                       expires_at=_form_expiry(request.form.get("expires_at")))
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        return _keys_answer(error=exc.message, status=exc.status)
    return _keys_answer(new_key=raw, note=f"Key “{_key.name}” created.", notice="Key created.")


@bp.route("/api-keys/<key_id>/<action>", methods=["POST"])
@page_permission("keys:manage")
def key_action(key_id, action):
    org, _ = resolve_org()
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
        if not is_htmx() and exc.status == 404:
            raise
        return _keys_answer(error=exc.message, status=exc.status)
    return _keys_answer(new_key=raw, note=note, notice=f"Key {action}d." if raw is None else None)


@bp.route("/api-keys/<key_id>/usage")
@page_permission("keys:manage")
def key_usage(key_id):
    org, _ = resolve_org()
    key = apikeys.get_key(org, key_id)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    rows, total = paginate(apikeys.usage_of(key), page, 50)
    ctx = {"key": key, "rows": rows, "total": total, "page": page, "limit": 50, "status": apikeys.key_status}
    template = "apikeys/_usage.html" if is_htmx() else "apikeys/usage.html"
    return render_template(template, **ctx)
