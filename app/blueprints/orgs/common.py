"""Shared by the org API and pages: acting in the org named by the URL, and JSON representations."""
from __future__ import annotations

import functools

from flask import g

from app.extensions import db
from app.http.auth import current_principal
from app.models import Membership, Organization
from app.models.base import isoformat, parse_uuid
from app.services.errors import Forbidden, NotFound
from app.services.permissions import role_allows, scopes_allow


def authorize_org(org_id, permission: str) -> tuple[Organization, str]:
    """Like auth.authorize, but the org comes from the URL (/organizations/{id}/...), not the tenant header.

    A non-member gets 403 as for X-Tenant-ID (API.md); the org then becomes this request's tenant so
    resolve_org() agrees with the path.
    """
    principal = current_principal()
    key = parse_uuid(org_id)
    org = db.session.get(Organization, key) if key else None
    if org is None or org.is_deleted:
        raise NotFound.of("Organization", org_id)
    if principal.api_key is not None:
        if org.id != principal.api_key.org_id:
            raise Forbidden("This API key belongs to another organization")
        role = "admin" if "admin" in (principal.api_key.scopes or []) else "member"
        if not scopes_allow(principal.scopes, permission):
            raise Forbidden(f"The API key lacks the scope for {permission}", {"requiredScope": permission})
    else:
        membership = Membership.find(org.id, principal.user.id)
        if membership is None:
            raise Forbidden("You are not a member of this organization")
        role = membership.role
    if not role_allows(role, permission):
        raise Forbidden(f"Your role '{role}' does not allow {permission}")
    g.current_org, g.current_role = org, role
    return org, role


def org_permission_required(permission: str, arg: str = "org_id"):
    """`permission_required` for routes whose org is the URL argument `arg`. Sets kiln_permission for the authz test."""

    def decorator(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            authorize_org(kwargs[arg], permission)
            return fn(*args, **kwargs)

        wrapper.kiln_permission = permission
        wrapper.kiln_org_arg = arg
        return wrapper

    return decorator


# Representations -----------------------------------------------------------------------------------

def org_body(org: Organization, role: str | None = None) -> dict:
    return {"id": str(org.id), "name": org.name, "slug": org.slug, "personal": org.personal, "plan": org.plan,
            "role": role, "createdAt": isoformat(org.created_at)}


def member_body(m: Membership) -> dict:
    return {"userId": str(m.user_id), "email": m.user.email, "name": m.user.name, "role": m.role,
            "joinedAt": isoformat(m.created_at)}


def invite_body(row, now) -> dict:
    return {"id": str(row.id), "email": row.email, "role": row.role, "status": row.state_at(now),
            "invitedById": str(row.invited_by_id) if row.invited_by_id else None,
            "expiresAt": isoformat(row.expires_at), "createdAt": isoformat(row.created_at),
            "acceptedAt": isoformat(row.accepted_at)}


def structure_body(kind: str, row) -> dict:
    body = {"id": str(row.id), "orgId": str(row.org_id), "name": row.name, "description": row.description,
            "createdAt": isoformat(row.created_at), "updatedAt": isoformat(row.updated_at),
            "memberCount": len(row.members)}
    if kind == "unit":
        body["type"] = row.type
        body["teamCount"] = len(row.teams)
    if kind == "team":
        body["unitId"] = str(row.unit_id)
    return body


def structure_member_body(link) -> dict:
    return {"userId": str(link.user_id), "email": link.user.email, "name": link.user.name,
            "addedAt": isoformat(link.created_at)}


def share_body(share) -> dict:
    from app.services.sharing import target_label

    return {"id": str(share.id), "conversationId": str(share.conversation_id), "targetType": share.target_type,
            "targetId": str(share.target_id), "targetName": target_label(share), "permission": share.permission,
            "createdById": str(share.created_by_id) if share.created_by_id else None,
            "createdAt": isoformat(share.created_at)}


def key_body(key, raw: str | None = None) -> dict:
    from app.services.apikeys import KEY_PREFIX, key_status

    body = {"id": str(key.id), "orgId": str(key.org_id), "name": key.name, "description": key.description,
            "prefix": f"{KEY_PREFIX}{key.prefix}", "lastFour": key.last_four, "scopes": list(key.scopes or []),
            "active": key.active, "status": key_status(key), "expiresAt": isoformat(key.expires_at),
            "revokedAt": isoformat(key.revoked_at), "lastUsedAt": isoformat(key.last_used_at),
            "graceUntil": isoformat(key.grace_until),
            "replacedById": str(key.replaced_by_id) if key.replaced_by_id else None,
            "createdById": str(key.created_by_id) if key.created_by_id else None,
            "createdAt": isoformat(key.created_at)}
    if raw is not None:
        body["key"] = raw  # shown once: only the create/rotate/roll answers carry it
    return body


def usage_body(row) -> dict:
    return {"id": str(row.id), "time": isoformat(row.at), "method": row.method, "path": row.path,
            "status": row.status, "ipAddress": row.ip_address}
