"""What the organization pages share: their blueprint and the one way a change is answered.

Every POST works as a plain form (redirect back with a flash) and as htmx (the partial that owns the
changed element comes back). A refused htmx change answers its real status with that partial, its error
inside (base.html's htmx config swaps 4xx answers); a plain form gets a flash, or the error page.
"""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template

from app.extensions import db
from app.http.htmx import is_htmx
from app.services.errors import DomainError

bp = Blueprint("org_pages", __name__)


def change(action, *, partial: str, context, back: str, success: str):
    """Run one change; commit; answer htmx with the partial, plain forms with a redirect + flash."""
    error, status = None, 200
    try:
        extra = action() or {}
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        error, status, extra = exc.message, exc.status, {}
    if is_htmx():
        return render_template(partial, **context(), error=error, notice=None if error else success, **extra), status
    flash(error or success, "error" if error else "success")
    return redirect(back)
