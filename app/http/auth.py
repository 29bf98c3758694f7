"""One auth pipeline: session cookie (browsers), bearer JWT or API key (machines) -> g.principal."""
from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass, field

from flask import current_app, g, request, session
from flask_login import current_user

from app.extensions import db, redis
from app.models import ApiKey, ApiKeyUsage, Membership, Organization, User
from app.models.base import parse_uuid, utcnow
from app.services import apikeys as apikey_service
from app.services import tokens
from app.services.audit import Actor
from app.services.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from app.services.permissions import api_key_role, role_allows, scopes_allow


@dataclass
class Principal:
    user: User | None
    via: str  # session | jwt | api_key
    api_key: ApiKey | None = None
    claims: dict = field(default_factory=dict)

    @property
    def scopes(self) -> list[str] | None:
        return list(self.api_key.scopes or []) if self.api_key is not None else None


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


# Browsers cannot set headers on a WebSocket or an EventSource: these blueprints also take `?token=`.
_QUERY_TOKEN_BLUEPRINTS: set[str] = set()


def accept_query_token(blueprint) -> None:
    """Let `?token=` (a JWT or an API key) authenticate this blueprint's requests, like the headers do."""
    _QUERY_TOKEN_BLUEPRINTS.add(blueprint.name)


def _credential() -> tuple[str, str] | None:
    """(kind, secret) from the request: an API key header, a bearer token, or an allowed `?token=`."""
    raw_key = request.headers.get("X-API-Key")
    if raw_key is not None:
        return "api_key", raw_key.strip()
    bearer = _bearer() or None
    if bearer is None and request.blueprint in _QUERY_TOKEN_BLUEPRINTS and not current_user.is_authenticated:
        bearer = (request.args.get("token") or "").strip() or None
    if bearer is None:
        return None
    return ("api_key" if bearer.startswith(apikey_service.KEY_PREFIX) else "jwt"), bearer


def _principal_for(kind: str, secret: str) -> Principal:
    if kind == "api_key":
        key = apikey_service.find_key(secret)
        if key is None:
            raise Unauthorized("The API key is not valid, expired or revoked")
        return Principal(user=db.session.get(User, key.created_by_id) if key.created_by_id else None,
                         via="api_key", api_key=key)
    claims = tokens.verify(current_app.config, redis.client, secret)
    user = db.session.get(User, parse_uuid(claims["sub"]))
    if user is None or not user.is_active:
        raise Unauthorized("The token's user no longer exists")
    return Principal(user=user, via="jwt", claims=claims)


def load_principal() -> None:
    """Runs before every request. Bad credentials are remembered, and refused where auth is required."""
    g.principal = None
    g.auth_error = None
    # g outlives a request when an app context is already pushed (pytest-flask does): drop the tenant cache.
    g.pop("current_org", None)
    g.pop("current_role", None)
    credential = _credential()
    if credential is not None:
        try:
            g.principal = _principal_for(*credential)
        except Unauthorized as exc:
            g.auth_error = exc.message
        return
    if current_user.is_authenticated:
        g.principal = Principal(user=current_user._get_current_object(), via="session")


def record_key_usage(response):
    """Usage log per key (time, method, path, status) and last-used time.

    This commit must carry the usage row only: whatever a failed request flushed before it failed is
    rolled back first (a view that succeeded has committed its own work already).
    """
    principal = getattr(g, "principal", None)
    if principal is None or principal.api_key is None:
        return response
    if response.status_code >= 400:
        db.session.rollback()
    try:
        key = principal.api_key
        key.last_used_at = utcnow()
        db.session.add(ApiKeyUsage(api_key_id=key.id, method=request.method, path=request.path[:512],
                                   status=response.status_code, ip_address=request.remote_addr))
        db.session.commit()
    except Exception:  # noqa: BLE001 - a usage row must never break the answer itself
        db.session.rollback()
        current_app.logger.exception("could not record API key usage")
    return response


def current_principal() -> Principal:
    principal = getattr(g, "principal", None)
    if principal is None:
        raise Unauthorized(getattr(g, "auth_error", None) or "Authentication required")
    return principal


def current_actor() -> Actor:
    principal = getattr(g, "principal", None)
    return Actor(
        user=principal.user if principal else None,
        api_key=principal.api_key if principal else None,
        ip=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
        scopes=principal.scopes if principal else None,
    )


# Tenancy --------------------------------------------------------------------------------------------

def _role_in(org: Organization, principal: Principal) -> str | None:
    """The caller's role in `org`: an API key's comes from its scopes, a person's from the membership."""
    if principal.api_key is not None:
        if org.id != principal.api_key.org_id:
            raise Forbidden("This API key belongs to another organization")
        return api_key_role(principal.api_key.scopes)
    membership = Membership.find(org.id, principal.user.id)
    return membership.role if membership is not None else None


def resolve_org() -> tuple[Organization, str]:
    """The organization this request acts in, and the caller's role there (API.md: header, key, default)."""
    if "current_org" in g:
        return g.current_org, g.current_role
    principal = current_principal()
    header = request.headers.get("X-Tenant-ID")
    if header is not None:
        org_id = parse_uuid(header.strip())
        if org_id is None:
            raise ValidationFailed("X-Tenant-ID: must be an organization UUID", {"X-Tenant-ID": ["Not a valid UUID."]})
    elif principal.api_key is not None:
        org_id = principal.api_key.org_id
    else:
        org_id = parse_uuid(session.get("org_id")) or principal.user.default_org_id
    org = db.session.get(Organization, org_id) if org_id else None
    if org is None or org.is_deleted:
        raise Forbidden("You are not a member of this organization")
    role = _role_in(org, principal)
    if role is None:
        if header is None and principal.api_key is None and org_id != principal.user.default_org_id:
            session.pop("org_id", None)  # the switcher pointed at an org the user has left
            return resolve_org()
        raise Forbidden("You are not a member of this organization")
    g.current_org, g.current_role = org, role
    return org, role


def _org_named(org_id) -> tuple[Organization, str]:
    """The org a URL names (/organizations/{id}/...): unknown is 404, a non-member 403 (as for X-Tenant-ID).
    It becomes this request's tenant, so resolve_org() agrees with the path."""
    key = parse_uuid(org_id)
    org = db.session.get(Organization, key) if key else None
    if org is None or org.is_deleted:
        raise NotFound.of("Organization", org_id)
    role = _role_in(org, current_principal())
    if role is None:
        raise Forbidden("You are not a member of this organization")
    g.current_org, g.current_role = org, role
    return org, role


def authorize(permission: str, org_id=None) -> tuple[Organization, str]:
    """The one authorization check: resolve the org (the tenant, or the one `org_id` names) and check the
    caller's role there, and an API key's scopes, for `permission`."""
    principal = current_principal()
    org, role = resolve_org() if org_id is None else _org_named(org_id)
    if principal.api_key is not None and not scopes_allow(principal.scopes, permission):
        raise Forbidden(f"The API key lacks the scope for {permission}", {"requiredScope": permission})
    if not role_allows(role, permission):
        raise Forbidden(f"Your role '{role}' does not allow {permission}")
    return org, role


# Decorators: API views and pages ----------------------------------------------------------------------

def login_required(fn):
    """Any authenticated caller (no tenant needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        current_principal()
        return fn(*args, **kwargs)

    return wrapper


def user_required(fn):
    """A person, not an API key (account settings, 2FA, logout)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        principal = current_principal()
        if principal.user is None or principal.api_key is not None:
            raise Forbidden("This action needs a user login, not an API key")
        return fn(*args, **kwargs)

    return wrapper


def require_site_admin() -> Principal:
    """Operations (workers, metrics, backups) belong to the site, not to an organization: a site
    administrator's own login (session or JWT). An API key is an organization's, so it never passes."""
    principal = current_principal()
    if principal.api_key is not None:
        raise Forbidden("Operations need a site administrator's login, not an API key")
    if principal.user is None or not principal.user.is_site_admin:
        raise Forbidden("Only site administrators may do this")
    return principal


def require_metrics_reader() -> None:
    """/metrics: Prometheus presents `Authorization: Bearer $KILN_METRICS_TOKEN`; anyone else must be a
    site administrator (that bearer is no JWT, so the pipeline above left no principal for it)."""
    token = current_app.config["KILN_METRICS_TOKEN"]
    presented = _bearer() or ""
    if token and presented and hmac.compare_digest(presented.encode(), token.encode()):
        return
    require_site_admin()


def site_admin_required(fn):
    """API views of the operations area. kiln_site_admin feeds the authorization test."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        require_site_admin()
        return fn(*args, **kwargs)

    wrapper.kiln_site_admin = True
    return wrapper


def page_site_admin(fn):
    """Operations pages: a signed-in person (else the log-in page) who is a site administrator (else 403)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()
        require_site_admin()
        return fn(*args, **kwargs)

    wrapper.kiln_site_admin = True
    return wrapper


def is_site_admin() -> bool:
    """For showing or hiding the operations links."""
    principal = getattr(g, "principal", None)
    return bool(principal and principal.api_key is None and principal.user and principal.user.is_site_admin)


def permission_required(permission: str, org_arg: str | None = None):
    """API views: authorize(permission) in the tenant, or in the org named by the URL argument `org_arg`.
    kiln_permission and kiln_org_arg feed the authorization test."""

    def decorator(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            authorize(permission, kwargs[org_arg] if org_arg else None)
            return fn(*args, **kwargs)

        wrapper.kiln_permission = permission
        wrapper.kiln_org_arg = org_arg
        return wrapper

    return decorator


def page_permission(permission: str | None = None):
    """Pages: a signed-in person (else the log-in page); with `permission`, authorize() in the session org."""

    def decorator(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if permission is not None:
                authorize(permission)
            return fn(*args, **kwargs)

        if permission is not None:
            wrapper.kiln_permission = permission
        return wrapper

    return decorator


def can(permission: str) -> bool:
    """Whether authorize(permission) would pass in the tenant: for showing or hiding a button."""
    try:
        authorize(permission)
    except Forbidden:
        return False
    return True
