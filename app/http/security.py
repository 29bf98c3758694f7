"""Per-request plumbing: trace ids, the /api/v1 alias, CSRF for cookie-authenticated API calls, headers."""
from __future__ import annotations

import re
import uuid

from flask import current_app, g, request
from flask_wtf.csrf import CSRFError, validate_csrf

from app.http.auth import resolve_org
from app.services.billing.tiers import tier_of
from app.services.errors import DomainError

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; font-src 'self' data:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_TRACE_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class ApiVersionAlias:
    """Serve /api/v1/... with the same handlers as /api/...: one handler, two prefixes."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/api/v1" or path.startswith("/api/v1/"):
            environ["PATH_INFO"] = "/api" + path[len("/api/v1"):]
            environ["kiln.api_alias"] = "v1"
        return self.wsgi_app(environ, start_response)


def assign_trace_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.trace_id = incoming if _TRACE_RE.match(incoming) else uuid.uuid4().hex


def protect_cookie_api_calls() -> None:
    """API calls riding on the browser session must carry the CSRF token; bearer and key calls need none."""
    if not request.path.startswith("/api/") or request.method in ("GET", "HEAD", "OPTIONS"):
        return
    principal = getattr(g, "principal", None)
    if principal is None or principal.via != "session":
        return
    token = request.headers.get("X-CSRFToken") or request.headers.get("X-CSRF-Token")
    try:
        validate_csrf(token)
    except Exception as exc:  # noqa: BLE001 - wtforms raises ValidationError; answer the same way
        raise CSRFError("The CSRF token is missing or invalid (send X-CSRFToken with session-authenticated API calls)") from exc


def tier_rate_limit() -> str:
    """The API rate limit of this request (Flask-Limiter calls it per request): the tenant org's tier's
    requests per minute, else KILN_RATE_LIMIT (no tier limit, no caller, or no org to act in)."""
    default = current_app.config["KILN_RATE_LIMIT"]
    if getattr(g, "principal", None) is None:
        return default
    try:
        org, _ = resolve_org()
    except DomainError:
        return default
    per_minute = tier_of(org).api_requests_per_minute
    return default if per_minute is None else f"{per_minute} per minute"


def add_security_headers(response):
    response.headers.setdefault("X-Trace-Id", getattr(g, "trace_id", ""))
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/api/docs"):
        response.headers.setdefault("Content-Security-Policy", CSP.replace("img-src 'self' data:", "img-src 'self' data: blob:"))
    else:
        response.headers.setdefault("Content-Security-Policy", CSP)
    if response.mimetype == "text/html":
        # Page URLs answer htmx with fragments and browsers with whole pages: caches must keep them apart.
        response.vary.add("HX-Request")
    return response

