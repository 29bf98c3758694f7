"""The invitation link in the mail: sign up or log in, and join."""
from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user

from app.extensions import db, limiter
from app.http.auth import current_actor
from app.models.base import utcnow
from app.services import accounts, orgs
from app.services.errors import DomainError

from .base import bp

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
