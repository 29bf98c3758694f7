"""Account pages: sign-up, log-in, password reset, settings with two-factor, the org switcher."""
from __future__ import annotations

from urllib.parse import urlsplit

import pyotp
from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user

from app.extensions import db, limiter, redis
from app.http.auth import current_actor, page_permission
from app.http.htmx import is_htmx
from app.models import Membership
from app.models.base import parse_uuid
from app.services import accounts, tokens
from app.services.errors import DomainError, Unauthorized

bp = Blueprint("accounts", __name__)


def _is_local_path(target: str) -> bool:
    r"""A path on this site, read the way a browser reads it: browsers drop tabs and newlines and turn
    backslashes into slashes, so `/\t/evil.com` and `/\\evil.com` are other hosts, like `//evil.com`."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 2000:
        return False
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would turn the login page into a phishing aid.
    if target and _is_local_path(target):
        return target
    return url_for("dashboard.index")


def _page_login_account_key() -> str:
    return f"login-account:{(request.form.get('email') or '').strip().lower()}"


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["KILN_LOGIN_LIMIT_IP"], key_func=get_remote_address,
               methods=["POST"], scope="register-ip")
def signup_page():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    form = {"email": request.form.get("email", ""), "name": request.form.get("name", "")}
    errors: dict = {}
    refusal = accounts.signup_refusal()
    if refusal:
        return render_template("accounts/signup.html", form=form, errors=errors, refusal=refusal), \
            403 if request.method == "POST" else 200
    if request.method == "POST":
        try:
            user = accounts.register_user(form["email"], request.form.get("password", ""), form["name"],
                                          actor=current_actor())
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            errors = exc.details or {"_": [exc.message]}
        else:
            login_user(user)
            session["org_id"] = str(user.default_org_id)
            flash("Welcome to Kiln. Your personal workspace is ready.", "success")
            return redirect(url_for("dashboard.index"))
    return render_template("accounts/signup.html", form=form, errors=errors), 400 if errors else 200


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["KILN_LOGIN_LIMIT_IP"], key_func=get_remote_address,
               methods=["POST"], scope="login-ip")
@limiter.limit(lambda: current_app.config["KILN_LOGIN_LIMIT_ACCOUNT"], key_func=_page_login_account_key,
               methods=["POST"], scope="login-account")
def login_page():
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    email = request.form.get("email", "")
    error, need_totp = None, False
    if request.method == "POST":
        try:
            user = accounts.authenticate(email, request.form.get("password", ""),
                                         request.form.get("totp_code") or None, actor=current_actor())
            db.session.commit()
        except Unauthorized as exc:
            db.session.rollback()
            error = exc.message
            need_totp = "totpCode" in (exc.details or {})
        else:
            login_user(user, remember=bool(request.form.get("remember")))
            session["org_id"] = str(user.default_org_id)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("accounts/login.html", email=email, error=error, need_totp=need_totp), 401 if error else 200


@bp.route("/logout", methods=["POST"])
def logout_page():
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("accounts.login_page"))


@bp.route("/forgot-password", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["KILN_LOGIN_LIMIT_IP"], key_func=get_remote_address,
               methods=["POST"], scope="forgot-ip")
def forgot_page():
    sent = False
    if request.method == "POST":
        accounts.request_password_reset(current_app.config, request.form.get("email", ""),
                                        lambda t: url_for("accounts.reset_page", token=t, _external=True))
        db.session.commit()
        sent = True
    return render_template("accounts/forgot.html", sent=sent)


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_page(token: str):
    errors: dict = {}
    if request.method == "POST":
        if request.form.get("password") != request.form.get("password_confirm"):
            errors = {"passwordConfirm": ["The two passwords differ."]}
        else:
            try:
                user = accounts.reset_password(current_app.config, token, request.form.get("password", ""))
                tokens.revoke_all(redis.client, user.id)
                db.session.commit()
            except DomainError as exc:
                db.session.rollback()
                errors = exc.details or {"_": [exc.message]}
            else:
                flash("Your password is changed. Log in with the new one.", "success")
                return redirect(url_for("accounts.login_page"))
    return render_template("accounts/reset.html", token=token, errors=errors), 400 if errors else 200


@bp.route("/account", methods=["GET", "POST"])
@page_permission()
def settings_page():
    errors: dict = {}
    if request.method == "POST":
        try:
            if request.form.get("action") == "password":
                user = current_user._get_current_object()
                accounts.change_password(user, request.form.get("current_password", ""),
                                         request.form.get("new_password", ""))
                # Every bearer token and every other session (their ids carry the old password's
                # fingerprint) stops working; this session continues under the new id.
                tokens.revoke_all(redis.client, user.id)
                db.session.commit()
                remember = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies
                login_user(user, remember=remember)
                flash("Password changed. Other sessions and API tokens are signed out.", "success")
            else:
                accounts.update_profile(current_user, request.form.get("name", ""))
                flash("Profile saved.", "success")
                db.session.commit()
            return redirect(url_for("accounts.settings_page"))
        except DomainError as exc:
            db.session.rollback()
            errors = exc.details or {"_": [exc.message]}
    return render_template("accounts/settings.html", errors=errors, totp=None), 400 if errors else 200


@bp.route("/account/totp", methods=["POST"])
@page_permission()
def totp_page():
    """htmx: the two-factor panel re-renders itself (#totp-panel) through setup, enable and disable."""
    from app.services.qr import qr_svg

    action = request.form.get("action")
    setup, error = None, None
    try:
        if action == "setup":
            data = accounts.totp_begin(current_user)
            setup = {"secret": data["secret"], "qr": qr_svg(data["otpauthUrl"])}
        elif action == "enable":
            accounts.totp_enable(current_user, request.form.get("code", ""))
        elif action == "disable":
            accounts.totp_disable(current_user, request.form.get("password", ""), request.form.get("code", ""))
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        error = exc.message
        if action == "enable" and current_user.totp_secret:
            uri = pyotp.TOTP(current_user.totp_secret).provisioning_uri(name=current_user.email, issuer_name="Kiln")
            setup = {"secret": current_user.totp_secret, "qr": qr_svg(uri)}
    template = "accounts/_totp.html" if is_htmx() else "accounts/settings.html"
    return render_template(template, totp=setup, totp_error=error, errors={}), 400 if error else 200


@bp.route("/orgs/switch", methods=["POST"])
@page_permission()
def switch_org():
    org_id = parse_uuid(request.form.get("org_id"))
    if org_id is None or Membership.find(org_id, current_user.id) is None:
        flash("You are not a member of that organization.", "error")
    else:
        session["org_id"] = str(org_id)
    return redirect(_safe_next(request.form.get("next")))


page_blueprints = [bp]
